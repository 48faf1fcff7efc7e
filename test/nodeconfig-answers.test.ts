// answers.json against what SmartOS first-boot setup accepts (smartos-live
// src/smartdc/lib/smartos_prompt_config.sh): getanswer returns a present key's value even
// when it is empty, and each prompt then loops until its own test passes. `accepted` below
// restates those tests, key by key, so an answer setup would prompt for fails here.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isIPv4 } from 'node:net';
import { nodeConfigContribution } from '../src/nodeconfig/boot-modules.ts';
import { parseNodeNetwork } from '../src/nodeconfig/network.ts';
import { answersJson, renderConfigModule } from '../src/nodeconfig/render.ts';
import { tokenHashFor, type NodeKeys } from '../src/nodeconfig/secrets.ts';
import type { NodeRecord } from '../src/store/nodes.ts';
import { nodeRecord } from './node-fixtures.ts';

const isNet = (v: unknown): boolean => typeof v === 'string' && isIPv4(v);
const nonEmpty = (v: unknown): boolean => v !== undefined && v !== null && String(v) !== '';
const noQuotes = (v: unknown): boolean => !/['`]/.test(String(v));

/** The prompt each key meets and what it lets through without asking. */
const accepted: Record<string, (v: unknown, all: Record<string, unknown>) => boolean> = {
  // An empty config_console makes setup wait for Enter.
  config_console: nonEmpty,
  // promptnic: a MAC among the node's physical NICs (checked against the network below).
  admin_nic: (v) => typeof v === 'string' && /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(v),
  // promptnet: an address, "dhcp" or "none" ("none" is no admin address: not wanted here).
  admin_ip: (v) => v === 'dhcp' || isNet(v),
  // promptnet again, asked only for a static admin_ip.
  admin_netmask: (v, all) => all.admin_ip === 'dhcp' || isNet(v),
  headnode_default_gateway: (v) => v === 'none' || isNet(v),
  // prompt_host_ok_val takes any non-empty string, then writes `nameserver <it>`: only an
  // address (or "<default>", which becomes setup's own resolver) makes a working line.
  dns_resolver1: (v) => v === '<default>' || isNet(v),
  dns_resolver2: (v) => v === '<default>' || isNet(v),
  // promptval: non-empty, no quotes; "<default>" has no default for the search domain.
  dns_search: (v) => nonEmpty(v) && noQuotes(v) && v !== '<default>',
  ntp_host: nonEmpty,
  // promptval "Selected zpool layout": "yes" builds; anything else re-prompts or loops.
  zpool_confirm_layout: (v) => v === 'yes',
  // promptopt: present; "none" is no boot pool (anything else needs pisource too).
  bootpool: (v) => v === 'none',
  install_pkgsrc: (v) => nonEmpty(v) && !/^(y|yes|true)$/i.test(String(v)),
  // promptpw loops on an empty preset.
  root_password: nonEmpty,
  // promptopt: present.
  hostname: nonEmpty,
  skip_instructions: (v) => String(v) === 'true',
  skip_final_confirm: (v) => String(v) === 'true',
};

function check(answers: Record<string, unknown>, label: string): void {
  for (const [key, ok] of Object.entries(accepted)) {
    assert.ok(key in answers || (key === 'admin_netmask' && answers.admin_ip === 'dhcp'), `${label}: ${key} is missing (setup would prompt)`);
    assert.ok(ok(answers[key], answers), `${label}: setup would not accept ${key}=${JSON.stringify(answers[key])}`);
  }
}

const mac1 = '52:54:00:00:09:01';
const base = { hostname: 'cn9', nics: [{ mac: mac1, tags: ['admin'] }], interfaces: [{ tag: 'admin', ip: '10.99.0.29', netmask: '255.255.255.0', gateway: '10.99.0.1' }] };
const cases: [string, Record<string, unknown>, string | null][] = [
  ['one resolver', { ...base, dnsDomain: 'lab.example', resolvers: ['10.99.0.1'] }, '10.99.0.1'],
  ['two resolvers', { ...base, dnsDomain: 'lab.example', resolvers: ['10.99.0.1', '10.99.0.2'], ntpServers: ['10.99.0.5'] }, null],
  ['no resolvers, no DNS domain, no NTP anywhere', base, null],
  ['DHCP admin address', { ...base, interfaces: [{ tag: 'admin', ip: 'dhcp' }] }, '10.99.0.1'],
  ['no admin interface', { ...base, interfaces: [] }, '10.99.0.1'],
  [
    'aggregated admin link, external primary',
    {
      hostname: 'cn9',
      dnsDomain: 'lab.example',
      resolvers: ['10.99.0.1'],
      nics: [{ mac: '52:54:00:00:09:02' }, { mac: '52:54:00:00:09:03' }, { mac: '52:54:00:00:09:04', tags: ['external'] }],
      aggregations: [{ name: 'aggr0', macs: ['52:54:00:00:09:02', '52:54:00:00:09:03'], tags: ['admin'] }],
      interfaces: [
        { tag: 'admin', ip: '10.99.0.29', netmask: '255.255.255.0', gateway: '10.99.0.1' },
        { tag: 'external', ip: '198.51.100.29', netmask: '255.255.255.0', gateway: '198.51.100.1', primary: true },
      ],
    },
    '10.99.0.1',
  ],
];

test('every key setup reads has a value its prompt accepts, whatever the network leaves out', () => {
  for (const [label, doc, ntpHost] of cases) {
    const network = parseNodeNetwork(doc);
    const answers = answersJson({ network, rootPassword: 'pw-from-the-node-key', ntpHost });
    check(answers, label);
    const macs = [...network.nics.map((n) => n.mac)];
    assert.ok(macs.includes(answers.admin_nic as never), `${label}: admin_nic is one of the node's NICs`);
  }
});

test('answers follow the network: a second resolver repeats the first, the default route is the admin gateway only when it is the route', () => {
  const one = answersJson({ network: parseNodeNetwork(cases[0]![1]), rootPassword: 'pw', ntpHost: null });
  assert.deepEqual([one.dns_resolver1, one.dns_resolver2, one.dns_search, one.ntp_host], ['10.99.0.1', '10.99.0.1', 'lab.example', '<default>']);
  assert.deepEqual([one.admin_ip, one.admin_netmask, one.headnode_default_gateway, one.zpool_layout], ['10.99.0.29', '255.255.255.0', '10.99.0.1', 'default']);
  const none = answersJson({ network: parseNodeNetwork(base), rootPassword: 'pw', ntpHost: '10.99.0.1' });
  assert.deepEqual([none.dns_resolver1, none.dns_resolver2, none.dns_search, none.ntp_host], ['<default>', '<default>', 'invalid', '10.99.0.1']);
  const dhcp = answersJson({ network: parseNodeNetwork(cases[3]![1]), rootPassword: 'pw', ntpHost: null });
  assert.deepEqual([dhcp.admin_ip, 'admin_netmask' in dhcp, dhcp.headnode_default_gateway], ['dhcp', false, 'none']);
  const aggr = answersJson({ network: parseNodeNetwork(cases[5]![1]), rootPassword: 'pw', ntpHost: null });
  // Setup brings up the admin link's first member only; the external gateway is the route, added by network/physical later.
  assert.deepEqual([aggr.admin_nic, aggr.headnode_default_gateway], ['52:54:00:00:09:02', 'none']);
});

test('no root password, no answers.json: a node without a token is not offered one (promptpw would loop)', () => {
  const keys: NodeKeys = { key: 'answers-test-key-not-a-secret-0123456789' };
  const network = parseNodeNetwork(cases[0]![1]);
  const node: NodeRecord = nodeRecord({
    id: 9,
    hostname: 'cn9',
    state: 'setting_up',
    bootPlatform: '20250101T000000Z',
    networkConfig: network,
    zpoolConfig: { class: 'default', exclude: [] },
    nics: [{ mac: mac1 as never, nodeId: 9, nicTag: 'admin', ip: null, network: null, vlan: null, mtu: null, isAdmin: true }],
  });
  assert.equal(renderConfigModule('answers.json', node, { rootPassword: null, ntpHost: null }), null);
  assert.ok(!nodeConfigContribution(node, keys).modules.some((m) => m.name === 'answers.json'));
  const withToken = { ...node, tokenHash: tokenHashFor(keys, 9, 'salt9') };
  assert.ok(nodeConfigContribution(withToken, keys).modules.some((m) => m.name === 'answers.json'));
  assert.equal(renderConfigModule('answers.json', withToken, { rootPassword: null, ntpHost: null }), null);
  assert.ok(renderConfigModule('answers.json', withToken, { rootPassword: 'pw', ntpHost: null }));
});
