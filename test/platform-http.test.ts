import assert from 'node:assert/strict';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import express from 'express';
import { test } from 'node:test';
import { parseMac } from '../src/mac.ts';
import { importSmartosTarball } from '../src/platforms/import.ts';
import { parseRange, platformFileRoutes } from '../src/platforms/file-routes.ts';
import { PlatformFileCache } from '../src/platforms/file-cache.ts';
import { silentLogger } from '../src/log.ts';
import { Store } from '../src/store/store.ts';
import { startHeadNode, tempDir } from './fixtures.ts';
import { sha1Hex, writeSmartosTarball } from './platform-fixtures.ts';

const archive = Buffer.alloc(3 << 20);
for (let i = 0; i < archive.length; i++) archive[i] = (i * 7 + (i >> 11)) & 0xff;
const path = '/os/20240101T000000Z/platform/i86pc/amd64/boot_archive';

async function serving(t: Parameters<typeof tempDir>[0]) {
  const dir = tempDir(t);
  const running = await startHeadNode(t, dir);
  await importSmartosTarball(writeSmartosTarball(dir, { bootArchive: archive }), { store: running.head.store, platformImagesDir: running.head.config.platformImagesDir });
  return running;
}

test('an imported file streams whole with Content-Length, ETag and Accept-Ranges', async (t) => {
  const { url } = await serving(t);
  const res = await fetch(`${url}${path}`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-length'), String(archive.length));
  assert.equal(res.headers.get('accept-ranges'), 'bytes');
  assert.equal(res.headers.get('content-type'), 'application/octet-stream');
  assert.match(res.headers.get('etag') ?? '', /^"[0-9a-f]{32}-[0-9a-f]+"$/);
  const body = Buffer.from(await res.arrayBuffer());
  assert.equal(sha1Hex(body), sha1Hex(archive));
  const hash = await (await fetch(`${url}${path}.hash`)).text();
  assert.equal(hash, `${sha1Hex(archive)}\n`);
});

test('HEAD gives the same headers and no body', async (t) => {
  const { url } = await serving(t);
  const got = await fetch(`${url}${path}`);
  await got.arrayBuffer();
  const head = await new Promise<{ status: number; headers: Record<string, unknown>; bytes: number }>((resolve, reject) => {
    const req = request(`${url}${path}`, { method: 'HEAD' }, (res) => {
      let bytes = 0;
      res.on('data', (c: Buffer) => (bytes += c.length));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, bytes }));
    });
    req.on('error', reject);
    req.end();
  });
  assert.equal(head.status, 200);
  assert.equal(head.bytes, 0);
  assert.equal(head.headers['content-length'], String(archive.length));
  assert.equal(head.headers['etag'], got.headers.get('etag'));
});

test('Range requests: first bytes, a middle span, an open end, a suffix; unsatisfiable is 416; several ranges get the whole file', async (t) => {
  const { url } = await serving(t);
  const size = archive.length;
  for (const [header, start, end] of [
    ['bytes=0-99', 0, 99],
    ['bytes=1048576-2097151', 1048576, 2097151],
    [`bytes=${size - 10}-`, size - 10, size - 1],
    ['bytes=-500', size - 500, size - 1],
    [`bytes=${size - 5}-${size + 100}`, size - 5, size - 1],
  ] as const) {
    const res = await fetch(`${url}${path}`, { headers: { range: header } });
    assert.equal(res.status, 206, header);
    assert.equal(res.headers.get('content-range'), `bytes ${start}-${end}/${size}`, header);
    assert.equal(res.headers.get('content-length'), String(end - start + 1), header);
    assert.ok(Buffer.from(await res.arrayBuffer()).equals(archive.subarray(start, end + 1)), header);
  }
  const bad = await fetch(`${url}${path}`, { headers: { range: `bytes=${size}-` } });
  assert.equal(bad.status, 416);
  assert.equal(bad.headers.get('content-range'), `bytes */${size}`);
  await bad.arrayBuffer();
  const multi = await fetch(`${url}${path}`, { headers: { range: 'bytes=0-1,5-9' } });
  assert.equal(multi.status, 200);
  assert.equal((await multi.arrayBuffer()).byteLength, size);
  const stale = await fetch(`${url}${path}`, { headers: { range: 'bytes=0-9', 'if-range': '"not-the-etag"' } });
  assert.equal(stale.status, 200);
  await stale.arrayBuffer();
});

test('If-None-Match with the ETag is a 304 without a body', async (t) => {
  const { url } = await serving(t);
  const first = await fetch(`${url}${path}`);
  await first.arrayBuffer();
  const etag = first.headers.get('etag')!;
  for (const inm of [etag, `W/${etag}`, `"other", ${etag}`, '*']) {
    const res = await fetch(`${url}${path}`, { headers: { 'if-none-match': inm } });
    assert.equal(res.status, 304, inm);
    assert.equal((await res.arrayBuffer()).byteLength, 0);
  }
  const other = await fetch(`${url}${path}`, { headers: { 'if-none-match': '"something-else"' } });
  assert.equal(other.status, 200);
  await other.arrayBuffer();
});

