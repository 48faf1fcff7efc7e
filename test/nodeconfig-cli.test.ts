// `fleetboot node list|show|setup|set|retire` run as an operator runs them, against a
// registry in a temporary folder.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseMac } from '../src/mac.ts';
import { Store } from '../src/store/store.ts';
import { runCli, tempDir } from './fixtures.ts';

const mac = parseMac('52:54:00:dd:00:01')!;

function seed(dir: string): number {
  const store = Store.open(Store.fileIn(join(dir, 'var')));
  try {
    const { node } = store.nodes.discover({ mac, uuid: '6b4a3e5c-0d3f-4f0e-9d7a-2f6c1b2a3c4d' });
    const disks = [0, 1, 2, 3, 4, 5].map((i) => ({ name: `sd${'abcdef'[i]}`, sizeBytes: 2e12, ssd: false, removable: false }));
    disks.push({ name: 'nvme0n1', sizeBytes: 4e11, ssd: true, removable: false });
    store.nodes.update(node.id, { sysinfo: { disks, cpu: { model: 'EPYC', count: 32 }, ramBytes: 256 * 2 ** 30, modules: {} }, lastSeen: Date.now() });
    store.events.record({ event: 'checkin', nodeId: node.id, mac, detail: { ip: '10.99.0.150' } });
    return node.id;
  } finally {
    store.close();
  }
}

test('node verbs: list, show (proposed zpool plan before setup), setup, set, retire', async (t) => {
  const dir = tempDir(t);
  const id = seed(dir);

  const list = await runCli(['node', 'list'], dir);
  assert.equal(list.exitCode, 0, String(list.stderr));
  assert.match(String(list.stdout), /^ID\s+HOSTNAME\s+STATE\s+ADMIN MAC/);
  assert.match(String(list.stdout), new RegExp(`\\n${id}\\s+-\\s+discovered\\s+${mac}`));

  const show = await runCli(['node', 'show', mac], dir);
  assert.equal(show.exitCode, 0, String(show.stderr));
  const text = String(show.stdout);
  assert.match(text, /32 x EPYC, 256\.0 GiB RAM/);
  assert.match(text, /not set up/);
  assert.match(text, /plan raidz2 1x6, 1 log .*disklayout's default for 6 data disks/);
  assert.match(text, /raidz2\s+sda sdb sdc sdd sde sdf/);
  assert.match(text, /log\s+single nvme0n1/);
  assert.match(text, /checkin\s+ip=10\.99\.0\.150/);

  writeFileSync(
    join(dir, 'cn7.json'),
    JSON.stringify({ hostname: 'cn7', dnsDomain: 'lab.example', resolvers: ['10.99.0.1'], nics: [{ mac, tags: ['admin'] }], interfaces: [{ tag: 'admin', ip: '10.99.0.27', netmask: '255.255.255.0', gateway: '10.99.0.1' }] }),
  );
  // First boot builds only disklayout's default: an explicit layout is refused naming the field.
  const bad = await runCli(['node', 'setup', String(id), '--network', 'cn7.json', '--zpool', 'mirror spares=0'], dir);
  assert.equal(bad.exitCode, 2);
  assert.match(String(bad.stderr), /^fleetboot: zpool\.class: SmartOS first-boot setup builds only disklayout's default pool/);
  const badExclude = await runCli(['node', 'setup', String(id), '--network', 'cn7.json', '--zpool', 'default exclude=sdf'], dir);
  assert.equal(badExclude.exitCode, 2);
  assert.match(String(badExclude.stderr), /^fleetboot: zpool\.exclude: /);
  writeFileSync(join(dir, 'nodomain.json'), JSON.stringify({ hostname: 'cn7', resolvers: ['10.99.0.1'], nics: [{ mac, tags: ['admin'] }] }));
  const badDns = await runCli(['node', 'setup', String(id), '--network', 'nodomain.json'], dir);
  assert.equal(badDns.exitCode, 2);
  assert.match(String(badDns.stderr), /^fleetboot: network\.dnsDomain: /);
  writeFileSync(join(dir, 'bad.json'), JSON.stringify({ hostname: 'cn7', nics: [{ mac, tags: ['admin'], mtu: 20000 }] }));
  const badNet = await runCli(['node', 'setup', String(id), '--network', 'bad.json'], dir);
  assert.equal(badNet.exitCode, 2);
  assert.match(String(badNet.stderr), /^fleetboot: network\.nics\.0\.mtu: /);

  const setup = await runCli(['node', 'setup', mac, '--network', 'cn7.json'], dir);
  assert.equal(setup.exitCode, 0, String(setup.stderr));
  assert.match(String(setup.stdout), /node \d+ \(cn7\) set up: state setting_up; zpool raidz2 1x6, 1 log/);

  const json = await runCli(['node', 'show', 'cn7', '--json', '--root-password'], dir);
  const shown = JSON.parse(String(json.stdout)) as { node: { state: string; hostname: string }; zpoolPlan: { class: string }; bootArgs: Record<string, string>; modules: { name: string }[]; rootPassword: string };
  assert.equal(shown.node.state, 'setting_up');
  assert.equal(shown.zpoolPlan.class, 'raidz2');
  assert.equal(shown.bootArgs.admin_nic, mac);
  assert.equal(shown.bootArgs.hostname, 'cn7');
  assert.deepEqual(shown.modules.map((m) => m.name), ['networking.json', 'networking.json', 'answers.json', 'node.json']);
  assert.match(shown.rootPassword, /^[\w-]{24}$/);

  const set = await runCli(['node', 'set', 'cn7', 'traits.rack=b12', 'state=running'], dir);
  assert.equal(set.exitCode, 0, String(set.stderr));
  const badSet = await runCli(['node', 'set', 'cn7', 'state=retired'], dir);
  assert.equal(badSet.exitCode, 2);
  const listed = JSON.parse(String((await runCli(['node', 'list', '--json'], dir)).stdout)) as { nodes: { state: string; traits: Record<string, string> }[] };
  assert.deepEqual([listed.nodes[0]!.state, listed.nodes[0]!.traits], ['running', { rack: 'b12' }]);

  const retire = await runCli(['node', 'retire', 'cn7'], dir);
  assert.equal(retire.exitCode, 0);
  assert.match(String((await runCli(['node', 'list'], dir)).stdout), /retired/);
  const missing = await runCli(['node', 'show', 'nope'], dir);
  assert.equal(missing.exitCode, 2);
  assert.match(String(missing.stderr), /no node "nope"/);
});

test('every node verb has --help with an example', async (t) => {
  const dir = tempDir(t);
  for (const verb of ['list', 'show', 'setup', 'set', 'retire']) {
    const r = await runCli(['node', verb, '--help'], dir);
    assert.equal(r.exitCode, 0, verb);
    assert.match(String(r.stdout), /Example/, verb);
  }
});
