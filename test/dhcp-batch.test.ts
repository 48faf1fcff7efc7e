// The DHCP server's per-turn write: leases and boot events go to SQLite in multi-row
// statements (store/leases.ts saveMany, store/events.ts recordAll); every row must land
// exactly as one-row writes would put it, whatever the batch size.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Mac } from '../src/mac.ts';
import type { Lease } from '../src/store/leases.ts';
import { Store } from '../src/store/store.ts';
import { encodePacket, decodePacket, noOptions, BootOp, type DhcpPacket } from '../src/dhcp/packet.ts';

const mac = (i: number): Mac => `52:54:00:00:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}` as Mac;

test('saveMany and recordAll write every row of batches around the chunk size', (t) => {
  let clock = 1_000_000;
  const store = Store.open(':memory:', { now: () => clock });
  t.after(() => store.close());
  for (const n of [1, 15, 16, 17, 37]) {
    clock += 1000;
    const leases: Lease[] = Array.from({ length: n }, (_, i) => ({
      ip: `10.9.${n}.${i + 1}`,
      network: 'lab',
      mac: mac(i),
      clientId: i % 2 ? 'ff01' : null,
      hostname: i % 3 ? `h${i}` : null,
      state: i % 2 ? 'bound' : 'offered',
      expiresAt: clock + i,
      relayInfo: i % 4 ? null : Buffer.from([1, 2, i]),
      updatedAt: clock,
    }));
    store.db.transaction(() => store.leases.saveMany(leases))();
    for (const l of leases) assert.deepEqual(store.leases.get(l.ip), l);
    // Again, changed: the upsert replaces every column.
    const changed = leases.map((l) => ({ ...l, state: 'released' as const, hostname: 'x' }));
    store.db.transaction(() => store.leases.saveMany(changed))();
    for (const l of changed) assert.deepEqual(store.leases.get(l.ip), l);
  }
  const { node } = store.nodes.discover({ mac: mac(999) });
  const events = Array.from({ length: 37 }, (_, i) => ({
    event: 'dhcp_discover' as const,
    // Some with only a MAC: the node holding that NIC gets them, as with record().
    nodeId: i % 2 ? node.id : null,
    mac: mac(999),
    detail: { n: i },
  }));
  store.db.transaction(() => store.events.recordAll(events))();
  const timeline = store.events.timeline(node.id, 100);
  assert.deepEqual(
    timeline.map((e) => e.detail['n']),
    events.map((_, i) => i),
  );
  assert.ok(timeline.every((e) => e.nodeId === node.id && e.mac === mac(999) && e.at === clock));
});

test('encodePacket splits long options (RFC 3396 §7) and reuses no bytes between packets', () => {
  const base: DhcpPacket = {
    op: BootOp.reply, htype: 1, hlen: 6, hops: 0, xid: 7, secs: 0, flags: 0,
    ciaddr: '0.0.0.0', yiaddr: '10.1.2.3', siaddr: '10.1.0.1', giaddr: '0.0.0.0',
    chaddr: Buffer.from('525400123456', 'hex'), sname: '', file: 'x',
    options: { ...noOptions(), messageType: 'ack', serverId: '10.1.0.1', bootfileName: 'b'.repeat(600), routers: Array.from({ length: 70 }, (_, i) => `10.0.0.${i}`) },
  };
  const long = encodePacket(base);
  const again = decodePacket(long);
  assert.ok(again.ok);
  assert.equal(again.packet.options.bootfileName, 'b'.repeat(600));
  assert.equal(again.packet.options.routers?.length, 70);
  const short = encodePacket({ ...base, options: { ...noOptions(), messageType: 'offer', serverId: '10.1.0.1' } });
  assert.equal(short.length, 300);
  const decoded = decodePacket(short);
  assert.ok(decoded.ok);
  assert.equal(decoded.packet.options.bootfileName, undefined);
  assert.equal(decoded.packet.file, 'x');
  // The first packet's bytes are its own, not a view of a reused buffer.
  assert.deepEqual(decodePacket(long).ok && decodePacket(long), again);
});
