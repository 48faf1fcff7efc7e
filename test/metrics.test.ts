// GET /metrics: a head node in-process, driven through a DHCP exchange (as a relay agent,
// RFC 2131 §4.1), a TFTP read, a platform download and a check-in; the scrape must move as
// those did and pass `promtool check metrics` (prometheus/prometheus cmd/promtool). Then DHCP
// packets of every type a client sends, a forced WAL checkpoint, and a boot timed from the
// timeline at its check-in, each under its own metric.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { execa } from 'execa';
import type { ConfigInput } from '../src/config/schema.ts';
import { importSmartosTarball } from '../src/platforms/import.ts';
import type { Mac } from '../src/mac.ts';
import { clientPacket, RelayAgent } from './dhcp-fixtures.ts';
import { startHeadNode, tempDir, type RunningHeadNode } from './fixtures.ts';
import { checkinReport } from './node-fixtures.ts';
import { writeSmartosTarball } from './platform-fixtures.ts';
import { requires } from './requires.ts';

// RFC 2132 §9.6 option 53.
const D = { discover: 1, offer: 2, request: 3, decline: 4, release: 7, inform: 8 } as const;

/** Full DHCP on loopback for networks reached through the relay agent at 127.0.0.1. */
function relayedDhcp(agent: RelayAgent): ConfigInput {
  return {
    dhcp: { mode: 'full', listen: '127.0.0.1', port: 0, relayReplyPort: agent.port },
    networks: [
      {
        name: 'rack',
        subnet: '10.20.0.0/24',
        serverAddress: '10.20.0.1',
        gateway: '10.20.0.254',
        range: { start: '10.20.0.100', end: '10.20.0.103' },
        relayAddresses: ['127.0.0.1'],
        leaseSeconds: 600,
      },
    ],
  };
}

async function assertPromtoolAccepts(text: string): Promise<void> {
  const check = await execa('promtool', ['check', 'metrics'], { input: text, reject: false });
  assert.equal(check.exitCode, 0, `promtool check metrics:\n${check.stdout}${check.stderr}`);
}

async function scrape(h: RunningHeadNode): Promise<string> {
  const res = await fetch(`${h.url}/metrics`, { headers: { authorization: `Bearer ${h.token}` } });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
  return res.text();
}

/** The value of the sample `series` (name with its labels as exposed), or null when absent. */
function sample(text: string, series: string): number | null {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return null;
}

test('GET /metrics wants the API token as a bearer token', async (t) => {
  const h = await startHeadNode(t, tempDir(t));
  assert.equal((await fetch(`${h.url}/metrics`)).status, 401);
  const wrong = await fetch(`${h.url}/metrics`, { headers: { authorization: 'Bearer not-the-token' } });
  assert.equal(wrong.status, 401);
  assert.equal(wrong.headers.get('www-authenticate'), 'Bearer realm="fleetboot"');
  assert.match(await scrape(h), /^fleetboot_nodes\{state="discovered"\} 0$/m);
});

