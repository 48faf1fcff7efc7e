// `fleetboot node rm`, run as an operator runs it beside a running head node: the node, its
// NICs and boot events go, its leases are released, and the machine is registered afresh
// (with a new id) when it boots again.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseMac } from '../src/mac.ts';
import { setupNode } from '../src/nodeconfig/lifecycle.ts';
import { nodeKeysIn } from '../src/nodeconfig/secrets.ts';
import { importLinuxPlatform, readLinuxManifest } from '../src/platforms/import.ts';
import { Store } from '../src/store/store.ts';
import { clientPacket, RelayAgent } from './dhcp-fixtures.ts';
import { runCli, startHeadNode, tempDir } from './fixtures.ts';
import { writeLinuxPlatform } from './platform-fixtures.ts';

const DISCOVER = 1;
const REQUEST = 3;
const count = (store: Store, sql: string, ...args: (number | string)[]): number => (store.db.prepare(sql).get(...args) as { n: number }).n;

test('node rm deletes the node with its NICs and boot events (indexed and not), releases its leases; its next DISCOVER registers it afresh', async (t) => {
  const agent = await RelayAgent.open(t);
  const dir = tempDir(t);
  const network = { name: 'rack', subnet: '10.42.0.0/24', serverAddress: '10.42.0.1', range: { start: '10.42.0.100', end: '10.42.0.120' }, relayAddresses: ['127.0.0.1'] };
  const { head } = await startHeadNode(t, dir, { dhcp: { mode: 'full', listen: '127.0.0.1', port: 0, relayReplyPort: agent.port }, networks: [network] });
  writeFileSync(join(dir, 'fleetboot.json'), JSON.stringify({ log: { level: 'silent' } }));
  const store = head.store;
  const port = head.dhcp!.ports().dhcp;
  const mac = '52:54:00:42:00:01';
  let xid = 0x4200;
  const dora = async (): Promise<string> => {
    const offer = await agent.exchange(clientPacket({ type: DISCOVER, mac, giaddr: '127.0.0.1', xid: ++xid, model: 'ipxe-bios' }), port);
    const ack = await agent.exchange(clientPacket({ type: REQUEST, mac, giaddr: '127.0.0.1', xid: ++xid, model: 'ipxe-bios', requested: offer.yiaddr, serverId: '10.42.0.1' }), port);
    assert.equal(ack.options.messageType, 'ack');
    await head.dhcp!.settled();
    return ack.yiaddr;
  };

  const ip = await dora();
  const node = store.nodes.findByMac(parseMac(mac)!)!;
  assert.ok(node, 'the DISCOVER registered the machine');
  // Some of its events indexed by the store worker, the newest still in the journal's tail.
  const deadline = Date.now() + 30_000;
  while (count(store, 'SELECT count(*) AS n FROM boot_events_by_node WHERE node_id = ?', node.id) === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.ok(count(store, 'SELECT count(*) AS n FROM boot_events_by_node WHERE node_id = ?', node.id) > 0, 'the worker indexed its first events');
  await dora();
  const events = store.events.timeline(node.id).length;
  assert.ok(events >= 4, `${events} events`);
  assert.equal(store.leases.get(ip)?.state, 'bound');

  const rm = await runCli(['node', 'rm', mac], dir);
  assert.equal(rm.exitCode, 0, String(rm.stderr));
  assert.equal(String(rm.stdout), `removed node ${node.id}: ${events} boot event(s) deleted, 1 lease(s) released`);
  assert.equal(store.nodes.get(node.id), undefined);
  assert.equal(store.nodes.findByMac(parseMac(mac)!), undefined);
  assert.equal(count(store, 'SELECT count(*) AS n FROM boot_events WHERE node_id = ?', node.id), 0);
  assert.equal(count(store, 'SELECT count(*) AS n FROM boot_events_by_node WHERE node_id = ?', node.id), 0);
  assert.equal(store.leases.get(ip)?.state, 'released');
  assert.deepEqual(store.db.pragma('foreign_key_check'), []);

  // The running head node hears of it: the next DISCOVER registers a new node, with a new id.
  const offer = await agent.exchange(clientPacket({ type: DISCOVER, mac, giaddr: '127.0.0.1', xid: ++xid, model: 'ipxe-bios' }), port);
  assert.equal(offer.options.messageType, 'offer');
  await head.dhcp!.settled();
  const again = store.nodes.findByMac(parseMac(mac)!);
  assert.ok(again, 'registered afresh');
  assert.equal(again.state, 'discovered');
  assert.ok(again.id > node.id, `new id ${again.id} after the removed ${node.id}`);
  assert.deepEqual(store.events.timeline(again.id).map((e) => e.event), ['dhcp_discover']);

  const missing = await runCli(['node', 'rm', '52:54:00:42:00:99'], dir);
  assert.equal(missing.exitCode, 2);
  assert.match(String(missing.stderr), /^fleetboot: no node "52:54:00:42:00:99"/);
});

test('node rm is refused while a rollout holds the node, and allowed once it is cancelled', async (t) => {
  const dir = tempDir(t);
  const store = Store.open(Store.fileIn(join(dir, 'var')));
  try {
    for (const stamp of ['lab-A', 'lab-B']) {
      const m = readLinuxManifest(writeLinuxPlatform(join(dir, 'src'), { stamp }));
      await importLinuxPlatform(m.manifest, m.dir, { store, platformImagesDir: join(dir, 'platform-images') });
    }
    const mac = parseMac('52:54:00:42:01:01')!;
    const node = setupNode(store, nodeKeysIn(join(dir, 'var')), store.nodes.discover({ mac }).node, { network: { hostname: 'cn1', nics: [{ mac, tags: ['admin'] }] } });
    store.nodes.update(node.id, { bootPlatform: 'lab-A', currentPlatform: 'lab-A', state: 'running' });
  } finally {
    store.close();
  }
  assert.equal((await runCli(['rollout', 'start', '--target', 'lab-B', '--nodes', 'cn1', '--canary', '0'], dir)).exitCode, 0);
  const refused = await runCli(['node', 'rm', 'cn1'], dir);
  assert.equal(refused.exitCode, 2);
  assert.match(String(refused.stderr), /^fleetboot: node \d+ is in rollout 1 \(step pending\); cancel it \(fleetboot rollout cancel 1\) or wait for it to finish$/);
  assert.match(String((await runCli(['node', 'list', '--json'], dir)).stdout), /cn1/);
  assert.equal((await runCli(['rollout', 'cancel', '1'], dir)).exitCode, 0);
  const rm = await runCli(['node', 'rm', 'cn1', '--json'], dir);
  assert.equal(rm.exitCode, 0, String(rm.stderr));
  assert.deepEqual(JSON.parse(String(rm.stdout)), { removed: 1, hostname: 'cn1', macs: ['52:54:00:42:01:01'], bootEvents: 1, leasesReleased: 0 });
});
