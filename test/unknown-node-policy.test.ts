// The unknown-node policy, end to end on one head node: a machine fleetboot has never seen
// sends real DHCP packets (full and ProxyDHCP, through a loopback relay), asks for its boot
// script and checks in. What it is answered, and what the registry holds afterwards, must
// agree everywhere (nodeconfig/admission.ts is the one place that decides).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ConfigInput } from '../src/config/schema.ts';
import { parseMac } from '../src/mac.ts';
import { importLinuxPlatform, readLinuxManifest } from '../src/platforms/import.ts';
import { clientPacket, RelayAgent, type PacketSpec } from './dhcp-fixtures.ts';
import { startHeadNode, tempDir } from './fixtures.ts';
import { writeLinuxPlatform } from './platform-fixtures.ts';

const D = { discover: 1, request: 3 } as const;
type Policy = 'discover' | 'ignore' | 'allow-list';

async function headNode(t: Parameters<typeof tempDir>[0], policy: Policy, mode: 'full' | 'proxy', maxUnbootedDiscovered?: number) {
  const agent = await RelayAgent.open(t);
  const dir = tempDir(t);
  const cfg: ConfigInput = {
    unknownNodePolicy: policy,
    dhcp: { mode, listen: '127.0.0.1', port: 0, proxyPort: 0, relayReplyPort: agent.port, ...(maxUnbootedDiscovered !== undefined ? { maxUnbootedDiscovered } : {}) },
    networks: [{ name: 'rack', subnet: '10.40.0.0/24', serverAddress: '10.40.0.1', range: { start: '10.40.0.100', end: '10.40.0.120' }, relayAddresses: ['127.0.0.1'] }],
  };
  const h = await startHeadNode(t, dir, cfg);
  const m = readLinuxManifest(writeLinuxPlatform(dir, { stamp: 'lab-6.1' }));
  await importLinuxPlatform(m.manifest, m.dir, { store: h.head.store, platformImagesDir: h.head.config.platformImagesDir });
  const port = h.head.dhcp!.ports().dhcp;
  let xid = 0x500;
  const packet = (spec: Omit<PacketSpec, 'giaddr' | 'xid'>): Buffer => clientPacket({ giaddr: '127.0.0.1', xid: ++xid, model: 'ipxe-bios', ...spec });
  // A registered machine the server always answers: its reply proves earlier packets were handled.
  const probeMac = parseMac('52:54:00:40:ff:ff')!;
  h.head.store.nodes.create({ nics: [{ mac: probeMac, isAdmin: true }] });
  /** The server's answer to `bytes`, or null when it stayed silent. */
  const answer = async (bytes: Buffer) => {
    const id = bytes.readUInt32BE(4);
    agent.send(bytes, port);
    if (await agent.silentAbout(id, packet({ type: D.discover, mac: probeMac }), port, () => h.head.dhcp!.settled())) return null;
    return agent.reply(id);
  };
  const script = async (mac: string) => (await fetch(`${h.url}/boot/node.ipxe?mac=${mac}&uuid=&serial=&arch=x86_64`)).text();
  const checkin = (mac: string) =>
    fetch(`${h.url}/api/v1/nodes/checkin`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ uuid: null, nics: [{ mac, name: 'eth0', ip: null }], cpu: { model: 'QEMU', count: 1 }, ramBytes: 1 << 29, platform: 'lab-6.1', bootTime: 1_790_000_000 }),
    });
  const registered = (mac: string) => h.head.store.nodes.findByMac(parseMac(mac)!) !== undefined;
  return { ...h, packet, answer, script, checkin, registered };
}

test('discover: DHCP registers an unknown machine, its script boots discovery, a new machine may check in', async (t) => {
  const h = await headNode(t, 'discover', 'full');
  const offer = await h.answer(h.packet({ type: D.discover, mac: '52:54:00:40:00:01' }));
  assert.equal(offer?.options.messageType, 'offer');
  assert.ok(h.registered('52:54:00:40:00:01'));
  assert.equal(h.head.store.nodes.findByMac(parseMac('52:54:00:40:00:01')!)?.state, 'discovered');
  assert.match(await h.script('52:54:00:40:00:01'), /^kernel .*fleetboot_mode=discovery/m);
  assert.equal((await h.checkin('52:54:00:40:00:02')).status, 201);
  assert.ok(h.registered('52:54:00:40:00:02'));
});

test('discover under ProxyDHCP: a PXE machine is registered too', async (t) => {
  const h = await headNode(t, 'discover', 'proxy');
  const offer = await h.answer(h.packet({ type: D.discover, mac: '52:54:00:40:01:01' }));
  assert.equal(offer?.options.messageType, 'offer');
  assert.equal(offer?.yiaddr, '0.0.0.0');
  assert.ok(h.registered('52:54:00:40:01:01'));
});