test('DHCP, TFTP, a platform download and a check-in move the metrics, and promtool accepts the scrape', { skip: requires({ commands: ['curl', 'promtool'] }) }, async (t) => {
  const dir = tempDir(t);
  const ipxe = tempDir(t);
  const out = tempDir(t);
  const file = Buffer.alloc(5000, 7);
  writeFileSync(join(ipxe, 'undionly.kpxe'), file);
  const agent = await RelayAgent.open(t);
  const h = await startHeadNode(t, dir, {
    ipxeDir: ipxe,
    tftp: { enabled: true, listen: '127.0.0.1', port: 0 },
    ...relayedDhcp(agent),
  });
  const before = await scrape(h);
  assert.equal(sample(before, 'fleetboot_dhcp_received_packets_total'), 0);
  assert.equal(sample(before, 'fleetboot_dhcp_bound_leases{network="rack"}'), 0);
  assert.equal(sample(before, 'fleetboot_tftp_sent_bytes_total'), 0);
  assert.equal(sample(before, 'fleetboot_http_platform_sent_bytes_total{platform="20240101T000000Z"}'), null);

  // DORA for one machine, and one packet that is not DHCP at all.
  const port = h.head.dhcp!.ports().dhcp;
  const mac = '52:54:00:00:0e:01';
  const offer = await agent.exchange(clientPacket({ giaddr: '127.0.0.1', xid: 1, type: D.discover, mac, model: 'udhcpc' }), port);
  assert.equal(offer.options.messageType, 'offer');
  const ackPacket = await agent.exchange(clientPacket({ giaddr: '127.0.0.1', xid: 2, type: D.request, mac, model: 'udhcpc', requested: offer.yiaddr, serverId: '10.20.0.1' }), port);
  assert.equal(ackPacket.options.messageType, 'ack');
  agent.send(Buffer.from('not a BOOTP message'), port);
  await agent.exchange(clientPacket({ giaddr: '127.0.0.1', xid: 3, type: D.discover, mac: '52:54:00:00:0e:02', model: 'udhcpc' }), port);
  await h.head.dhcp!.settled(); // an offer leaves before the commit that records its lease

  // A TFTP read.
  await execa('curl', ['-sS', '--tftp-blksize', '1432', '-o', join(out, 'u'), `tftp://127.0.0.1:${h.head.tftp.address()!.port}/undionly.kpxe`]);
  await h.head.tftp.whenIdle();

  // A platform download and a first check-in from a machine DHCP never saw.
  await importSmartosTarball(writeSmartosTarball(dir), { store: h.head.store, platformImagesDir: h.head.config.platformImagesDir });
  const os = await fetch(`${h.url}/os/20240101T000000Z/platform/i86pc/amd64/boot_archive`);
  assert.equal(os.status, 200);
  const archive = Buffer.from(await os.arrayBuffer());
  const checkin = await fetch(`${h.url}/api/v1/nodes/checkin`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      uuid: null,
      hostname: null,
      nics: [{ mac: '52:54:00:00:0e:09', name: 'eth0', ip: null }],
      cpu: { model: 'QEMU Virtual CPU', count: 2 },
      ramBytes: 536870912,
      disks: [],
      platform: 'linux-test',
      bootTime: 1_790_000_000,
      modules: {},
    }),
  });
  assert.equal(checkin.status, 201, await checkin.clone().text());

  const after = await scrape(h);
  assert.equal(sample(after, 'fleetboot_dhcp_received_packets_total'), 4);
  assert.equal(sample(after, 'fleetboot_dhcp_unanswered_packets_total{outcome="malformed"}'), 1);
  assert.equal(sample(after, 'fleetboot_dhcp_replies_total{outcome="sent"}'), 3);
  assert.equal(sample(after, 'fleetboot_dhcp_bound_leases{network="rack"}'), 1);
  assert.equal(sample(after, 'fleetboot_tftp_requests_total'), 1);
  assert.equal(sample(after, 'fleetboot_tftp_transfers_total{outcome="served"}'), 1);
  assert.equal(sample(after, 'fleetboot_tftp_sent_bytes_total'), file.length);
  assert.equal(sample(after, 'fleetboot_http_platform_sent_bytes_total{platform="20240101T000000Z"}'), archive.length);
  // The two DHCP clients and the one that checked in, all new to the registry.
  assert.equal(sample(after, 'fleetboot_nodes{state="discovered"}'), 3);
  assert.equal(sample(after, 'fleetboot_rollout_boot_duration_seconds_count'), 0);
  assert.ok((sample(after, 'fleetboot_store_wal_bytes') ?? 0) > 0, 'the registry has a WAL while it runs');

  // Every family the operator surface lists is in the scrape.
  for (const family of [
    'fleetboot_dhcp_packets_total',
    'fleetboot_dhcp_bound_leases',
    'fleetboot_tftp_transfers_total',
    'fleetboot_tftp_sent_bytes_total',
    'fleetboot_http_platform_sent_bytes_total',
    'fleetboot_boots_in_flight',
    'fleetboot_boot_slots_in_use',
    'fleetboot_boot_admissions_total',
    'fleetboot_boot_duration_seconds',
    'fleetboot_nodes',
    'fleetboot_rollout_progress_ratio',
    'fleetboot_store_wal_bytes',
    'fleetboot_store_checkpoint_seconds',
    'fleetboot_store_last_checkpoint_timestamp_seconds',
  ]) {
    assert.match(after, new RegExp(`^# TYPE ${family} `, 'm'), family);
  }
  await assertPromtoolAccepts(after);
});

