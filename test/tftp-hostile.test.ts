// A hostile client on the admin LAN against the TFTP server: read requests asking the
// largest RFC 2349 timeout (255 s) that never ACK, many of them from one address, and a
// client that ACKs just fast enough never to time out. Every real client must still get
// its file, and every slot must come back within the configured bounds, on the native data
// path and on the JS one.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { execa } from 'execa';
import { negotiate } from '../src/tftp/options.ts';
import { nativeAvailable } from '../src/tftp/native.ts';
import { bridgedLan, serveIn } from './bridged-namespaces.ts';
import { tempDir, testConfig } from './fixtures.ts';
import { requires } from './requires.ts';
import { parseOack, rawGet, request, startTftp } from './tftp-rawclient.ts';

/** Resolves once `check` holds, polling every 100 ms; rejects after `ms`. */
async function until(check: () => boolean, ms: number, what: string): Promise<number> {
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > ms) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return Date.now() - started;
}

/** `count` sockets on `address`, each sending one RRQ with timeout=255 and never an ACK. */
async function stalledRequests(t: { after: (fn: () => void) => void }, address: string, port: number, count: number): Promise<{ sockets: Socket[]; first: Buffer[] }> {
  const sockets: Socket[] = [];
  const first: Buffer[] = [];
  t.after(() => sockets.forEach((s) => s.close()));
  const rrq = request('f', 'octet', { timeout: '255', blksize: '1468', tsize: '0' });
  for (let i = 0; i < count; i++) {
    const s = createSocket('udp4');
    s.bind(0, address);
    await once(s, 'listening');
    sockets.push(s);
    // One at a time, each after the previous reply: a burst would overflow the listening
    // socket's receive buffer and test the kernel rather than the server.
    const reply = once(s, 'message') as Promise<[Buffer]>;
    await new Promise<void>((resolve, reject) => s.send(rrq, port, '127.0.0.1', (err) => (err ? reject(err) : resolve())));
    first.push((await reply)[0]); // and never an ACK
  }
  return { sockets, first };
}

test('a timeout over tftp.maxTimeoutSeconds is left out of the OACK (RFC 2347 §2) rather than echoed; one within it is echoed exactly (RFC 2349 §2)', () => {
  const limits = { maxWindowsize: 64, maxWindowBytes: 2 << 20, defaultTimeoutMs: 1000, maxTimeoutSeconds: 5 };
  const big = negotiate(new Map([['timeout', '255'], ['blksize', '1468']]), 1000, limits);
  assert.ok(big.ok);
  assert.deepEqual(big.oack, [['blksize', '1468']]);
  assert.equal(big.params.timeoutMs, 1000);
  assert.equal(big.params.clientTimeout, false);
  const fine = negotiate(new Map([['timeout', '3']]), 1000, limits);
  assert.ok(fine.ok);
  assert.deepEqual(fine.oack, [['timeout', '3']]);
  assert.equal(fine.params.timeoutMs, 3000);
  const config = testConfig(tempDir({ after: () => {} }));
  assert.deepEqual(
    { perAddress: config.tftp.maxTransfersPerAddress, timeout: config.tftp.maxTimeoutSeconds, lifetime: config.tftp.maxTransferSeconds },
    { perAddress: 32, timeout: 5, lifetime: 300 },
  );
});

