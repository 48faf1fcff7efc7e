// Real clients against the TFTP server: curl (lock-step, --tftp-blksize), atftp (the only
// Debian client with windowsize), OVMF's tsize-then-abort pattern, a file past the 16-bit
// block-number rollover, and the registration hook for generated per-node files.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { execa } from 'execa';
import { parseMac } from '../src/mac.ts';
import { startHeadNode, tempDir } from './fixtures.ts';
import { RawClient, ack, errorPacket, parseOack, rawGet, request, startTftp } from './tftp-rawclient.ts';
import { nativeAvailable } from '../src/tftp/native.ts';
import { requires } from './requires.ts';

const undionly = '/usr/lib/ipxe/undionly.kpxe';

function curl(port: number, file: string, out: string, blksize?: number): Promise<unknown> {
  const args = ['-sS', '--fail', '--max-time', '60', '--connect-timeout', '3', '-o', out];
  if (blksize !== undefined) args.push('--tftp-blksize', String(blksize));
  return execa('curl', [...args, `tftp://127.0.0.1:${port}/${file}`]);
}

function atftp(port: number, file: string, out: string, options: Record<string, number>): Promise<unknown> {
  const args = ['-g', '-r', file, '-l', out];
  for (const [k, v] of Object.entries(options)) args.push('--option', `${k} ${v}`);
  return execa('atftp', [...args, '127.0.0.1', String(port)], { timeout: 60_000 });
}

test('curl fetches byte-identical files at blksize 512, 1432 and 1468, and each fetch is a tftp_get boot event for the node at that address', { skip: requires({ commands: ['curl', undionly] }) }, async (t) => {
  const dir = tempDir(t);
  const out = tempDir(t);
  copyFileSync(undionly, join(dir, 'undionly.kpxe'));
  const { port, store, logs, server } = await startTftp(t, dir);
  const mac = parseMac('52:54:00:12:34:56')!;
  const { node } = store.nodes.discover({ mac });
  store.nodes.upsertNic(node.id, { mac, ip: '127.0.0.1' });

  for (const blksize of [undefined, 512, 1432, 1468]) {
    const target = join(out, `u-${blksize ?? 'none'}`);
    await curl(port, 'undionly.kpxe', target, blksize);
    assert.ok(readFileSync(target).equals(readFileSync(join(dir, 'undionly.kpxe'))), `blksize ${blksize}`);
  }
  await server.whenIdle();
  const events = store.events.timeline(node.id).filter((e) => e.event === 'tftp_get');
  assert.equal(events.length, 4);
  assert.equal(events[0]!.mac, mac);
  assert.equal(events[0]!.detail.file, 'undionly.kpxe');
  const lines = logs.filter((l) => l.event === 'tftp_get');
  assert.equal(lines.length, 4);
  assert.equal(lines[0]!.mac, mac);
  assert.equal(lines[0]!.node, node.id);
  assert.equal(server.stats.served, 4);
});

test('atftp with windowsize 4 and 16 gets byte-identical files, and the OACK grants the window', { skip: requires({ commands: ['atftp'] }) }, async (t) => {
  const dir = tempDir(t);
  const out = tempDir(t);
  const data = randomBytes(3 * 1024 * 1024 + 17);
  writeFileSync(join(dir, 'blob.bin'), data);
  const { port, logs, server } = await startTftp(t, dir);
  for (const windowsize of [4, 16]) {
    for (const blksize of [512, 1468]) {
      const target = join(out, `w${windowsize}-${blksize}`);
      await atftp(port, 'blob.bin', target, { blksize, windowsize });
      assert.ok(readFileSync(target).equals(data), `windowsize ${windowsize} blksize ${blksize}`);
    }
  }
  await server.whenIdle();
  const granted = logs.filter((l) => l.event === 'tftp_get').map((l) => l.windowsize);
  assert.deepEqual(granted, [4, 4, 16, 16]);
});

test('a 40 MiB file crosses the block-number rollover (blksize 512) byte-identical, lock-step and windowed', { skip: requires({ commands: ['curl', 'atftp'] }) }, async (t) => {
  const dir = tempDir(t);
  const out = tempDir(t);
  const data = randomBytes(40 * 1024 * 1024);
  writeFileSync(join(dir, 'big.bin'), data);
  // Over the cache limit: served through a file descriptor, not memory.
  const { port, server } = await startTftp(t, dir, { cacheFileMaxBytes: 1024 * 1024 });
  await Promise.all([curl(port, 'big.bin', join(out, 'lockstep'), 512), atftp(port, 'big.bin', join(out, 'windowed'), { blksize: 512, windowsize: 16 })]);
  assert.ok(readFileSync(join(out, 'lockstep')).equals(data), 'curl lock-step copy differs');
  assert.ok(readFileSync(join(out, 'windowed')).equals(data), 'atftp windowed copy differs');
  await server.whenIdle();
  assert.equal(server.stats.served, 2);
});