test('DHCP packets are counted by message type and by what the server did with them', { skip: requires({ commands: ['promtool'] }) }, async (t) => {
  const agent = await RelayAgent.open(t);
  const h = await startHeadNode(t, tempDir(t), relayedDhcp(agent));
  const before = await scrape(h);
  // Pairs the server can produce are there at 0 before any packet.
  assert.equal(sample(before, 'fleetboot_dhcp_packets_total{type="discover",outcome="offered"}'), 0);
  assert.equal(sample(before, 'fleetboot_dhcp_packets_total{type="request",outcome="naked"}'), 0);
  assert.equal(sample(before, 'fleetboot_dhcp_packets_total{type="malformed",outcome="dropped"}'), 0);

  const port = h.head.dhcp!.ports().dhcp;
  const relayed = { giaddr: '127.0.0.1', model: 'udhcpc' } as const;
  const a = '52:54:00:00:0f:01';
  // DISCOVER -> OFFER, REQUEST (SELECTING, RFC 2131 §4.3.2) -> ACK.
  const offer = await agent.exchange(clientPacket({ ...relayed, xid: 0x101, type: D.discover, mac: a }), port);
  assert.equal(offer.options.messageType, 'offer');
  const ack = await agent.exchange(clientPacket({ ...relayed, xid: 0x102, type: D.request, mac: a, requested: offer.yiaddr, serverId: '10.20.0.1' }), port);
  assert.equal(ack.options.messageType, 'ack');
  // INIT-REBOOT for an address off this network: NAK (§4.3.2).
  const nak = await agent.exchange(clientPacket({ ...relayed, xid: 0x103, type: D.request, mac: '52:54:00:00:0f:02', requested: '10.99.0.5' }), port);
  assert.equal(nak.options.messageType, 'nak');
  // INFORM from the bound address: an ACK with configuration only (§4.3.5).
  const informed = await agent.exchange(clientPacket({ ...relayed, xid: 0x104, type: D.inform, mac: a, ciaddr: offer.yiaddr }), port);
  assert.equal(informed.options.messageType, 'ack');
  // No reply owed: a REQUEST choosing another server, a DECLINE, a RELEASE (§4.3.2-4.3.4);
  // an OFFER sent by a client, a DISCOVER from a relay no network names, a BOOTREQUEST the
  // decoder refuses (hlen 0), and garbage the socket filter keeps out (dhcp/udp.ts).
  const badHlen = clientPacket({ ...relayed, xid: 0x10b, type: D.discover, mac: '52:54:00:00:0f:06' });
  badHlen[2] = 0;
  agent.send(clientPacket({ ...relayed, xid: 0x105, type: D.request, mac: '52:54:00:00:0f:03', requested: '10.20.0.50', serverId: '10.20.0.9' }), port);
  agent.send(clientPacket({ ...relayed, xid: 0x106, type: D.decline, mac: a, requested: offer.yiaddr, serverId: '10.20.0.1' }), port);
  agent.send(clientPacket({ ...relayed, xid: 0x107, type: D.release, mac: a, ciaddr: offer.yiaddr, serverId: '10.20.0.1' }), port);
  agent.send(clientPacket({ ...relayed, xid: 0x108, type: D.offer, mac: a }), port);
  agent.send(clientPacket({ giaddr: '10.99.0.1', xid: 0x109, type: D.discover, mac: '52:54:00:00:0f:04' }), port);
  agent.send(badHlen, port);
  agent.send(Buffer.from('not a BOOTP message'), port);
  // The answer to a later DISCOVER proves the server has read every datagram before it.
  const probe = await agent.exchange(clientPacket({ ...relayed, xid: 0x10a, type: D.discover, mac: '52:54:00:00:0f:05' }), port);
  assert.equal(probe.options.messageType, 'offer');
  await h.head.dhcp!.settled();

  const after = await scrape(h);
  const packets = (type: string, outcome: string): number | null => sample(after, `fleetboot_dhcp_packets_total{type="${type}",outcome="${outcome}"}`);
  assert.equal(packets('discover', 'offered'), 2);
  assert.equal(packets('discover', 'ignored'), 1);
  assert.equal(packets('request', 'acked'), 1);
  assert.equal(packets('request', 'naked'), 1);
  assert.equal(packets('request', 'recorded'), 1);
  assert.equal(packets('inform', 'acked'), 1);
  assert.equal(packets('decline', 'recorded'), 1);
  assert.equal(packets('release', 'recorded'), 1);
  assert.equal(packets('other', 'ignored'), 1);
  assert.equal(packets('malformed', 'dropped'), 1);
  assert.equal(packets('unknown', 'dropped'), 1);
  assert.equal(packets('discover', 'exhausted'), 0);
  // Every datagram is in exactly one pair, and the older metrics still agree.
  const total = [...after.matchAll(/^fleetboot_dhcp_packets_total\{[^}]*\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
  assert.equal(total, 12);
  assert.equal(sample(after, 'fleetboot_dhcp_received_packets_total'), 12);
  assert.equal(sample(after, 'fleetboot_dhcp_unanswered_packets_total{outcome="malformed"}'), 2);
  assert.equal(sample(after, 'fleetboot_dhcp_unanswered_packets_total{outcome="ignored"}'), 2);
  assert.equal(sample(after, 'fleetboot_dhcp_replies_total{outcome="sent"}'), 5);
  await assertPromtoolAccepts(after);
});

test('a forced WAL checkpoint shows in the checkpoint metrics, and an idle WAL adds no checkpointed frames', { skip: requires({ commands: ['promtool'] }) }, async (t) => {
  const h = await startHeadNode(t, tempDir(t));
  const before = await scrape(h);
  const passes0 = sample(before, 'fleetboot_store_checkpoint_seconds_count{mode="passive"}');
  assert.notEqual(passes0, null);

  h.head.store.events.record({ event: 'state', detail: { note: 'a write for the WAL' } });
  const askedAt = Date.now() / 1000;
  await h.head.storeWorker.checkpointNow();
  const doneAt = Date.now() / 1000;
  const first = await scrape(h);
  assert.ok(sample(first, 'fleetboot_store_checkpoint_seconds_count{mode="passive"}')! > passes0!);
  assert.ok(sample(first, 'fleetboot_store_checkpoint_seconds_sum{mode="passive"}')! > 0);
  assert.notEqual(sample(first, 'fleetboot_store_checkpoint_seconds_count{mode="restart"}'), null);
  const last = sample(first, 'fleetboot_store_last_checkpoint_timestamp_seconds')!;
  assert.ok(last >= askedAt - 0.001 && last <= doneAt + 0.001, `last checkpoint at ${last}, asked at ${askedAt}, done by ${doneAt}`);
  const lastSeconds = sample(first, 'fleetboot_store_last_checkpoint_duration_seconds')!;
  assert.ok(lastSeconds > 0 && lastSeconds < doneAt - askedAt + 0.001, `last checkpoint took ${lastSeconds} s`);
  const frames = sample(first, 'fleetboot_store_checkpointed_frames_total')!;
  assert.ok(frames > 0, 'the write was checkpointed');

  // The WAL stays as it is until the next write: passes over it copy nothing new.
  await h.head.storeWorker.checkpointNow();
  await h.head.storeWorker.checkpointNow();
  const idle = await scrape(h);
  assert.equal(sample(idle, 'fleetboot_store_checkpointed_frames_total'), frames);
  assert.ok(sample(idle, 'fleetboot_store_checkpoint_seconds_count{mode="passive"}')! >= sample(first, 'fleetboot_store_checkpoint_seconds_count{mode="passive"}')! + 2);
  await assertPromtoolAccepts(idle);
});

test('a check-in that ends a boot observes that boot, DISCOVER to check-in, in the boot-duration histogram', { skip: requires({ commands: ['promtool'] }) }, async (t) => {
  const agent = await RelayAgent.open(t);
  const t0 = Date.parse('2026-11-02T10:00:00Z');
  let clock = t0;
  const h = await startHeadNode(t, tempDir(t), relayedDhcp(agent), () => clock);
  const port = h.head.dhcp!.ports().dhcp;
  const mac = '52:54:00:00:0f:11' as Mac;
  const checkin = async (): Promise<void> => {
    const res = await fetch(`${h.url}/api/v1/nodes/checkin`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(checkinReport(mac)) });
    assert.ok(res.status === 200 || res.status === 201, await res.text());
  };
  const empty = await scrape(h);
  assert.equal(sample(empty, 'fleetboot_boot_duration_seconds_count'), 0);

  // DHCP at t0 and t0 + 2 s, then the booted OS checks in 47.5 s after the DISCOVER.
  const offer = await agent.exchange(clientPacket({ giaddr: '127.0.0.1', xid: 0x201, type: D.discover, mac, model: 'ipxe-bios' }), port);
  await h.head.dhcp!.settled();
  clock = t0 + 2000;
  await agent.exchange(clientPacket({ giaddr: '127.0.0.1', xid: 0x202, type: D.request, mac, model: 'ipxe-bios', requested: offer.yiaddr, serverId: '10.20.0.1' }), port);
  await h.head.dhcp!.settled();
  clock = t0 + 47_500;
  await checkin();
  const booted = await scrape(h);
  assert.equal(sample(booted, 'fleetboot_boot_duration_seconds_count'), 1);
  assert.equal(sample(booted, 'fleetboot_boot_duration_seconds_sum'), 47.5);
  assert.equal(sample(booted, 'fleetboot_boot_duration_seconds_bucket{le="45"}'), 0);
  assert.equal(sample(booted, 'fleetboot_boot_duration_seconds_bucket{le="60"}'), 1);
  assert.equal(sample(booted, 'fleetboot_boot_duration_seconds_bucket{le="+Inf"}'), 1);

  // The agent reporting again, with no boot in between, ends none.
  clock = t0 + 600_000;
  await checkin();
  const again = await scrape(h);
  assert.equal(sample(again, 'fleetboot_boot_duration_seconds_count'), 1);
  // The rollout's reboot-to-verified histogram is another metric, untouched by a plain boot.
  assert.equal(sample(again, 'fleetboot_rollout_boot_duration_seconds_count'), 0);
  await assertPromtoolAccepts(again);
});