test('only imported files are served: unknown stamps, unlisted paths, traversal and other methods are 404', async (t) => {
  const { url, head } = await serving(t);
  // A file dropped into the folder by hand is not part of the platform.
  writeFileSync(join(head.config.platformImagesDir, 'os/20240101T000000Z/platform/stray'), 'x');
  for (const p of [
    '/os/20990101T000000Z/platform/i86pc/amd64/boot_archive',
    '/os/20240101T000000Z/platform/stray',
    '/os/20240101T000000Z/platform/i86pc/amd64',
    '/os/20240101T000000Z/',
    '/os/20240101T000000Z/platform/i86pc/amd64/../amd64/boot_archive.hash/..',
    '/os/20240101T000000Z/%2e%2e/%2e%2e/fleetboot.db',
    '/os/',
  ]) {
    const res = await fetch(`${url}${p}`);
    assert.equal(res.status, 404, p);
    await res.arrayBuffer();
  }
  const post = await fetch(`${url}${path}`, { method: 'POST' });
  assert.equal(post.status, 404);
  await post.arrayBuffer();
});

test('every file fetch is a boot event on the node timeline, found by the mac parameter or by the address', async (t) => {
  const { url, head } = await serving(t);
  const mac = parseMac('52:54:00:12:34:56')!;
  const { node } = head.store.nodes.discover({ mac });
  await (await fetch(`${url}/os/20240101T000000Z/platform/i86pc/kernel/amd64/unix?mac=${mac}`)).arrayBuffer();
  await (await fetch(`${url}${path}?mac=${mac}`)).arrayBuffer();
  // No mac parameter: the node is found by its address (a static NIC address here).
  head.store.nodes.upsertNic(node.id, { mac, ip: '127.0.0.1', isAdmin: true });
  await (await fetch(`${url}${path}.hash`)).arrayBuffer();
  // Each event is appended once its response has ended on the server, which may come just
  // after the client has read the last byte (sendfile(2) reports from its own thread).
  for (const end = Date.now() + 5000; head.store.events.timeline(node.id).length < 3 && Date.now() < end; ) await new Promise((r) => setTimeout(r, 10));
  const events = head.store.events.timeline(node.id).map((e) => [e.event, e.detail['path'], e.mac]);
  assert.deepEqual(events, [
    ['kernel', 'platform/i86pc/kernel/amd64/unix', mac],
    ['module', 'platform/i86pc/amd64/boot_archive', mac],
    ['module', 'platform/i86pc/amd64/boot_archive.hash', mac],
  ]);
});

test('parseRange follows RFC 9110 §14.1.2', () => {
  assert.equal(parseRange(undefined, 10), null);
  assert.deepEqual(parseRange('bytes=2-4', 10), { start: 2, end: 4 });
  assert.deepEqual(parseRange('bytes=-3', 10), { start: 7, end: 9 });
  assert.deepEqual(parseRange('bytes=-30', 10), { start: 0, end: 9 });
  assert.equal(parseRange('bytes=-0', 10), 'unsatisfiable');
  assert.equal(parseRange('bytes=10-', 10), 'unsatisfiable');
  assert.equal(parseRange('bytes=5-2', 10), null);
  assert.equal(parseRange('items=0-1', 10), null);
});

test('without sendfile the same bytes come from the file cache, whole and by range', async (t) => {
  const dir = tempDir(t);
  const store = Store.open(join(dir, 'fleetboot.db'));
  t.after(() => store.close());
  const images = join(dir, 'platform-images');
  await importSmartosTarball(writeSmartosTarball(dir, { bootArchive: archive }), { store, platformImagesDir: images });
  const fileCache = new PlatformFileCache(64 << 20);
  const app = express();
  app.use(platformFileRoutes({ config: { platformImagesDir: images }, store, log: silentLogger, fileCache, zeroCopy: false }));
  const server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  const whole = Buffer.from(await (await fetch(`${url}${path}`)).arrayBuffer());
  assert.ok(whole.equals(archive));
  assert.equal(fileCache.bytesCached, archive.length);
  const part = await fetch(`${url}${path}`, { headers: { range: 'bytes=2000000-2000099' } });
  assert.equal(part.status, 206);
  assert.ok(Buffer.from(await part.arrayBuffer()).equals(archive.subarray(2000000, 2000100)));
  // Over the cache budget: streamed from disk instead.
  const tiny = new PlatformFileCache(1024);
  assert.equal(tiny.get(join(images, 'os/20240101T000000Z', 'platform/i86pc/amd64/boot_archive'), 'x', archive.length), null);
});

test('a client hanging up mid-download does not disturb the next one', async (t) => {
  const { url } = await serving(t);
  // Read the first chunk, then hang up.
  await new Promise<void>((resolve, reject) => {
    const req = request(`${url}${path}`, (res) => {
      res.once('data', () => {
        req.destroy();
        resolve();
      });
    });
    req.on('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNRESET' ? resolve() : reject(err)));
    req.end();
  });
  const again = Buffer.from(await (await fetch(`${url}${path}`)).arrayBuffer());
  assert.equal(sha1Hex(again), sha1Hex(archive));
});

test('many concurrent downloads each get the exact bytes', async (t) => {
  const { url } = await serving(t);
  const bodies = await Promise.all(
    Array.from({ length: 24 }, async (_, i) => {
      const res = await fetch(`${url}${path}`, i % 3 === 0 ? { headers: { range: `bytes=${i * 1000}-` } } : {});
      return { i, body: Buffer.from(await res.arrayBuffer()) };
    }),
  );
  for (const { i, body } of bodies) {
    const expected = i % 3 === 0 ? archive.subarray(i * 1000) : archive;
    assert.ok(body.equals(expected), `client ${i}`);
  }
});
