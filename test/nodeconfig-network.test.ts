import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseMac } from '../src/mac.ts';
import { setupNode } from '../src/nodeconfig/lifecycle.ts';
import { NodeConfigError, networkBootArgs, networkingJson, parseNodeNetwork } from '../src/nodeconfig/network.ts';
import { nodeKeysIn } from '../src/nodeconfig/secrets.ts';
import { Store } from '../src/store/store.ts';
import { tempDir } from './fixtures.ts';

const base = {
  hostname: 'cn1',
  nics: [
    { mac: '52:54:00:00:00:01', tags: ['admin'] },
    { mac: '52:54:00:00:00:02' },
    { mac: '52:54:00:00:00:03' },
  ],
  aggregations: [{ name: 'aggr0', macs: ['52:54:00:00:00:02', '52:54:00:00:00:03'], lacpMode: 'passive', tags: ['external'] }],
  interfaces: [{ tag: 'admin', ip: '10.99.0.21', netmask: '255.255.255.0', gateway: '10.99.0.1' }],
};

function refused(patch: Record<string, unknown>, field: RegExp): void {
  assert.throws(
    () => parseNodeNetwork({ ...base, ...patch }),
    (e: Error) => e instanceof NodeConfigError && field.test(e.message),
    `${JSON.stringify(patch)} should be refused naming ${field}`,
  );
}

test('a valid network parses; MACs are normalised and defaults filled', () => {
  const n = parseNodeNetwork({ ...base, nics: [{ mac: '52-54-00-00-00-01', tags: ['admin'] }, ...base.nics.slice(1)] });
  assert.equal(n.nics[0]!.mac, '52:54:00:00:00:01');
  assert.equal(n.interfaces[0]!.vlan, 0);
  assert.deepEqual(networkBootArgs(n), {
    admin_nic: '52:54:00:00:00:01',
    external_nic: 'aggr0',
    aggr0_aggr: '52:54:00:00:00:02,52:54:00:00:00:03',
    aggr0_lacp_mode: 'passive',
    hostname: 'cn1',
  });
});

test('bad network values are refused naming the field', () => {
  refused({ hostname: 'bad_name!' }, /^network\.hostname: /);
  refused({ nics: [{ mac: 'nope', tags: ['admin'] }] }, /network\.nics\.0\.mac: expected a MAC/);
  refused({ nics: [{ mac: '52:54:00:00:00:01', tags: ['admin'], mtu: 9216 }] }, /network\.nics\.0\.mtu/);
  refused({ nics: [{ mac: '52:54:00:00:00:01', tags: ['external'] }], aggregations: [], interfaces: [] }, /"admin" NIC tag/);
  refused({ aggregations: [{ ...base.aggregations[0], lacpMode: 'sometimes' }] }, /network\.aggregations\.0\.lacpMode/);
  refused({ aggregations: [{ ...base.aggregations[0], name: 'bond' }] }, /network\.aggregations\.0\.name: expected a link name ending in a digit/);
  refused({ aggregations: [{ ...base.aggregations[0], macs: ['52:54:00:00:00:02', '52:54:00:00:00:09'] }] }, /network\.aggregations\.0\.macs\.1: 52:54:00:00:00:09 is not in nics/);
  refused({ aggregations: [{ ...base.aggregations[0], tags: ['admin'] }] }, /network\.aggregations\.0\.tags\.0: NIC tag "admin" is already provided/);
  refused({ interfaces: [{ tag: 'admin', ip: '10.99.0.21' }] }, /network\.interfaces\.0\.netmask: a static address needs a netmask/);
  refused({ interfaces: [{ tag: 'admin', ip: '10.99.0.21', netmask: '255.0.255.0' }] }, /network\.interfaces\.0\.netmask: expected a contiguous netmask/);
  refused({ interfaces: [{ tag: 'admin', ip: '10.99.0.21', netmask: '255.255.255.0', gateway: '10.98.0.1' }] }, /network\.interfaces\.0\.gateway: 10\.98\.0\.1 is outside/);
  refused({ interfaces: [{ tag: 'external', ip: 'dhcp', vlan: 1 }] }, /network\.interfaces\.0\.vlan: VLAN 1/);
  refused({ interfaces: [{ tag: 'external', ip: 'dhcp', vlan: 5000 }] }, /network\.interfaces\.0\.vlan/);
  refused({ interfaces: [{ tag: 'storage', ip: 'dhcp' }] }, /network\.interfaces\.0\.tag: no NIC or aggregation provides tag "storage"/);
  refused({ routes: { '10.0.0.0/33': '10.99.0.1' } }, /network\.routes/);
  refused({ routes: { '10.0.0.0/8': 'gateway' } }, /network\.routes\.10\.0\.0\.0\/8/);
  refused({ resolvers: ['1.1.1'] }, /network\.resolvers\.0/);
  refused({ colour: 'blue' }, /colour/);
});