for (const native of [true, false]) {
  const path = native ? 'native' : 'js';
  test(`${path} path: 300 stalled timeout=255 requests from one address take only that address's share of the slots, curl from another address gets its file, and the stalled slots come back within the retry bound`, { skip: native && !nativeAvailable() ? 'the fleetboot_tftp addon is not built (npm ci builds it)' : requires({ commands: ['curl'] }) }, async (t) => {
    const dir = tempDir(t);
    const out = tempDir(t);
    const data = randomBytes(300_000);
    writeFileSync(join(dir, 'f'), data);
    const { port, server, logs } = await startTftp(t, dir, { native, maxTransfers: 64, maxTransfersPerAddress: 16, maxTimeoutSeconds: 5 });

    const { first } = await stalledRequests(t, '127.0.0.2', port, 300);
    await until(() => server.stats.addressLimited + server.stats.active >= 300, 20_000, 'every stalled request answered').catch((err: unknown) => {
      throw new Error(`${String(err)}: ${JSON.stringify(server.stats)}`);
    });
    assert.equal(server.stats.active, 16, 'one address holds exactly its share');
    assert.equal(server.stats.addressLimited, 284);
    assert.equal(server.stats.busy, 0);
    // The one OACK a stalled client got grants no timeout: the server keeps its own timer.
    const oack = first.find((m) => m.readUInt16BE(0) === 6);
    assert.ok(oack, 'an OACK');
    assert.deepEqual(parseOack(oack), { blksize: '1468', tsize: String(data.length) });

    // A real client from 127.0.0.1 is served meanwhile.
    await execa('curl', ['-sS', '--fail', '--max-time', '30', '--connect-timeout', '3', '--tftp-blksize', '1468', '-o', join(out, 'f'), `tftp://127.0.0.1:${port}/f`]);
    assert.ok(readFileSync(join(out, 'f')).equals(data));

    // Unanswered, each slot ends after 6 retransmissions on a timer of at most 1 s (the
    // server's default ceiling): about 5.4 s from its start, never 7 × 255 s.
    const ms = await until(() => server.stats.active === 0, 15_000, 'stalled slots reclaimed');
    assert.ok(ms < 15_000);
    assert.equal(server.stats.timedOut, 16);
    assert.equal(server.stats.served, 1);
    assert.ok(logs.some((l) => l['event'] === 'tftp_timeout' && l['path'] === path && l['client'] === '127.0.0.2'));
    assert.ok(logs.some((l) => l['event'] === 'tftp_busy' && l['reason'] === 'address_limit' && l['client'] === '127.0.0.2'));
    // The address has its slots back: a fresh request from it is served.
    const again = await rawGet(port, 'f', { blksize: '1468' });
    assert.ok(again.data.equals(data));
  });

  test(`${path} path: a client that ACKs every block just before the retransmission timer is cut off at tftp.maxTransferSeconds with an ERROR, and its slot is freed`, { skip: native && !nativeAvailable() ? 'the fleetboot_tftp addon is not built (npm ci builds it)' : false }, async (t) => {
    const dir = tempDir(t);
    // 200 blocks of 512 bytes at one ACK per 300 ms would take a minute.
    writeFileSync(join(dir, 'f'), randomBytes(200 * 512));
    const { port, server, logs } = await startTftp(t, dir, { native, maxTransferSeconds: 2 });
    const started = Date.now();
    const got = rawGet(port, 'f', {}, { ackDelayMs: 300, retryMs: 5000 });
    const outcome = await Promise.race([
      got.then(() => 'completed', (err: Error) => err.message),
      new Promise<string>((r) => setTimeout(() => r('still running after 10 s'), 10_000)),
    ]);
    assert.match(outcome, /^server error 0: transfer took too long/);
    const took = Date.now() - started;
    assert.ok(took >= 1900 && took < 6000, `ended after ${took} ms`);
    await until(() => server.stats.active === 0, 5000, 'slot freed');
    assert.equal(server.stats.lifetimeExceeded, 1);
    assert.ok(logs.some((l) => l['event'] === 'tftp_timeout' && l['cause'] === 'lifetime' && l['path'] === path));
  });
}

test('in network namespaces: `fleetboot serve` with TFTP on; one machine sends 300 stalled timeout=255 requests, curl on another gets its file meanwhile, and the counters show the stalled slots back within the bound', { timeout: 120_000, skip: requires({ root: 'network namespaces, a bridge and veth pairs', commands: ['ip', 'curl'] }) }, async (t) => {
  const lan = await bridgedLan(t, 'tftp', '10.82.0.1/24', [{ address: '10.82.0.50/24' }, { address: '10.82.0.60/24' }]);
  const [attacker, client] = lan.members as [string, string];
  const dir = tempDir(t);
  const ipxeDir = join(dir, 'ipxe');
  mkdirSync(ipxeDir);
  const data = randomBytes(200_000);
  writeFileSync(join(ipxeDir, 'f'), data);
  type Counters = { tftp: { active: number; addressLimited: number; timedOut: number; served: number } };
  const serve = await serveIn(
    lan,
    dir,
    { dataDir: join(dir, 'var'), apiTokenFile: join(dir, 'var', 'api-token'), ipxeDir, tftp: { enabled: true, listen: '10.82.0.1', port: 69, maxTransfersPerAddress: 16 } },
    /"event":"tftp_listening"/,
  );

  // The attacker: 300 read requests from 300 ports, each after the previous answer, no ACK ever.
  const script = join(dir, 'stall.mjs');
  writeFileSync(
    script,
    `import dgram from 'node:dgram';
import { once } from 'node:events';
const rrq = Buffer.concat([Buffer.from([0, 1]), Buffer.from('f\\0octet\\0timeout\\x00255\\0blksize\\x001468\\0')]);
const sockets = [];
for (let i = 0; i < 300; i++) {
  const s = dgram.createSocket('udp4');
  s.bind(0);
  await once(s, 'listening');
  sockets.push(s);
  const reply = once(s, 'message');
  s.send(rrq, 69, '10.82.0.1');
  await Promise.race([reply, new Promise((r) => setTimeout(r, 2000))]);
}
console.log('sent');
setInterval(() => {}, 1000);
`,
  );
  const stall = execa('ip', ['netns', 'exec', attacker, process.execPath, script], { reject: false, buffer: false });
  lan.procs.push(stall);
  let out = '';
  stall.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  await until(() => out.includes('sent'), 60_000, 'the stalled requests sent');
  const during = await serve.counters<Counters>();
  assert.equal(during.tftp.active, 16);
  assert.equal(during.tftp.addressLimited, 284);

  const got = join(dir, 'got');
  await execa('ip', ['netns', 'exec', client, 'curl', '-sS', '--fail', '--max-time', '30', '--tftp-blksize', '1468', '-o', got, 'tftp://10.82.0.1/f']);
  assert.ok(readFileSync(got).equals(data));

  let after = await serve.counters<Counters>();
  const started = Date.now();
  while (after.tftp.active > 0 && Date.now() - started < 15_000) {
    await new Promise((r) => setTimeout(r, 500));
    after = await serve.counters<Counters>();
  }
  assert.equal(after.tftp.active, 0, 'stalled slots reclaimed within 15 s');
  assert.equal(after.tftp.timedOut, 16);
  assert.equal(after.tftp.served, 1);
});