test('ignore under full DHCP: an unknown machine gets an address but is not registered, and its script is exit', async (t) => {
  const h = await headNode(t, 'ignore', 'full');
  const mac = '52:54:00:40:02:01';
  const offer = await h.answer(h.packet({ type: D.discover, mac }));
  assert.equal(offer?.options.messageType, 'offer');
  const ack = await h.answer(h.packet({ type: D.request, mac, requested: offer!.yiaddr, serverId: '10.40.0.1' }));
  assert.equal(ack?.options.messageType, 'ack');
  assert.equal(h.head.store.leases.get(offer!.yiaddr)?.mac, mac);
  assert.equal(h.registered(mac), false);
  const body = await h.script(mac);
  assert.match(body, /^exit 0$/m);
  assert.doesNotMatch(body, /^kernel /m);
  assert.equal(h.registered(mac), false);
  const res = await h.checkin(mac);
  assert.equal(res.status, 403);
  assert.match(((await res.json()) as { error: { message: string } }).error.message, /unknown-node policy is "ignore"/);
  // Only the probe the test registered itself: nothing the stranger did wrote a node.
  assert.deepEqual(h.head.store.nodes.list().map((n) => n.nics[0]?.mac), ['52:54:00:40:ff:ff']);
});

test('ignore under ProxyDHCP: silent for an unknown machine, and nothing registered', async (t) => {
  const h = await headNode(t, 'ignore', 'proxy');
  assert.equal(await h.answer(h.packet({ type: D.discover, mac: '52:54:00:40:03:01' })), null);
  assert.equal(h.registered('52:54:00:40:03:01'), false);
  assert.match(await h.script('52:54:00:40:03:01'), /^exit 0$/m);
  assert.equal(h.registered('52:54:00:40:03:01'), false);
});

test('allow-list: silent for an unknown MAC in full DHCP and ProxyDHCP, exit script, refused check-in; known MACs boot', async (t) => {
  for (const mode of ['full', 'proxy'] as const) {
    const h = await headNode(t, 'allow-list', mode);
    const mac = '52:54:00:40:04:01';
    assert.equal(await h.answer(h.packet({ type: D.discover, mac })), null, mode);
    assert.equal(await h.answer(h.packet({ type: D.request, mac, requested: '10.40.0.100', serverId: '10.40.0.1' })), null, mode);
    assert.match(await h.script(mac), /^exit 0$/m);
    assert.equal((await h.checkin(mac)).status, 403);
    assert.equal(h.registered(mac), false, mode);
    assert.equal(h.head.store.leases.list().length, 0, mode);
    // A MAC the operator registered is answered and boots.
    const known = '52:54:00:40:04:02';
    h.head.store.nodes.create({ nics: [{ mac: parseMac(known)!, isAdmin: true }] });
    assert.equal((await h.answer(h.packet({ type: D.discover, mac: known })))?.options.messageType, 'offer', mode);
    assert.match(await h.script(known), /^kernel /m);
  }
});

test('a known machine booting from a new port is not unknown: under ignore its UUID admits the new NIC', async (t) => {
  const h = await headNode(t, 'ignore', 'full');
  const uuid = '6b4a3e5c-0d3f-4f0e-9d7a-2f6c1b2a3c4d';
  const node = h.head.store.nodes.create({ nics: [{ mac: parseMac('52:54:00:40:05:01')!, isAdmin: true }], uuid });
  // Option 97 in the firmware's byte order: the first three fields swapped.
  await h.answer(h.packet({ type: D.discover, mac: '52:54:00:40:05:02', uuid: '5c3e4a6b3f0d0e4f9d7a2f6c1b2a3c4d' }));
  assert.equal(h.head.store.nodes.findByMac(parseMac('52:54:00:40:05:02')!)?.id, node.id);
  assert.equal(h.head.store.nodes.list().length, 2); // the node and the probe
});

test('discover: the boot-script route registers unknown machines only up to dhcp.maxUnbootedDiscovered, as DHCP does', async (t) => {
  // The probe node the fixture makes counts too: it is discovered and has never booted.
  const h = await headNode(t, 'discover', 'full', 3);
  assert.match(await h.script('52:54:00:40:05:01'), /^kernel .*fleetboot_mode=discovery/m);
  assert.match(await h.script('52:54:00:40:05:02'), /^kernel .*fleetboot_mode=discovery/m);
  const refused = await h.script('52:54:00:40:05:03');
  assert.doesNotMatch(refused, /^kernel /m);
  assert.ok(!h.registered('52:54:00:40:05:03'), 'past the cap a script request registers nothing');
  assert.ok(h.registered('52:54:00:40:05:01') && h.registered('52:54:00:40:05:02'));
});