test("OVMF's pattern: tsize=0 blksize=1468 windowsize=4, abort after OACK with ERROR 8, then the real transfer", async (t) => {
  const dir = tempDir(t);
  const data = randomBytes(200_000);
  writeFileSync(join(dir, 'snponly.efi'), data);
  const { port, server, logs } = await startTftp(t, dir);
  const options = { tsize: '0', blksize: '1468', windowsize: '4' };

  const probe = await RawClient.open();
  t.after(() => probe.close());
  await probe.send(request('snponly.efi', 'octet', options), port);
  const first = await probe.next();
  assert.equal(first.msg.readUInt16BE(0), 6, 'expected OACK');
  assert.deepEqual(parseOack(first.msg), { blksize: '1468', tsize: String(data.length), windowsize: '4' });
  await probe.send(errorPacket(8, 'got the size'), first.rinfo.port);

  const got = await rawGet(port, 'snponly.efi', options);
  assert.ok(got.data.equals(data));
  assert.equal(got.oack?.tsize, String(data.length));
  await server.whenIdle();
  assert.equal(server.stats.aborted, 1);
  assert.equal(server.stats.served, 1);
  assert.ok(logs.some((l) => l.event === 'tftp_aborted' && l.afterOack === true));
});

test('duplicate ACKs never trigger duplicate DATA (no Sorcerer\'s Apprentice)', async (t) => {
  const dir = tempDir(t);
  const data = randomBytes(512 * 300 + 5);
  writeFileSync(join(dir, 'f'), data);
  const { port, server } = await startTftp(t, dir, { minRetransmitMs: 2000, defaultTimeoutMs: 2000 });
  const got = await rawGet(port, 'f', {}, { ackTimes: 3 });
  assert.ok(got.data.equals(data));
  assert.equal(got.dataPackets, 301, 'each block sent exactly once');
  assert.equal(server.stats.retransmits, 0);
});

test('a client that stops ACKing does not stall the others, and is given up on after the retry limit', { skip: requires({ commands: ['curl'] }) }, async (t) => {
  const dir = tempDir(t);
  const out = tempDir(t);
  const data = randomBytes(500_000);
  writeFileSync(join(dir, 'f'), data);
  const { port, server } = await startTftp(t, dir, { minRetransmitMs: 50, defaultTimeoutMs: 100, retries: 3 });
  const stuck = await RawClient.open();
  t.after(() => stuck.close());
  await stuck.send(request('f', 'octet', { blksize: '1468' }), port);
  const oack = await stuck.next();
  await stuck.send(ack(0), oack.rinfo.port); // then silence

  await Promise.all(Array.from({ length: 16 }, (_, i) => curl(port, 'f', join(out, `c${i}`), 1468)));
  for (let i = 0; i < 16; i++) assert.ok(readFileSync(join(out, `c${i}`)).equals(data), `client ${i}`);
  // The stuck transfer retransmitted block 1 and then gave up with an ERROR.
  const seen = await stuck.drain(1500);
  assert.ok(seen.some((d) => d.msg.readUInt16BE(0) === 5), 'expected an ERROR after the retry limit');
  await server.whenIdle();
  assert.equal(server.stats.timedOut, 1);
  assert.equal(server.stats.served, 16);
});

test('files registered by other modules are served from memory per node, without touching the disk', { skip: requires({ commands: ['curl'] }) }, async (t) => {
  const dir = tempDir(t);
  const out = tempDir(t);
  const { port, server, store } = await startTftp(t, dir);
  const mac = parseMac('52:54:00:aa:bb:cc')!;
  const { node } = store.nodes.discover({ mac });
  store.nodes.upsertNic(node.id, { mac, ip: '127.0.0.1' });
  server.register('nodes/', (ctx) => (ctx.path === `nodes/${ctx.mac}/boot.ipxe` ? `#!ipxe\necho node ${ctx.node?.id}\n` : undefined));
  server.register('stream.bin', async function* () {
    yield Buffer.from('part one, ');
    yield 'part two';
  });
  await curl(port, `nodes/${mac}/boot.ipxe`, join(out, 'boot.ipxe'));
  assert.equal(readFileSync(join(out, 'boot.ipxe'), 'utf8'), `#!ipxe\necho node ${node.id}\n`);
  await curl(port, 'stream.bin', join(out, 'stream.bin'), 1468);
  assert.equal(readFileSync(join(out, 'stream.bin'), 'utf8'), 'part one, part two');
  await assert.rejects(curl(port, 'nodes/52:54:00:00:00:01/boot.ipxe', join(out, 'other')));
  assert.equal(server.stats.notFound, 1);
});

test('the head node starts TFTP when config.tftp.enabled, serving config.ipxeDir', { skip: requires({ commands: ['curl', undionly] }) }, async (t) => {
  const dir = tempDir(t);
  const ipxe = tempDir(t);
  const out = tempDir(t);
  copyFileSync(undionly, join(ipxe, 'undionly.kpxe'));
  const { head } = await startHeadNode(t, dir, { ipxeDir: ipxe, tftp: { enabled: true, listen: '127.0.0.1', port: 0 } });
  const port = head.tftp.address()!.port;
  await curl(port, 'undionly.kpxe', join(out, 'u'), 1432);
  assert.ok(readFileSync(join(out, 'u')).equals(readFileSync(join(ipxe, 'undionly.kpxe'))));
  await head.tftp.whenIdle();
  assert.equal(head.tftp.stats.served, 1);
});

