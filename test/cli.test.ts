import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { execa } from 'execa';
import { cliPath, runCli, startHeadNode, tempDir } from './fixtures.ts';

test('every verb has --help with an example', async (t) => {
  const dir = tempDir(t);
  const top = await runCli(['--help'], dir);
  assert.equal(top.exitCode, 0);
  const commands = String(top.stdout).split('Commands:')[1] ?? '';
  const verbs = [...commands.matchAll(/^ {2}(\w[\w-]*)/gm)].map((m) => m[1]!).filter((v) => v !== 'help');
  assert.ok(verbs.includes('init') && verbs.includes('serve') && verbs.includes('status'), String(top.stdout));
  for (const verb of verbs) {
    const r = await runCli([verb, '--help'], dir);
    assert.equal(r.exitCode, 0, verb);
    assert.match(String(r.stdout), /Example/, `${verb} --help has no example`);
  }
});

test('output into a pipe whose reader has gone ends the command quietly, not with an EPIPE crash', async (t) => {
  const dir = tempDir(t);
  const r = await execa('sh', ['-c', `"${process.execPath}" "${cliPath}" lab status --help | head -c 1 >/dev/null; sleep 0.2`], { cwd: dir, reject: false });
  assert.equal(r.exitCode, 0);
  assert.doesNotMatch(String(r.stderr), /EPIPE|Unhandled/);
});

test('init writes a valid config and a 0600 API token; a second init is refused', async (t) => {
  const dir = tempDir(t);
  const r = await runCli(['init', '--interface', 'lo', '--subnet', '127.0.0.0/8', '--range', '127.0.0.100-127.0.0.200'], dir);
  assert.equal(r.exitCode, 0, String(r.stderr));
  const config = JSON.parse(readFileSync(join(dir, 'fleetboot.json'), 'utf8')) as { networks: { serverAddress: string; range: unknown }[]; dhcp: { mode: string } };
  assert.equal(config.dhcp.mode, 'full');
  assert.equal(config.networks[0]!.serverAddress, '127.0.0.1');
  assert.deepEqual(config.networks[0]!.range, { start: '127.0.0.100', end: '127.0.0.200' });
  assert.equal(statSync(join(dir, 'var', 'api-token')).mode & 0o777, 0o600);
  const again = await runCli(['init', '--interface', 'lo', '--subnet', '127.0.0.0/8'], dir);
  assert.equal(again.exitCode, 2);
  assert.match(String(again.stderr), /already exists; pass --force/);
});

test('init refuses a bad argument with one line and exit code 2', async (t) => {
  const dir = tempDir(t);
  const r = await runCli(['init', '--interface', 'lo', '--subnet', '127.0.0.0/8', '--range', '10.0.0.1-10.0.0.9'], dir);
  assert.equal(r.exitCode, 2);
  assert.match(String(r.stderr), /^fleetboot: --range \(start\): 10\.0\.0\.1 is outside subnet 127\.0\.0\.0\/8$/);
});

test('serve refuses a malformed config with one line naming the field, exit code 2', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'bad.json'), JSON.stringify({ http: { port: 'eighty' } }));
  const r = await runCli(['--config', 'bad.json', 'serve'], dir);
  assert.equal(r.exitCode, 2);
  assert.match(String(r.stderr), /^fleetboot: bad\.json: http\.port: [^\n]+$/);
});

test('serve on the embedded defaults answers /healthz and stage1, then stops cleanly on SIGTERM', async (t) => {
  const dir = tempDir(t);
  // The embedded defaults use port 8080; a test must not collide, so override only the port.
  writeFileSync(join(dir, 'fleetboot.json'), JSON.stringify({ http: { port: 0 } }));
  const child = execa(process.execPath, [cliPath, 'serve'], { cwd: dir, reject: false, buffer: true, lines: true });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n')) {
        if (line.includes('"event":"http_listen"')) resolve((JSON.parse(line) as { port: number }).port);
      }
    });
    void child.then((r) => reject(new Error(`serve exited early: ${String(r.stderr)}`)));
  });
  const health = await fetch(`http://127.0.0.1:${port}/healthz`);
  assert.equal(health.status, 200);
  const stage1 = await (await fetch(`http://127.0.0.1:${port}/boot/stage1.ipxe`)).text();
  assert.match(stage1, /^#!ipxe\n/);
  assert.match(stage1, /\/boot\/node\.ipxe\?mac=\$\{net0\/mac\}&uuid=\$\{uuid\}&serial=\$\{serial:uristring\}&arch=\$\{buildarch\}/);
  child.kill('SIGTERM');
  const r = await child;
  assert.equal(r.exitCode, 0);
  const lines = (r.stdout as unknown as string[]).map((l) => JSON.parse(l) as { event?: string });
  assert.ok(lines.some((l) => l.event === 'stopped'), 'no "stopped" log line');
});

test('status reports the fleet from the registry', async (t) => {
  const dir = tempDir(t);
  const r = await runCli(['status', '--json'], dir);
  assert.equal(r.exitCode, 0, String(r.stderr));
  const s = JSON.parse(String(r.stdout)) as { running: boolean; dhcp: string; nodes: Record<string, number>; counters: unknown };
  assert.equal(s.dhcp, 'off');
  assert.equal(s.nodes.discovered, 0);
  assert.equal(s.running, false);
  assert.equal(s.counters, null);
});

test("status shows a running head node's counters: DHCP packets received, malformed, replied", async (t) => {
  const dir = tempDir(t);
  const dhcp = { mode: 'full', listen: '127.0.0.1', port: 0 } as const;
  const networks = [{ name: 'lab', subnet: '10.41.0.0/24', serverAddress: '10.41.0.1', range: { start: '10.41.0.100', end: '10.41.0.200' } }];
  const { head } = await startHeadNode(t, dir, { dhcp, networks });
  const port = head.http.address()!.port;
  writeFileSync(join(dir, 'fleetboot.json'), JSON.stringify({ http: { listen: '127.0.0.1', port }, dhcp, networks }));
  // Two malformed datagrams (no magic cookie; a header cut short) to the DHCP port.
  const { createSocket } = await import('node:dgram');
  const sock = createSocket('udp4');
  t.after(() => sock.close());
  for (const bytes of [Buffer.alloc(300), Buffer.alloc(20, 1)]) {
    await new Promise<void>((resolve, reject) => sock.send(bytes, head.dhcp!.ports().dhcp, '127.0.0.1', (err) => (err ? reject(err) : resolve())));
  }
  const deadline = Date.now() + 5000;
  while (head.dhcp!.stats.malformed < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const json = await runCli(['status', '--json'], dir);
  assert.equal(json.exitCode, 0, String(json.stderr));
  const s = JSON.parse(String(json.stdout)) as { running: boolean; counters: { dhcp: { received: number; malformed: number; replies: number }; tftp: unknown } };
  assert.equal(s.running, true);
  assert.deepEqual({ received: s.counters.dhcp.received, malformed: s.counters.dhcp.malformed, replies: s.counters.dhcp.replies }, { received: 2, malformed: 2, replies: 0 });
  assert.equal(s.counters.tftp, null);
  const text = await runCli(['status'], dir);
  assert.match(String(text.stdout), /dhcp +received 2, replies 0, malformed 2,/);
});
