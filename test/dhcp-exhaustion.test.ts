// DHCP exhaustion (docs/hardening.md "DHCP exhaustion"): a flood of random MACs against a
// 20-address pool, through a loopback relay (RFC 2131 §4.1: replies come back to giaddr).
// Registered nodes that have booted keep and renew their leases, a newly racked machine
// still gets an address because the flood's leases are taken back first, the flood
// registers at most dhcp.maxUnbootedDiscovered nodes, and the counters show the refusals.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { execa } from 'execa';
import type { ConfigInput } from '../src/config/schema.ts';
import type { DhcpPacket } from '../src/dhcp/packet.ts';
import { parseMac } from '../src/mac.ts';
import { importLinuxPlatform, readLinuxManifest } from '../src/platforms/import.ts';
import { clientPacket, RelayAgent, type PacketSpec } from './dhcp-fixtures.ts';
import { bridgedLan, serveIn } from './bridged-namespaces.ts';
import { startHeadNode, tempDir } from './fixtures.ts';
import { writeLinuxPlatform } from './platform-fixtures.ts';
import { requires } from './requires.ts';
import { Store } from '../src/store/store.ts';
import type { DhcpStats } from '../src/dhcp/server.ts';

const D = { discover: 1, request: 3 } as const;
const SERVER = '10.60.0.1';
const POOL = 20;
const CAP = 400;

async function setup(t: Parameters<typeof tempDir>[0]) {
  const agent = await RelayAgent.open(t);
  const dir = tempDir(t);
  const cfg: ConfigInput = {
    unknownNodePolicy: 'discover',
    dhcp: { mode: 'full', listen: '127.0.0.1', port: 0, relayReplyPort: agent.port, maxUnbootedDiscovered: CAP },
    networks: [
      {
        name: 'rack',
        subnet: '10.60.0.0/24',
        serverAddress: SERVER,
        range: { start: '10.60.0.100', end: `10.60.0.${100 + POOL - 1}` },
        relayAddresses: ['127.0.0.1'],
        leaseSeconds: 3600,
      },
    ],
  };
  const h = await startHeadNode(t, dir, cfg);
  const m = readLinuxManifest(writeLinuxPlatform(dir, { stamp: 'lab-6.1' }));
  await importLinuxPlatform(m.manifest, m.dir, { store: h.head.store, platformImagesDir: h.head.config.platformImagesDir });
  const dhcp = h.head.dhcp!;
  const port = dhcp.ports().dhcp;
  let xid = 0x7000;
  const packet = (spec: Omit<PacketSpec, 'giaddr' | 'xid'>): Buffer => clientPacket({ giaddr: '127.0.0.1', xid: ++xid, model: 'udhcpc', ...spec });
  const ask = (spec: Omit<PacketSpec, 'giaddr' | 'xid'>) => agent.exchange(packet(spec), port, 10_000);
  /** DISCOVER then REQUEST (SELECTING); the ACK. */
  const dora = async (mac: string): Promise<DhcpPacket> => {
    const offer = await ask({ type: D.discover, mac });
    assert.equal(offer.options.messageType, 'offer', mac);
    return ask({ type: D.request, mac, requested: offer.yiaddr, serverId: SERVER });
  };
  /** RENEWING (RFC 2131 §4.3.2: ciaddr, no option 50 or 54). */
  const renew = (mac: string, ip: string) => ask({ type: D.request, mac, ciaddr: ip });
  const checkin = (mac: string) =>
    fetch(`${h.url}/api/v1/nodes/checkin`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ uuid: null, nics: [{ mac, name: 'eth0', ip: null }], cpu: { model: 'QEMU', count: 1 }, ramBytes: 1 << 29, platform: 'lab-6.1', bootTime: 1_790_000_000 }),
    });
  /**
   * Sends the MACs' DISCOVERs (and, with `request`, a REQUEST for each offer) `burst` at a
   * time, waiting for each burst's answers or their absence, so the loopback buffers hold.
   * Returns each MAC's ACKed address.
   */
  const flood = async (macs: readonly string[], request: boolean, burst = 100): Promise<Map<string, string>> => {
    const acked = new Map<string, string>();
    for (let i = 0; i < macs.length; i += burst) {
      const part = macs.slice(i, i + burst);
      const offers = await Promise.allSettled(part.map((mac) => agent.exchange(packet({ type: D.discover, mac }), port, request ? 10_000 : 300)));
      if (!request) continue;
      const acks = await Promise.allSettled(
        part.map((mac, j) => {
          const o = offers[j]!;
          if (o.status !== 'fulfilled') return Promise.reject(new Error(`${mac}: no offer`));
          return agent.exchange(packet({ type: D.request, mac, requested: o.value.yiaddr, serverId: SERVER }), port, 10_000);
        }),
      );
      acks.forEach((a, j) => {
        if (a.status === 'fulfilled' && a.value.options.messageType === 'ack') acked.set(part[j]!, a.value.yiaddr);
      });
    }
    await dhcp.settled();
    return acked;
  };
  return { ...h, agent, dhcp, packet, ask, dora, renew, checkin, flood };
}