test('one place picks the data path: native when built (unless FLEETBOOT_TFTP_NATIVE=0), JS with native: false; both send the same bytes and log the same outcome', { skip: requires({ commands: ['curl'] }) }, async (t) => {
  const dir = tempDir(t);
  const out = tempDir(t);
  const data = randomBytes(300_000);
  writeFileSync(join(dir, 'f.bin'), data);
  const fast = await startTftp(t, dir);
  const js = await startTftp(t, dir, { native: false });
  await curl(fast.port, 'f.bin', join(out, 'fast'), 1468);
  await curl(js.port, 'f.bin', join(out, 'js'), 1468);
  assert.ok(readFileSync(join(out, 'fast')).equals(data), 'default path copy differs');
  assert.ok(readFileSync(join(out, 'js')).equals(data), 'JS path copy differs');
  await Promise.all([fast.server.whenIdle(), js.server.whenIdle()]);
  const got = (logs: Array<Record<string, unknown>>): unknown[] => logs.filter((l) => l.event === 'tftp_get').map((l) => [l.path, l.size, l.blksize, l.retransmits]);
  assert.deepEqual(got(fast.logs), [[nativeAvailable() ? 'native' : 'js', data.length, 1468, 0]]);
  assert.deepEqual(got(js.logs), [['js', data.length, 1468, 0]]);
});

test('busy polling for ACKs (tftp.busyPollMicros) changes only how the native thread waits: off, at the default, and against a client slower than the budget, the copies are byte-identical with no retransmission', { skip: requires({ commands: ['curl'] }) }, async (t) => {
  const dir = tempDir(t);
  const out = tempDir(t);
  const data = randomBytes(200_000);
  writeFileSync(join(dir, 'f.bin'), data);
  const off = await startTftp(t, dir, { busyPollMicros: 0 });
  const polling = await startTftp(t, dir); // the default, 50 µs
  await curl(off.port, 'f.bin', join(out, 'off'), 1468);
  await curl(polling.port, 'f.bin', join(out, 'polling'), 1468);
  assert.ok(readFileSync(join(out, 'off')).equals(data), 'copy without polling differs');
  assert.ok(readFileSync(join(out, 'polling')).equals(data), 'copy with polling differs');
  // 2 ms per ACK: every poll misses, the thread backs off to sleeping in recv, and the
  // transfer still completes within its retransmission timer.
  const slow = await rawGet(polling.port, 'f.bin', { blksize: '8192' }, { ackDelayMs: 2 });
  assert.ok(slow.data.equals(data), 'copy to the slow client differs');
  await Promise.all([off.server.whenIdle(), polling.server.whenIdle()]);
  assert.equal(off.server.stats.retransmits + polling.server.stats.retransmits, 0);
  assert.equal(polling.server.stats.served, 2);
});

test('stopping the server ends a running transfer: the client gets ERROR 0 and nothing more, and the server goes idle', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'f'), randomBytes(100_000));
  const { port, server } = await startTftp(t, dir, { minRetransmitMs: 5000, defaultTimeoutMs: 5000 });
  const c = await RawClient.open();
  t.after(() => c.close());
  await c.send(request('f', 'octet', { blksize: '1468', windowsize: '4' }), port);
  const oack = await c.next();
  assert.equal(oack.msg.readUInt16BE(0), 6);
  await c.send(ack(0), oack.rinfo.port);
  for (let i = 1; i <= 4; i++) assert.equal((await c.next()).msg.readUInt16BE(2), i, `DATA ${i}`);
  assert.equal(server.stats.active, 1);
  await server.stop();
  await server.whenIdle();
  const after = await c.drain(300);
  assert.deepEqual(
    after.map((d) => [d.msg.readUInt16BE(0), d.msg.readUInt16BE(2), d.rinfo.port]),
    [[5, 0, oack.rinfo.port]],
  );
  assert.equal(server.stats.active, 0);
});

test('TFTP stays off unless enabled', async (t) => {
  const { head } = await startHeadNode(t, tempDir(t));
  assert.equal(head.tftp.address(), undefined);
});

test('netascii mode: tftp-hpa in ascii mode gets back the text it asked for', { skip: requires({ commands: ['tftp'] }) }, async (t) => {
  const dir = tempDir(t);
  const out = tempDir(t);
  const text = 'line one\nline two\r\nbare\rcarriage\n'.repeat(200);
  writeFileSync(join(dir, 'notes.txt'), text);
  const { port } = await startTftp(t, dir);
  await execa('tftp', ['127.0.0.1', String(port), '-m', 'ascii', '-c', 'get', 'notes.txt', join(out, 'notes.txt')], { timeout: 20_000 });
  assert.equal(readFileSync(join(out, 'notes.txt'), 'latin1'), text);
});
