// Hostile HTTP clients on the admin LAN: a download the client stops reading (sendfile and
// the in-memory path), a shutdown with such a client connected (in-process and `fleetboot
// serve` under SIGTERM), headers trickled a byte at a time, oversized heads and check-in
// bodies, and a flood of boot-script and check-in requests from one address. Each is
// dropped within its bound while the head node keeps serving everyone else.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readdirSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import express from 'express';
import { execa } from 'execa';
import { silentLogger } from '../src/log.ts';
import { platformFileRoutes } from '../src/platforms/file-routes.ts';
import { PlatformFileCache } from '../src/platforms/file-cache.ts';
import { importSmartosTarball } from '../src/platforms/import.ts';
import { zeroCopyAvailable, zeroCopyTransfers } from '../src/platforms/sendfile.ts';
import { Store } from '../src/store/store.ts';
import type { ConfigInput } from '../src/config/schema.ts';
import { cliPath, startHeadNode, tempDir, testConfig } from './fixtures.ts';
import { sha1Hex, writeSmartosTarball } from './platform-fixtures.ts';

// 48 MiB: more than loopback's socket buffers hold (tcp_rmem/tcp_wmem maxima of 6 + 4 MiB),
// so a client that stops reading really stalls the sender.
const archive = Buffer.alloc(48 << 20);
for (let i = 0; i < archive.length; i += 4) archive.writeUInt32LE((i * 2654435761) >>> 0, i);
const stamp = '20240101T000000Z';
const path = `/os/${stamp}/platform/i86pc/amd64/boot_archive`;

async function serving(t: Parameters<typeof tempDir>[0], overrides: ConfigInput = {}) {
  const dir = tempDir(t);
  const running = await startHeadNode(t, dir, overrides);
  await importSmartosTarball(writeSmartosTarball(dir, { bootArchive: archive }), { store: running.head.store, platformImagesDir: running.head.config.platformImagesDir });
  return running;
}

function portOf(url: string): number {
  return Number(new URL(url).port);
}

