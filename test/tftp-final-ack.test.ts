// The ACK of the last block lost: RFC 1350 §6 lets a client end its side once it has sent that
// ACK, so the client may hold the whole file while the server times out. The boot timeline keeps
// such a transfer as a tftp_get marked `finalAck: false`, with its retransmissions; a transfer
// abandoned earlier is no tftp_get. Both data paths (the native one and the JS one).
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseMac } from '../src/mac.ts';
import { tempDir } from './fixtures.ts';
import { ack, RawClient, request, startTftp } from './tftp-rawclient.ts';

/** Fetches `file` (512-byte blocks, lock-step), ACKing blocks up to `ackUpTo` only, then goes quiet. */
async function fetchWithoutAcksAfter(port: number, file: string, ackUpTo: number): Promise<number> {
  const c = await RawClient.open();
  try {
    await c.send(request(file), port);
    let received = 0;
    for (;;) {
      const d = await c.next(5000).catch(() => null);
      // Silence, or the server's ERROR when it gives up.
      if (!d || d.msg.readUInt16BE(0) === 5) return received;
      assert.equal(d.msg.readUInt16BE(0), 3, 'DATA');
      const block = d.msg.readUInt16BE(2);
      received = Math.max(received, block);
      if (block <= ackUpTo) await c.send(ack(block), d.rinfo.port);
    }
  } finally {
    c.close();
  }
}

for (const native of [true, false]) {
  test(`${native ? 'native' : 'JS'} data path: a transfer whose last ACK never comes is on the timeline as tftp_get with finalAck false; one that stops earlier is not`, async (t) => {
    const dir = tempDir(t);
    writeFileSync(join(dir, 'three-blocks.bin'), Buffer.alloc(1100, 7)); // blocks 1-2 full, 3 short
    const { port, store, server, logs } = await startTftp(t, dir, { native, minRetransmitMs: 50, defaultTimeoutMs: 100, retries: 3 });
    const mac = parseMac('52:54:00:12:34:57')!;
    const { node } = store.nodes.discover({ mac });
    store.nodes.upsertNic(node.id, { mac, ip: '127.0.0.1' });

    assert.equal(await fetchWithoutAcksAfter(port, 'three-blocks.bin', 2), 3, 'the client got every block');
    await server.whenIdle();
    let gets = store.events.timeline(node.id).filter((e) => e.event === 'tftp_get');
    assert.equal(gets.length, 1, `one tftp_get: ${JSON.stringify(gets.map((e) => e.detail))}`);
    assert.equal(gets[0]!.detail.finalAck, false);
    assert.equal(gets[0]!.detail.file, 'three-blocks.bin');
    assert.ok(Number(gets[0]!.detail.retransmits) > 0, `the last block was sent again: ${JSON.stringify(gets[0]!.detail)}`);
    assert.ok(logs.some((l) => l.event === 'tftp_timeout' && l.block === 3), 'the timeout is still logged');

    // Block 2 never acknowledged: the client lacks block 3, so no tftp_get.
    await fetchWithoutAcksAfter(port, 'three-blocks.bin', 1);
    await server.whenIdle();
    gets = store.events.timeline(node.id).filter((e) => e.event === 'tftp_get');
    assert.equal(gets.length, 1, 'a transfer abandoned before its last block is no tftp_get');
  });
}

/** Fetches `file` with windowsize 4 (RFC 7440), ACKing each full window except the last, then goes quiet. */
async function fetchWindowedWithoutFinalAck(port: number, file: string, lastBlock: number): Promise<number> {
  const c = await RawClient.open();
  try {
    await c.send(request(file, 'octet', { windowsize: '4' }), port);
    let received = 0;
    for (;;) {
      const d = await c.next(5000).catch(() => null);
      if (!d || d.msg.readUInt16BE(0) === 5) return received;
      const op = d.msg.readUInt16BE(0);
      // RFC 2347: the OACK is acknowledged with block 0.
      if (op === 6) {
        await c.send(ack(0), d.rinfo.port);
        continue;
      }
      assert.equal(op, 3, 'DATA');
      const block = d.msg.readUInt16BE(2);
      if (block !== received + 1) continue; // a retransmitted window
      received = block;
      // The end of each window is acknowledged (RFC 7440 §4), except the final one: that ACK is "lost".
      if (block % 4 === 0 && block < lastBlock) await c.send(ack(block), d.rinfo.port);
    }
  } finally {
    c.close();
  }
}

for (const native of [true, false]) {
  test(`${native ? 'native' : 'JS'} data path: with windowsize 4, a transfer whose final window is never acknowledged is a tftp_get with finalAck false`, async (t) => {
    const dir = tempDir(t);
    writeFileSync(join(dir, 'ten-blocks.bin'), Buffer.alloc(9 * 512 + 100, 7)); // blocks 1-9 full, 10 short
    const { port, store, server } = await startTftp(t, dir, { native, minRetransmitMs: 50, defaultTimeoutMs: 100, retries: 3 });
    const mac = parseMac('52:54:00:12:34:58')!;
    const { node } = store.nodes.discover({ mac });
    store.nodes.upsertNic(node.id, { mac, ip: '127.0.0.1' });
    assert.equal(await fetchWindowedWithoutFinalAck(port, 'ten-blocks.bin', 10), 10, 'the client got every block');
    await server.whenIdle();
    const gets = store.events.timeline(node.id).filter((e) => e.event === 'tftp_get');
    assert.equal(gets.length, 1, `one tftp_get: ${JSON.stringify(gets.map((e) => e.detail))}`);
    assert.deepEqual([gets[0]!.detail.finalAck, gets[0]!.detail.windowsize], [false, 4]);
  });
}