const randomMac = (): string => {
  const b = randomBytes(6);
  b[0] = (b[0]! & 0xfe) | 0x02; // locally administered, unicast
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
};

test('a flood of random MACs neither takes registered nodes’ leases nor exhausts the pool for them, and registers at most the cap', async (t) => {
  const h = await setup(t);
  const store = h.head.store;

  // Three machines boot for real: DHCP registers them, then they check in.
  const fleet = ['52:54:00:60:00:01', '52:54:00:60:00:02', '52:54:00:60:00:03'];
  const fleetIp = new Map<string, string>();
  for (const mac of fleet) {
    const ack = await h.dora(mac);
    assert.equal(ack.options.messageType, 'ack', mac);
    fleetIp.set(mac, ack.yiaddr);
    assert.equal((await h.checkin(mac)).status, 200, mac);
  }
  for (const mac of fleet) assert.notEqual(store.nodes.findByMac(parseMac(mac)!)?.lastSeen ?? null, null, mac);

  // Wave 1, below the cap: 300 new MACs, each a full DORA, 10 at a time (fewer than the pool
  // holds, or a later DISCOVER of the burst would take back an earlier one's offer). The pool
  // (17 left) runs out at once; every further MAC takes back the oldest flood lease, never a
  // fleet node's.
  const wave1 = Array.from({ length: 300 }, randomMac);
  const wave1Acked = await h.flood(wave1, true, 10);
  assert.equal(wave1Acked.size, wave1.length, 'every wave-1 MAC is below the cap and gets an address');
  assert.ok(h.dhcp.stats.reclaimed >= wave1.length - (POOL - fleet.length), `reclaimed ${h.dhcp.stats.reclaimed}`);
  for (const ip of wave1Acked.values()) assert.ok(![...fleetIp.values()].includes(ip), `flood got fleet address ${ip}`);
  for (const [mac, ip] of fleetIp) {
    assert.equal(h.dhcp.lease(ip)?.mac, mac);
    const ack = await h.renew(mac, ip);
    assert.equal(ack.options.messageType, 'ack', `${mac} renews ${ip}`);
    assert.equal(ack.yiaddr, ip);
  }

  // A flood client whose address was taken back is NAKed when it renews it (RFC 2131 §4.3.2).
  const [firstMac, firstIp] = [...wave1Acked][0]!;
  assert.notEqual(h.dhcp.lease(firstIp)?.mac, firstMac, 'the oldest flood lease went first');
  const nak = await h.renew(firstMac, firstIp);
  assert.equal(nak.options.messageType, 'nak');

  // A newly racked machine (the flood is still below the cap) gets an address.
  const racked = '52:54:00:60:00:10';
  const rackedAck = await h.dora(racked);
  assert.equal(rackedAck.options.messageType, 'ack');
  assert.ok(!fleetIp.has(rackedAck.yiaddr));
  assert.equal((await h.checkin(racked)).status, 200);
  fleetIp.set(racked, rackedAck.yiaddr);

  // Wave 2: 4,000 more new MACs, DISCOVERs only. Past the cap they are neither registered
  // nor answered, and counted.
  const wave2 = Array.from({ length: 4000 }, randomMac);
  const cappedBefore = h.dhcp.stats.unknownCapped;
  await h.flood(wave2, false, 250);
  const unbooted = store.nodes.list().filter((n) => n.state === 'discovered' && n.lastSeen === null).length;
  assert.equal(unbooted, CAP, 'the flood registered exactly up to the cap');
  assert.equal(store.nodes.list().length, CAP + fleetIp.size);
  const registeredOfWave2 = wave2.filter((mac) => store.nodes.findByMac(parseMac(mac)!) !== undefined).length;
  assert.equal(registeredOfWave2, CAP - wave1.length);
  assert.ok(h.dhcp.stats.unknownCapped - cappedBefore >= wave2.length - registeredOfWave2 - 50, `capped ${h.dhcp.stats.unknownCapped - cappedBefore}`);

  // Every registered, booted node still renews, and a DISCOVER from one gets its own address back.
  for (const [mac, ip] of fleetIp) {
    const ack = await h.renew(mac, ip);
    assert.equal(ack.options.messageType, 'ack', `${mac} renews ${ip} after the flood`);
    const offer = await h.ask({ type: D.discover, mac });
    assert.equal(offer.yiaddr, ip, `${mac} is offered its own address`);
  }

  // A machine already in the registry, with a hostname, arriving past the cap: a flood lease goes.
  const declared = '52:54:00:60:00:20';
  const before = h.dhcp.stats.reclaimed;
  store.nodes.create({ nics: [{ mac: parseMac(declared)!, isAdmin: true }], hostname: 'rack1-u20' });
  const declaredAck = await h.dora(declared);
  assert.equal(declaredAck.options.messageType, 'ack');
  assert.ok(![...fleetIp.values()].includes(declaredAck.yiaddr));
  assert.equal(h.dhcp.stats.reclaimed, before + 1);
  // ...but a stranger past the cap still gets nothing.
  const stranger = randomMac();
  await assert.rejects(h.agent.exchange(h.packet({ type: D.discover, mac: stranger }), h.dhcp.ports().dhcp, 1000), /no reply/);
  assert.equal(store.nodes.findByMac(parseMac(stranger)!), undefined);
});

