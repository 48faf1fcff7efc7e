// One machine is one node whichever SMBIOS byte order its UUID arrives in (src/uuid.ts): the
// firmware (DHCP option 97, iPXE ${uuid}) and the OS (check-in) may swap the first three fields.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseMac } from '../src/mac.ts';
import { loadMigrations, openDatabase } from '../src/store/db.ts';
import { Store } from '../src/store/store.ts';
import { swapUuidFields, uuidKey } from '../src/uuid.ts';
import { clientPacket, RelayAgent } from './dhcp-fixtures.ts';
import { runCli, startHeadNode, tempDir } from './fixtures.ts';

// What the lab's QEMU VMs report: iPXE and option 97 one way, /sys/class/dmi/id/product_uuid the other.
const firmware = 'fb1ab000-5d3c-4000-8000-000000000000';
const os = '00b01afb-3c5d-0040-8000-000000000000';

test('the two SMBIOS spellings of a UUID have one key', () => {
  assert.equal(swapUuidFields(firmware), os);
  assert.equal(swapUuidFields(os), firmware);
  assert.equal(uuidKey(firmware), uuidKey(os));
  assert.notEqual(uuidKey(firmware), uuidKey('fb1ab000-5d3c-4000-8000-000000000001'));
});

test('PXE with the firmware spelling, then a check-in with the OS spelling from another NIC: one node, both spellings shown', async (t) => {
  const dir = tempDir(t);
  const agent = await RelayAgent.open(t);
  const h = await startHeadNode(t, dir, {
    dhcp: { mode: 'full', listen: '127.0.0.1', port: 0, relayReplyPort: agent.port },
    networks: [{ name: 'rack', subnet: '10.41.0.0/24', serverAddress: '10.41.0.1', range: { start: '10.41.0.100', end: '10.41.0.120' }, relayAddresses: ['127.0.0.1'] }],
  });
  const macA = '52:54:00:41:00:01';
  const macB = '52:54:00:41:00:02';
  await agent.exchange(clientPacket({ type: 1, mac: macA, model: 'ipxe-bios', uuid: firmware.replace(/-/g, ''), giaddr: '127.0.0.1', xid: 1 }), h.head.dhcp!.ports().dhcp);
  await (await fetch(`${h.url}/boot/node.ipxe?mac=${macA}&uuid=${firmware}&serial=&arch=x86_64`)).text();
  const node = h.head.store.nodes.findByMac(parseMac(macA)!)!;
  assert.equal(node.uuid, firmware);

  // The OS reports the other spelling, and only its second NIC: still the same machine.
  const res = await fetch(`${h.url}/api/v1/nodes/checkin`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ uuid: os.toUpperCase(), nics: [{ mac: macB, name: 'eth1', ip: null }], cpu: { model: 'QEMU', count: 1 }, ramBytes: 1 << 29, platform: null, bootTime: 1_790_000_000 }),
  });
  assert.equal(res.status, 200);
  assert.equal(h.head.store.nodes.list().length, 1);
  const after = h.head.store.nodes.get(node.id)!;
  assert.equal(after.uuid, os, 'the OS spelling is the one shown');
  assert.deepEqual(after.uuidSources, { dhcp: firmware, ipxe: firmware, os });
  assert.deepEqual(after.nics.map((n) => n.mac).sort(), [macA, macB]);
  for (const spelling of [firmware, os, firmware.toUpperCase()]) assert.equal(h.head.store.nodes.find(spelling)?.id, node.id, spelling);

  // `node show` by either spelling finds it and says which source gave which.
  await h.head.stop();
  for (const spelling of [firmware, os]) {
    const shown = await runCli(['node', 'show', spelling], dir);
    assert.equal(shown.exitCode, 0, String(shown.stderr));
    assert.match(String(shown.stdout), new RegExp(`uuid: +${os} \\(from os\\)\n +${firmware} \\(from dhcp, ipxe: the same machine in the other SMBIOS byte order\\)`));
  }
});

test('a machine that checks in before it ever PXE-boots is found again by its firmware UUID', (t) => {
  const dir = tempDir(t);
  const store = Store.open(join(dir, 'fleetboot.db'));
  t.after(() => store.close());
  const first = store.nodes.discover({ mac: parseMac('52:54:00:41:01:01')!, uuid: os, uuidFrom: 'os' });
  const second = store.nodes.discover({ mac: parseMac('52:54:00:41:01:02')!, uuid: firmware, uuidFrom: 'dhcp' });
  assert.equal(second.created, false);
  assert.equal(second.node.id, first.node.id);
  assert.equal(second.node.uuid, os, 'a firmware report does not replace the OS spelling');
  assert.deepEqual(second.node.uuidSources, { os, dhcp: firmware });
});

test('a registry that holds one machine twice, once per byte order, keeps the older node as the machine', (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'fleetboot.db');
  const all = loadMigrations();
  const before = all.filter((m) => m.version < 5);
  const old = openDatabase(file, before);
  old.prepare('INSERT INTO nodes (uuid, created_at, updated_at) VALUES (?, 1, 1)').run(firmware);
  old.prepare('INSERT INTO nodes (uuid, created_at, updated_at) VALUES (?, 2, 2)').run(os);
  old.prepare('INSERT INTO nodes (uuid, created_at, updated_at) VALUES (?, 3, 3)').run('11111111-2222-3333-4444-555555555555');
  old.close();
  const store = Store.open(file);
  t.after(() => store.close());
  assert.equal(store.nodes.findByUuid(os)?.id, 1);
  assert.equal(store.nodes.findByUuid(firmware)?.id, 1);
  assert.equal(store.nodes.get(2)?.uuid, null);
  assert.equal(store.nodes.findByUuid('11111111-2222-3333-4444-555555555555')?.id, 3);
  // The key is unique: the other spelling cannot be given to another node.
  assert.throws(() => store.nodes.update(3, { uuid: os }), /UNIQUE/);
});
