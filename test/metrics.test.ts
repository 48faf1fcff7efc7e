// GET /metrics: a head node in-process, driven through a DHCP exchange (as a relay agent,
// RFC 2131 §4.1), a TFTP read, a platform download and a check-in; the scrape must move as
// those did and pass `promtool check metrics` (prometheus/prometheus cmd/promtool).
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { execa } from 'execa';
import { importSmartosTarball } from '../src/platforms/import.ts';
import { clientPacket, RelayAgent } from './dhcp-fixtures.ts';
import { startHeadNode, tempDir, type RunningHeadNode } from './fixtures.ts';
import { writeSmartosTarball } from './platform-fixtures.ts';
import { requires } from './requires.ts';

const D = { discover: 1, request: 3 } as const;

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

  const check = await execa('promtool', ['check', 'metrics'], { input: after, reject: false });
  assert.equal(check.exitCode, 0, `promtool check metrics:\n${check.stdout}${check.stderr}`);
});