test('a booted node’s lease is never taken for a new MAC: with only booted nodes in the pool, the new MAC gets nothing', async (t) => {
  const h = await setup(t);
  const held = new Map<string, string>();
  for (let i = 0; i < POOL; i++) {
    const mac = `52:54:00:61:00:${i.toString(16).padStart(2, '0')}`;
    const ack = await h.dora(mac);
    assert.equal(ack.options.messageType, 'ack', mac);
    assert.equal((await h.checkin(mac)).status, 200);
    held.set(mac, ack.yiaddr);
  }
  const stranger = randomMac();
  await assert.rejects(h.agent.exchange(h.packet({ type: D.discover, mac: stranger }), h.dhcp.ports().dhcp, 1000), /no reply/);
  assert.equal(h.dhcp.stats.reclaimed, 0);
  assert.ok(h.dhcp.stats.poolExhausted >= 1);
  for (const [mac, ip] of held) assert.equal(h.dhcp.lease(ip)?.mac, mac);
});

test(
  'perfdhcp with 100,000 clients in a network namespace: booted nodes keep their leases, the registry stops at the cap, refusals are counted',
  { timeout: 180_000, skip: requires({ root: 'a network namespace', commands: ['ip', 'perfdhcp', 'curl'] }) },
  async (t) => {
    const dir = tempDir(t);
    const dataDir = join(dir, 'var');
    mkdirSync(dataDir, { recursive: true });
    const cap = 500;
    // Three nodes that have booted (checked in), each holding a bound lease in the pool.
    const fleet = ['52:54:00:62:00:01', '52:54:00:62:00:02', '52:54:00:62:00:03'];
    const store = Store.open(Store.fileIn(dataDir));
    const now = Date.now();
    fleet.forEach((mac) => {
      const n = store.nodes.create({ nics: [{ mac: parseMac(mac)!, isAdmin: true }], state: 'running' });
      store.nodes.update(n.id, { lastSeen: now, lastBoot: now });
    });
    store.leases.saveAll(
      fleet.map((mac, i) => ({ ip: `10.82.0.${100 + i}`, network: 'rack', mac: parseMac(mac)!, clientId: null, hostname: null, state: 'bound' as const, expiresAt: now + 3_600_000, relayInfo: null, updatedAt: now })),
    );
    store.close();

    // perfdhcp always acts as a relay (giaddr = -l), so server and load both sit on the
    // namespace's loopback: 127.0.0.2 relays to fleetboot on 127.0.0.3:67.
    const lan = await bridgedLan(t, 'exh', '10.82.0.1/24', []);
    // perfdhcp looks for -l among the interfaces' addresses.
    for (const a of ['127.0.0.2/8', '127.0.0.3/8']) await execa('ip', ['-n', lan.server, 'addr', 'add', a, 'dev', 'lo']);
    const serve = await serveIn(
      lan,
      dir,
      {
        dataDir,
        apiTokenFile: join(dataDir, 'api-token'),
        unknownNodePolicy: 'discover',
        dhcp: { mode: 'full', listen: '127.0.0.3', port: 67, relayReplyPort: 67, maxUnbootedDiscovered: cap },
        networks: [{ name: 'rack', subnet: '10.82.0.0/24', serverAddress: '10.82.0.1', range: { start: '10.82.0.100', end: '10.82.0.119' }, relayAddresses: ['127.0.0.2'], leaseSeconds: 3600 }],
      },
      /"event":"dhcp_started"/,
    );
    // -R 100000 distinct MACs, 2,000 exchanges a second for 8 s; -W: wait 200 ms for late answers.
    const perf = await execa('ip', ['netns', 'exec', lan.server, 'perfdhcp', '-4', '-l', '127.0.0.2', '-r', '2000', '-R', '100000', '-p', '8', '-W', '200000', '127.0.0.3'], {
      reject: false,
      timeout: 60_000,
    });
    const sent = Number(/sent packets: (\d+)/.exec(perf.stdout)?.[1] ?? 0);
    assert.ok(sent > 2 * cap, `perfdhcp sent ${sent} DISCOVERs\n${perf.stdout}\n${perf.stderr}`);
    const counters = await serve.counters<{ dhcp: DhcpStats }>();
    assert.ok(counters.dhcp.unknownCapped > 0, JSON.stringify(counters.dhcp));
    assert.ok(counters.dhcp.reclaimed > 0, JSON.stringify(counters.dhcp));

    const db = new Database(Store.fileIn(dataDir), { readonly: true, fileMustExist: true });
    t.after(() => db.close());
    const nodes = db.prepare<[], number>('SELECT count(*) FROM nodes').pluck().get()!;
    assert.ok(nodes <= cap + fleet.length, `${nodes} nodes registered, cap ${cap}`);
    assert.ok(nodes > fleet.length, 'the flood registered some nodes');
    const leases = db.prepare<[], { ip: string; mac: string; state: string }>('SELECT ip, mac, state FROM leases ORDER BY ip').all();
    fleet.forEach((mac, i) => {
      const l = leases.find((r) => r.ip === `10.82.0.${100 + i}`);
      assert.deepEqual(l && { mac: l.mac, state: l.state }, { mac, state: 'bound' }, `lease of ${mac}`);
    });
    // The log says so once, not per packet.
    const lines = serve.log().split('\n').filter((l) => l.includes('"event":"dhcp_unknown_capped"'));
    assert.equal(lines.length, 1, lines.join('\n'));
  },
);