test('setup refuses a MAC or address that belongs to another node, and writes nothing', (t) => {
  const dir = tempDir(t);
  const store = Store.open(':memory:');
  t.after(() => store.close());
  const keys = nodeKeysIn(dir);
  const a = store.nodes.discover({ mac: parseMac('52:54:00:00:00:01')! }).node;
  const b = store.nodes.discover({ mac: parseMac('52:54:00:00:00:aa')! }).node;
  setupNode(store, keys, a, { network: base });
  const before = store.nodes.get(b.id);
  assert.throws(() => setupNode(store, keys, b, { network: { ...base, hostname: 'cn2' } }), /network\.nics: 52:54:00:00:00:01 belongs to node 1/);
  assert.throws(
    () => setupNode(store, keys, b, { network: { hostname: 'cn2', nics: [{ mac: '52:54:00:00:00:aa', tags: ['admin'] }], interfaces: [{ tag: 'admin', ip: '10.99.0.21', netmask: '255.255.255.0' }] } }),
    /10\.99\.0\.21 is in use by node 1/,
  );
  assert.throws(() => setupNode(store, keys, b, { network: { hostname: 'cn1', nics: [{ mac: '52:54:00:00:00:aa', tags: ['admin'] }] } }), /"cn1" is node 1's name/);
  assert.deepEqual(store.nodes.get(b.id), before);
  // The configured NICs are stored with their tags and static address.
  const nics = store.nodes.get(a.id)!.nics;
  assert.deepEqual(
    nics.map((n) => [n.mac, n.nicTag, n.ip, n.isAdmin]),
    [
      ['52:54:00:00:00:01', 'admin', '10.99.0.21', true],
      ['52:54:00:00:00:02', 'external', null, false],
      ['52:54:00:00:00:03', 'external', null, false],
    ],
  );
  assert.equal(store.nodes.findByAddress('10.99.0.21')?.node.id, a.id);
});

// What SmartOS can plumb (smartos-live net-boot-config.js, net-physical, net-early-admin,
// nictagadm): node setup refuses the rest naming the field, and networking.json carries
// only keys SmartOS reads.
const twoLinks = {
  hostname: 'cn1',
  dnsDomain: 'lab.example',
  nics: [
    { mac: '52:54:00:00:00:01', tags: ['admin'] },
    { mac: '52:54:00:00:00:02', tags: ['external', 'storage'], mtu: 9000 },
  ],
  interfaces: [{ tag: 'admin', ip: '10.99.0.21', netmask: '255.255.255.0', gateway: '10.99.0.1' }],
};
const admin = twoLinks.interfaces[0]!;
const external = { tag: 'external', ip: '198.51.100.21', netmask: '255.255.255.0', gateway: '198.51.100.1' };
const storage = { tag: 'storage', ip: '172.16.5.21', netmask: '255.255.0.0', vlan: 50 };

function refusedOn(doc: Record<string, unknown>, field: RegExp): void {
  assert.throws(
    () => parseNodeNetwork(doc),
    (e: Error) => e instanceof NodeConfigError && field.test(e.message),
    `${JSON.stringify(doc)} should be refused naming ${field}`,
  );
}

type Vnic = { ip: string; gateway: string | null; nic_tag: string; mtu: number; vlan_id: number };
const vnicsOf = (doc: Record<string, unknown>): Vnic[] => networkingJson(parseNodeNetwork(doc)).vnics as Vnic[];

test('MTUs outside 1500-9000 are refused: SmartOS fails network setup on them', () => {
  refusedOn({ ...twoLinks, nics: [{ mac: '52:54:00:00:00:01', tags: ['admin'], mtu: 1400 }] }, /^network\.nics\.0\.mtu: SmartOS takes MTUs 1500-9000 only .*got 1400/);
  refusedOn({ ...base, aggregations: [{ ...base.aggregations[0], mtu: 576 }] }, /network\.aggregations\.0\.mtu: SmartOS takes MTUs 1500-9000/);
  refusedOn({ ...twoLinks, interfaces: [admin, { ...storage, mtu: 1280 }] }, /network\.interfaces\.1\.mtu: SmartOS takes MTUs 1500-9000/);
  assert.equal(parseNodeNetwork({ ...twoLinks, nics: [{ mac: '52:54:00:00:00:01', tags: ['admin'], mtu: 1500 }] }).nics[0]!.mtu, 1500);
});

test("a vnic's MTU is rendered beside its tag's; where SmartOS keeps one key for both, a different MTU is refused", () => {
  // storage's first vnic is storage0: storage0_mtu 1500 beside storage_mtu 9000 (net-boot-config.js).
  const vnics = vnicsOf({ ...twoLinks, interfaces: [admin, external, { ...storage, mtu: 1500 }] });
  assert.deepEqual(vnics.map((v) => [v.nic_tag, v.mtu]), [['admin', 1500], ['external', 9000], ['storage', 1500]]);
  const nictags = networkingJson(parseNodeNetwork({ ...twoLinks, interfaces: [admin, external, { ...storage, mtu: 1500 }] })).nictags;
  assert.deepEqual(nictags, [
    { name: 'admin', mac: '52:54:00:00:00:01', mtu: 1500 },
    { name: 'external', mac: '52:54:00:00:00:02', mtu: 9000 },
    { name: 'storage', mac: '52:54:00:00:00:02', mtu: 9000 },
  ]);
  // The first external vnic's MTU is external_mtu, the tag's own key: a 1500 there would shrink the 9000 link.
  refusedOn({ ...twoLinks, interfaces: [admin, { ...external, mtu: 1500 }] }, /^network\.interfaces\.1\.mtu: SmartOS keeps one external_mtu for the external tag/);
  // The admin address sits on the link itself.
  refusedOn({ ...twoLinks, nics: [{ mac: '52:54:00:00:00:01', tags: ['admin'], mtu: 9000 }, twoLinks.nics[1]], interfaces: [{ ...admin, mtu: 1500 }] }, /^network\.interfaces\.0\.mtu: SmartOS keeps one admin_mtu/);
  // A vnic cannot be larger than its link.
  refusedOn({ ...twoLinks, interfaces: [admin, { tag: 'admin', ip: '10.98.0.21', netmask: '255.255.255.0', vlan: 20, mtu: 9000 }] }, /^network\.interfaces\.1\.mtu: 9000 is above its link's MTU 1500/);
});

test('a NIC tag of 31 characters is refused: its vnic <tag>0 would not fit a link name', () => {
  const long = 'x'.repeat(31);
  refusedOn({ ...twoLinks, nics: [twoLinks.nics[0], { mac: '52:54:00:00:00:02', tags: [long] }] }, /^network\.nics\.1\.tags\.0: NIC tag "x{31}" is 31 characters; SmartOS takes at most 30/);
  refusedOn({ ...base, aggregations: [{ ...base.aggregations[0], tags: [long] }] }, /network\.aggregations\.0\.tags\.0: NIC tag/);
  assert.ok(parseNodeNetwork({ ...twoLinks, nics: [twoLinks.nics[0], { mac: '52:54:00:00:00:02', tags: ['y'.repeat(30)] }] }));
});

test('the admin address: not only on a VLAN; a DHCP admin address is left for network/physical to run DHCP on', () => {
  refusedOn({ ...twoLinks, interfaces: [{ ...admin, vlan: 10 }] }, /^network\.interfaces\.0\.vlan: SmartOS plumbs the first admin address untagged/);
  refusedOn({ ...twoLinks, interfaces: [{ tag: 'admin', ip: 'dhcp' }, { ...admin, ip: '10.98.0.21', vlan: 10, gateway: undefined }] }, /^network\.interfaces\.1\.vlan: /);
  // Behind an untagged static admin address, an admin VLAN is admin1, a VLAN vnic.
  const tagged = vnicsOf({ ...twoLinks, interfaces: [{ ...admin, ip: '10.98.0.21', vlan: 10, gateway: undefined }, admin] });
  assert.deepEqual(tagged.map((v) => [v.nic_tag, v.vlan_id, v.ip]), [['admin', 0, '10.99.0.21'], ['admin', 10, '10.98.0.21']]);
  // ip "dhcp" on admin: no admin vnic at all, so no admin_ip for net-early-admin to hand to ifconfig.
  const dhcp = vnicsOf({ ...twoLinks, interfaces: [{ tag: 'admin', ip: 'dhcp' }, external] });
  assert.deepEqual(dhcp.map((v) => v.nic_tag), ['external']);
  refusedOn({ ...twoLinks, interfaces: [{ tag: 'admin', ip: 'dhcp', gateway: '10.99.0.1' }] }, /^network\.interfaces\.0\.gateway: a DHCP admin address takes its router from DHCP/);
});

test('the default route: primary on the first external interface is rendered as SmartOS reads it; elsewhere it is refused', () => {
  const doc = networkingJson(parseNodeNetwork({ ...twoLinks, interfaces: [admin, { ...external, primary: true }] }));
  assert.ok(!('default_gateway' in doc), 'SmartOS never reads default_gateway');
  const vnics = doc.vnics as (Vnic & Record<string, unknown>)[];
  assert.ok(vnics.every((v) => !('primary' in v)), 'SmartOS never reads primary');
  // net-physical set_default_route prefers admin_gateway: it is left out so external_gateway is the route.
  assert.deepEqual(vnics.map((v) => [v.nic_tag, v.gateway]), [['admin', null], ['external', '198.51.100.1']]);
  // Without primary, the admin gateway is the route, as SmartOS picks it.
  assert.deepEqual(vnicsOf({ ...twoLinks, interfaces: [admin, external] }).map((v) => v.gateway), ['10.99.0.1', '198.51.100.1']);
  refusedOn({ ...twoLinks, interfaces: [admin, { ...storage, gateway: '172.16.0.1', primary: true }] }, /^network\.interfaces\.1\.primary: SmartOS takes the default route from the admin interface's gateway, else the first external interface's/);
  refusedOn({ ...twoLinks, interfaces: [admin, external, { ...external, ip: '198.51.100.22', vlan: 7, primary: true }] }, /^network\.interfaces\.2\.primary: /);
  refusedOn({ ...twoLinks, interfaces: [admin, { ...external, gateway: undefined, primary: true }] }, /^network\.interfaces\.1\.gateway: a primary interface with a static address needs a gateway/);
});

test('resolvers without a DNS domain are refused: SmartOS writes resolv.conf only with both', () => {
  refusedOn({ ...twoLinks, dnsDomain: undefined, resolvers: ['10.99.0.1'] }, /^network\.dnsDomain: SmartOS writes resolv\.conf only when it has both dns_domain and resolvers/);
  const ok = networkingJson(parseNodeNetwork({ ...twoLinks, resolvers: ['10.99.0.1'] }));
  assert.deepEqual([ok.resolvers, ok.dns_domain], [['10.99.0.1'], 'lab.example']);
  // No resolvers at all: nothing to lose.
  assert.ok(parseNodeNetwork({ ...twoLinks, dnsDomain: undefined }));
});
