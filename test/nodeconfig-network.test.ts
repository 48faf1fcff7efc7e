import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseMac } from '../src/mac.ts';
import { setupNode } from '../src/nodeconfig/lifecycle.ts';
import { NodeConfigError, networkBootArgs, parseNodeNetwork } from '../src/nodeconfig/network.ts';
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
