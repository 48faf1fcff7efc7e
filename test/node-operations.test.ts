// The node operations every edge calls (CLI, HTTP API, later the orchestrator): assigning a
// platform and powering a node through its stored power settings. Each leaves a boot event.
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseMac } from '../src/mac.ts';
import { importLinuxPlatform, readLinuxManifest } from '../src/platforms/import.ts';
import { runCli, startHeadNode, tempDir, type RunningHeadNode } from './fixtures.ts';
import { writeLinuxPlatform } from './platform-fixtures.ts';

const mac = parseMac('52:54:00:42:00:01')!;

async function api(h: RunningHeadNode, path: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${h.url}/api/v1${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${h.token}` },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

/** A QMP peer answering like QEMU 7.2: greeting, capabilities, status, and a reset the guest answers with its own. */
async function fakeQmp(t: Parameters<typeof tempDir>[0] & { after: (fn: () => Promise<void> | void) => void }): Promise<{ path: string; commands: string[] }> {
  const path = join(tempDir(t, 'fleetboot-qmp-'), 'vm.qmp');
  const commands: string[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    const send = (m: unknown): boolean => s.write(`${JSON.stringify(m)}\r\n`);
    send({ QMP: { version: { qemu: { major: 7, minor: 2, micro: 0 } }, capabilities: [] } });
    let buf = '';
    s.on('data', (chunk) => {
      buf += chunk.toString();
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const cmd = JSON.parse(buf.slice(0, nl)) as { execute: string };
        buf = buf.slice(nl + 1);
        commands.push(cmd.execute);
        if (cmd.execute === 'query-status') send({ return: { running: true, singlestep: false, status: 'running' } });
        else send({ return: {} });
        if (cmd.execute === 'system_reset') {
          send({ event: 'RESET', data: { guest: false }, timestamp: { seconds: 0, microseconds: 0 } });
          setTimeout(() => send({ event: 'RESET', data: { guest: true }, timestamp: { seconds: 0, microseconds: 0 } }), 10);
        }
      }
    });
  });
  await new Promise<void>((r) => server.listen(path, r));
  t.after(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return { path, commands };
}

async function withPlatforms(t: Parameters<typeof tempDir>[0] & { after: (fn: () => Promise<void> | void) => void }) {
  const dir = tempDir(t);
  const h = await startHeadNode(t, dir);
  for (const stamp of ['lab-A', 'lab-B']) {
    const m = readLinuxManifest(writeLinuxPlatform(dir, { stamp }));
    await importLinuxPlatform(m.manifest, m.dir, { store: h.head.store, platformImagesDir: h.head.config.platformImagesDir });
  }
  const node = h.head.store.nodes.discover({ mac }).node;
  return { dir, h, node };
}

test('POST /nodes/:id/platform assigns what the node boots next, keeps the previous one and records it', async (t) => {
  const { h, node } = await withPlatforms(t);
  h.head.store.nodes.update(node.id, { currentPlatform: 'lab-A' });
  const first = await api(h, `/nodes/${mac}/platform`, { stamp: 'lab-B' });
  assert.equal(first.status, 200);
  assert.equal(first.json.changed, true);
  const after = h.head.store.nodes.get(node.id)!;
  assert.equal(after.bootPlatform, 'lab-B');
  assert.equal(after.previousPlatform, 'lab-A', 'what it ran becomes the rollback target');
  const again = await api(h, `/nodes/${node.id}/platform`, { stamp: 'lab-B' });
  assert.equal(again.json.changed, false);
  const events = h.head.store.events.timeline(node.id).filter((e) => e.event === 'platform');
  assert.deepEqual(events.map((e) => e.detail), [{ from: null, to: 'lab-B', previous: 'lab-A', reason: 'operator' }]);

  const unknown = await api(h, `/nodes/${node.id}/platform`, { stamp: 'nope' });
  assert.equal(unknown.status, 400);
  assert.match(String((unknown.json.error as { message: string }).message), /no platform nope/);
  assert.equal((await api(h, `/nodes/${node.id}/platform`, {})).status, 400);
  assert.equal((await api(h, '/nodes/99/platform', { stamp: 'lab-A' })).status, 404);
  assert.equal(h.head.store.nodes.get(node.id)!.bootPlatform, 'lab-B', 'refusals change nothing');
});

test('node set power.* is checked whole; POST /nodes/:id/power and `node power` drive the node through it', async (t) => {
  const { dir, h, node } = await withPlatforms(t);
  const vm = await fakeQmp(t);
  const none = await api(h, `/nodes/${node.id}/power`, { action: 'status' });
  assert.equal(none.status, 409);
  assert.match(String((none.json.error as { message: string }).message), /no power settings/);

  const bad = await api(h, `/nodes/${node.id}/set`, { set: ['power.kind=qemu'] });
  assert.equal(bad.status, 400);
  assert.match(String((bad.json.error as { message: string }).message), /^power\.qmpSocket: /);
  assert.equal(h.head.store.nodes.get(node.id)!.power, null);
  assert.equal((await api(h, `/nodes/${node.id}/set`, { set: ['power.kind=qemu', `power.qmpSocket=${vm.path}`] })).status, 200);

  assert.equal((await api(h, `/nodes/${node.id}/power`, { action: 'explode' })).status, 400);
  const cycled = await api(h, `/nodes/${node.id}/power`, { action: 'cycle' });
  assert.equal(cycled.status, 200, JSON.stringify(cycled.json));
  assert.deepEqual(cycled.json, { node: node.id, action: 'cycle', driver: 'qemu', state: 'on' });
  assert.ok(vm.commands.includes('system_reset'));
  const power = h.head.store.events.timeline(node.id).filter((e) => e.event === 'power');
  assert.deepEqual(power.map((e) => e.detail), [{ action: 'cycle', driver: 'qemu', state: 'on' }]);

  // The CLI runs the same operation from its own process.
  await h.head.stop();
  const status = await runCli(['node', 'power', String(node.id), 'status', '--json'], dir);
  assert.equal(status.exitCode, 0, String(status.stderr));
  assert.deepEqual(JSON.parse(String(status.stdout)), { node: node.id, action: 'status', driver: 'qemu', state: 'on' });
  const wrong = await runCli(['node', 'power', String(node.id), 'reboot'], dir);
  assert.equal(wrong.exitCode, 2);
  assert.match(String(wrong.stderr), /action: expected one of status, on, off, cycle/);
  const pxe = await runCli(['node', 'power', String(node.id), 'pxe'], dir);
  assert.notEqual(pxe.exitCode, 0);
  assert.match(String(pxe.stderr), /the qemu driver cannot choose the next boot device/);
  const cli = await runCli(['node', 'set-platform', String(node.id), 'lab-A'], dir);
  assert.equal(cli.exitCode, 0, String(cli.stderr));
});

test('a power driver that cannot reach the machine is a 502 naming the node, and the failure is on its timeline', async (t) => {
  const { dir, h, node } = await withPlatforms(t);
  const socket = join(dir, 'gone.qmp');
  assert.equal((await api(h, `/nodes/${node.id}/set`, { set: ['power.kind=qemu', `power.qmpSocket=${socket}`] })).status, 200);
  const res = await api(h, `/nodes/${node.id}/power`, { action: 'cycle' });
  assert.equal(res.status, 502);
  assert.match(String((res.json.error as { message: string }).message), new RegExp(`^node ${node.id}: .*gone\\.qmp`));
  const power = h.head.store.events.timeline(node.id).filter((e) => e.event === 'power');
  assert.equal(power.length, 1);
  assert.match(String(power[0]!.detail.error), /gone\.qmp/);
});
