// The DHCP server's batched socket (src/dhcp/udp.ts over native/dhcp_io.c) and the registry's
// NIC cache that the server reads on every packet (store/nodes.ts nicByMac/staticOwner).
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { RemoteInfo } from 'node:dgram';
import type { Mac } from '../src/mac.ts';
import { Store } from '../src/store/store.ts';
import { DhcpSocket } from '../src/dhcp/udp.ts';

test('a burst larger than one receive batch arrives whole; replies to it leave in one sendAll', async (t) => {
  const got: { msg: Buffer; rinfo: RemoteInfo }[] = [];
  let truncated = 0;
  const sock = new DhcpSocket({
    address: '127.0.0.1',
    port: 0,
    device: null,
    receiveBuffer: 1 << 20,
    onMessage: (msg, rinfo) => got.push({ msg, rinfo }),
    onTruncated: () => truncated++,
  });
  t.after(() => sock.close());
  const client = dgram.createSocket('udp4');
  t.after(() => client.close());
  await new Promise<void>((r) => client.bind(0, '127.0.0.1', r));
  // 300 replies land before this thread reads any: room for them all.
  client.setRecvBufferSize(4 << 20);
  const replies: Buffer[] = [];
  client.on('message', (m) => replies.push(m));
  // 300 packets: several recvmmsg batches of SLOTS (32); each keeps its own bytes after later batches.
  // (In three bursts of 100: the sender shares this thread, so one burst of 300 small
  // datagrams would outgrow the socket buffer before the server reads any.)
  for (let i = 0; i < 300; i++) {
    client.send(Buffer.from(`packet ${i}`), sock.port, '127.0.0.1');
    if (i % 100 === 99) await new Promise((r) => setTimeout(r, 20));
  }
  // One datagram longer than a receive slot (4 KiB) is reported, not delivered cut short.
  client.send(Buffer.alloc(5000, 1), sock.port, '127.0.0.1');
  for (let i = 0; i < 100 && (got.length < 300 || truncated < 1); i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(got.length, 300);
  assert.equal(truncated, 1);
  assert.deepEqual(
    got.map((g) => g.msg.toString()),
    Array.from({ length: 300 }, (_, i) => `packet ${i}`),
  );
  assert.ok(got.every((g) => g.rinfo.address === '127.0.0.1' && g.rinfo.port === client.address().port));

  const failed = sock.sendAll(
    got.map((g) => Buffer.from(`reply to ${g.msg.toString()}`)),
    got.map((g) => g.rinfo.address),
    got.map((g) => g.rinfo.port),
  );
  assert.deepEqual(failed, []);
  for (let i = 0; i < 100 && replies.length < 300; i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(replies.length, 300);
  assert.equal(replies[299]!.toString(), 'reply to packet 299');
});

test('a send that fails is reported by index and the rest still go', async (t) => {
  const sock = new DhcpSocket({ address: '127.0.0.1', port: 0, device: null, receiveBuffer: 0, onMessage: () => {}, onTruncated: () => {} });
  t.after(() => sock.close());
  const client = dgram.createSocket('udp4');
  t.after(() => client.close());
  await new Promise<void>((r) => client.bind(0, '127.0.0.1', r));
  const arrived = once(client, 'message');
  // A datagram over 64 KiB can never be sent (EMSGSIZE); the one after it still is.
  const failed = sock.sendAll([Buffer.alloc(70_000), Buffer.from('after')], ['127.0.0.1', '127.0.0.1'], [client.address().port, client.address().port]);
  assert.equal(failed.length, 1);
  assert.equal(failed[0]!.index, 0);
  assert.match(failed[0]!.error, /too long/i);
  assert.equal(String((await arrived)[0]), 'after');
});

test('the NIC cache sees this connection\'s writes at once and another process\'s within a millisecond', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fleetboot-niccache-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'fleetboot.db');
  const server = Store.open(file);
  const cli = Store.open(file); // stands in for the CLI, which opens the registry itself
  t.after(() => {
    server.close();
    cli.close();
  });
  const a = '52:54:00:aa:00:01' as Mac;
  assert.equal(server.nodes.nicByMac(a), null); // a miss is cached too
  const node = cli.nodes.create({ nics: [{ mac: a, ip: '10.1.0.50', isAdmin: true }] });
  await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(server.nodes.nicByMac(a), { nodeId: node.id, ip: '10.1.0.50' });
  assert.equal(server.nodes.staticOwner('10.1.0.50'), a);

  // Changed by the other process: the new address replaces the cached one.
  cli.nodes.replaceNics(node.id, [{ mac: a, ip: '10.1.0.51', isAdmin: true }]);
  await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(server.nodes.nicByMac(a), { nodeId: node.id, ip: '10.1.0.51' });
  assert.equal(server.nodes.staticOwner('10.1.0.50'), null);

  // Changed through this connection: seen immediately.
  server.nodes.upsertNic(node.id, { mac: a, ip: '10.1.0.52', isAdmin: true });
  assert.deepEqual(server.nodes.nicByMac(a), { nodeId: node.id, ip: '10.1.0.52' });
  assert.equal(server.nodes.staticOwner('10.1.0.52'), a);
});