/** A client that sends GET `path`, reads until the first body bytes arrive, then stops reading. */
async function stalledDownload(t: { after: (fn: () => void) => void }, port: number, target = path): Promise<Socket> {
  const socket = connect({ port, host: '127.0.0.1' });
  t.after(() => socket.destroy());
  await once(socket, 'connect');
  socket.write(`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
  const [first] = (await once(socket, 'data')) as [Buffer];
  assert.match(first.toString('latin1', 0, 15), /^HTTP\/1\.1 200/);
  socket.pause();
  return socket;
}

function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

async function until(check: () => boolean | Promise<boolean>, ms: number, what: string): Promise<number> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > ms) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return Date.now() - started;
}

/** GET through node:http from `localAddress` (127.0.0.x: another client on this machine). */
function get(port: number, target: string, localAddress = '127.0.0.1', headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: target, localAddress, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('a download the client stopped reading (sendfile) is dropped after http.downloadIdleSeconds with its descriptors closed, while another client downloads the whole file', { skip: zeroCopyAvailable ? false : 'the fleetboot_sendfile addon is not built (npm ci builds it)' }, async (t) => {
  const { url } = await serving(t, { http: { downloadIdleSeconds: 2 } });
  const before = zeroCopyTransfers();
  await stalledDownload(t, portOf(url));
  await until(() => zeroCopyTransfers() === before + 1, 5000, 'the stalled transfer is in flight');

  // Another client meanwhile gets every byte.
  const started = Date.now();
  const whole = Buffer.from(await (await fetch(`${url}${path}`)).arrayBuffer());
  assert.equal(sha1Hex(whole), sha1Hex(archive));
  assert.ok(Date.now() - started < 20_000);
  await until(() => zeroCopyTransfers() === before + 1, 5000, 'only the stalled transfer left');
  const fdsWhileStalled = openFds();

  // Dropped: no transfer left, and its socket, the socket's dup and the file are closed.
  const ms = await until(() => zeroCopyTransfers() === before, 8000, 'the stalled transfer is dropped');
  assert.ok(ms < 8000);
  await until(() => fdsWhileStalled - openFds() >= 3, 3000, 'the three descriptors of the stalled download are closed');
});

test('a download the client stopped reading (in-memory path, no sendfile) is dropped after the idle timeout', async (t) => {
  const dir = tempDir(t);
  const store = Store.open(join(dir, 'fleetboot.db'));
  t.after(() => store.close());
  const images = join(dir, 'platform-images');
  await importSmartosTarball(writeSmartosTarball(dir, { bootArchive: archive }), { store, platformImagesDir: images });
  const app = express();
  app.use(platformFileRoutes({ config: { platformImagesDir: images, http: { downloadIdleSeconds: 1 } }, store, log: silentLogger, fileCache: new PlatformFileCache(64 << 20), zeroCopy: false }));
  const server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  const port = (server.address() as { port: number }).port;
  const connections = (): Promise<number> => new Promise((r) => server.getConnections((_e, n) => r(n)));

  await stalledDownload(t, port);
  assert.equal(await connections(), 1);
  const whole = Buffer.from(await (await fetch(`http://127.0.0.1:${port}${path}`, { headers: { connection: 'close' } })).arrayBuffer());
  assert.equal(sha1Hex(whole), sha1Hex(archive));
  await until(async () => (await connections()) === 0, 6000, 'the stalled connection is dropped');

  // The stall watch leaves the connection's own timers alone: a keep-alive connection that
  // downloaded a range and went quiet is still closed at keepAliveTimeout.
  server.keepAliveTimeout = 1000;
  const idle = connect({ port, host: '127.0.0.1' });
  t.after(() => idle.destroy());
  await once(idle, 'connect');
  let reply = '';
  idle.on('data', (c: Buffer) => (reply += c.toString('latin1')));
  idle.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nRange: bytes=0-99\r\n\r\n`);
  await Promise.race([once(idle, 'close'), new Promise((_, reject) => setTimeout(() => reject(new Error('keep-alive connection still open after 5 s')), 5000))]);
  assert.match(reply, /^HTTP\/1\.1 206/);
});

test('stop() with a stalled download connected finishes within a few seconds (http.stopGraceSeconds), and the transfer is gone', { skip: zeroCopyAvailable ? false : 'the fleetboot_sendfile addon is not built (npm ci builds it)' }, async (t) => {
  const { url, head } = await serving(t, { http: { downloadIdleSeconds: 600, stopGraceSeconds: 1 } });
  const before = zeroCopyTransfers();
  await stalledDownload(t, portOf(url));
  await until(() => zeroCopyTransfers() === before + 1, 5000, 'the stalled transfer is in flight');
  const started = Date.now();
  await head.stop();
  const took = Date.now() - started;
  assert.ok(took < 5000, `stop took ${took} ms`);
  await until(() => zeroCopyTransfers() === before, 2000, 'the transfer is cancelled');
});

test('SIGTERM to fleetboot serve with a stalled download connected exits within a few seconds', async (t) => {
  const dir = tempDir(t);
  const config = { dataDir: join(dir, 'var'), apiTokenFile: join(dir, 'var', 'api-token'), platformImagesDir: join(dir, 'platform-images'), http: { listen: '127.0.0.1', port: 0 }, log: { level: 'info' } };
  writeFileSync(join(dir, 'fleetboot.json'), JSON.stringify(config));
  const store = Store.open(Store.fileIn(join(dir, 'var')));
  await importSmartosTarball(writeSmartosTarball(dir, { bootArchive: archive }), { store, platformImagesDir: config.platformImagesDir });
  store.close();

  const serve = execa(process.execPath, [cliPath, '--config', join(dir, 'fleetboot.json'), 'serve'], { cwd: dir, reject: false, timeout: 60_000, buffer: false });
  t.after(() => {
    if (serve.exitCode === null) serve.kill('SIGKILL');
  });
  let log = '';
  serve.stdout?.on('data', (c: Buffer) => (log += c.toString()));
  await until(() => /"event":"http_listen"/.test(log), 30_000, 'serve listening');
  const port = Number(/"event":"http_listen"[^\n]*"port":(\d+)/.exec(log)?.[1]);
  await stalledDownload(t, port);

  const started = Date.now();
  serve.kill('SIGTERM');
  const result = await serve;
  const took = Date.now() - started;
  assert.equal(result.exitCode, 0, `serve exited with ${String(result.exitCode)}`);
  assert.ok(took < 10_000, `serve exited ${took} ms after SIGTERM`);
  assert.match(log, /"event":"stopped"/);
});

test('headers trickled a byte at a time get 408 and the connection closed after http.headersTimeoutSeconds, while others are served', async (t) => {
  const dir = tempDir(t);
  const { url } = await startHeadNode(t, dir, { http: { headersTimeoutSeconds: 2 } });
  const socket = connect({ port: portOf(url), host: '127.0.0.1' });
  t.after(() => socket.destroy());
  await once(socket, 'connect');
  let answer = '';
  socket.on('data', (c: Buffer) => (answer += c.toString('latin1')));
  const closed = once(socket, 'close');
  socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ');
  const trickle = setInterval(() => socket.write('a'), 300);
  t.after(() => clearInterval(trickle));
  const started = Date.now();
  // Everyone else is served meanwhile.
  assert.equal((await get(portOf(url), '/healthz')).status, 200);
  await Promise.race([closed, new Promise((_, reject) => setTimeout(() => reject(new Error(`still open after 10 s: ${answer}`)), 10_000))]);
  clearInterval(trickle);
  const took = Date.now() - started;
  assert.ok(took < 5000, `closed after ${took} ms`);
  assert.match(answer, /^HTTP\/1\.1 408/);
});

test('a request head over http.maxHeaderBytes gets 431; a check-in body over http.checkinBodyBytes gets 413 naming the bound, and nothing is registered', async (t) => {
  const dir = tempDir(t);
  const { url, head } = await startHeadNode(t, dir, { http: { maxHeaderBytes: 4096, checkinBodyBytes: 2048 } });
  const big = await get(portOf(url), '/healthz', '127.0.0.1', { 'x-filler': 'a'.repeat(8000) });
  assert.equal(big.status, 431);
  assert.equal((await get(portOf(url), '/healthz', '127.0.0.1', { 'x-filler': 'a'.repeat(1000) })).status, 200);

  const body = JSON.stringify({ uuid: '11111111-2222-3333-4444-555555555555', hostname: 'x'.repeat(5000) });
  const res = await fetch(`${url}/api/v1/nodes/checkin`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  assert.equal(res.status, 413);
  const err = (await res.json()) as { error: { code: string; message: string } };
  assert.equal(err.error.code, 'payload_too_large');
  assert.match(err.error.message, /over 2048 bytes \(http\.checkinBodyBytes\)/);
  assert.equal(head.store.nodes.list().length, 0);
});

test('boot scripts and check-ins past the per-address token bucket get 429 with Retry-After; other addresses and other routes are served, and the bucket refills', async (t) => {
  const dir = tempDir(t);
  const { url } = await startHeadNode(t, dir, { http: { rateLimit: { perSecond: 2, burst: 10 } } });
  const port = portOf(url);
  const first = await Promise.all(Array.from({ length: 10 }, () => get(port, '/boot/stage1.ipxe')));
  assert.deepEqual(first.map((r) => r.status), Array(10).fill(200));
  const over = await get(port, '/boot/node.ipxe?mac=52:54:00:00:00:01');
  assert.equal(over.status, 429);
  assert.ok(Number(over.headers['retry-after']) >= 1, `Retry-After: ${String(over.headers['retry-after'])}`);
  assert.match(over.body, /http\.rateLimit/);
  const checkin = await fetch(`${url}/api/v1/nodes/checkin`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  assert.equal(checkin.status, 429);
  // Another address has a bucket of its own; routes outside the limit are not counted.
  assert.equal((await get(port, '/boot/stage1.ipxe', '127.0.0.2')).status, 200);
  assert.equal((await get(port, '/healthz')).status, 200);
  await new Promise((r) => setTimeout(r, Number(over.headers['retry-after']) * 1000));
  assert.equal((await get(port, '/boot/stage1.ipxe')).status, 200);
});

test('the default rate limit lets a rack of 150 machines behind one NAT boot at once (stage 1, node script and check-in each)', async (t) => {
  const dir = tempDir(t);
  const { url } = await startHeadNode(t, dir);
  const port = portOf(url);
  const mac = (i: number): string => `52:54:00:00:01:${i.toString(16).padStart(2, '0')}`;
  const stage1 = await Promise.all(Array.from({ length: 150 }, () => get(port, '/boot/stage1.ipxe')));
  const scripts = await Promise.all(Array.from({ length: 150 }, (_, i) => get(port, `/boot/node.ipxe?mac=${mac(i)}`)));
  const checkins = await Promise.all(
    Array.from({ length: 150 }, () => fetch(`${url}/api/v1/nodes/checkin`, { method: 'POST', headers: { 'content-type': 'application/json', connection: 'close' }, body: '{}' })),
  );
  const statuses = [...stage1.map((r) => r.status), ...scripts.map((r) => r.status), ...checkins.map((r) => r.status)];
  assert.equal(statuses.filter((s) => s === 429).length, 0);
  assert.ok(stage1.every((r) => r.status === 200));
});

test('a headers timeout longer than the request timeout is refused when the config is loaded, naming both settings', (t) => {
  const dir = tempDir(t);
  assert.throws(() => testConfig(dir, { http: { headersTimeoutSeconds: 60, requestTimeoutSeconds: 30 } }), /http\.headersTimeoutSeconds: must not be longer than http\.requestTimeoutSeconds/);
  const fine = testConfig(dir);
  assert.deepEqual(
    { headers: fine.http.headersTimeoutSeconds, request: fine.http.requestTimeoutSeconds, idle: fine.http.downloadIdleSeconds, grace: fine.http.stopGraceSeconds, rate: fine.http.rateLimit },
    { headers: 10, request: 30, idle: 30, grace: 3, rate: { perSecond: 50, burst: 500 } },
  );
});
