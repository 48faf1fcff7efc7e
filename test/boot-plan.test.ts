import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseConfig } from '../src/config/load.ts';
import type { ConfigInput } from '../src/config/schema.ts';
import { bootPlanFor, type BootPlan, type NodeBootContribution, type SmartosEntry, type LinuxEntry } from '../src/boot/plan.ts';
import type { Mac } from '../src/mac.ts';
import type { NodeRecord, NodeState } from '../src/store/nodes.ts';
import type { PlatformRecord } from '../src/store/platforms.ts';
import { nodeRecord } from './node-fixtures.ts';

const mac = '52:54:00:12:34:56' as Mac;
const baseUrl = 'http://10.99.0.1:8080';
const config = (o: ConfigInput = {}) => parseConfig(o, '/tmp', 'test');

function smartos(stamp: string, isDefault = false): PlatformRecord {
  return {
    stamp,
    os: 'smartos',
    version: stamp,
    files: [
      { path: 'platform/i86pc/kernel/amd64/unix', size: 1, role: 'kernel', sha256: 'a' },
      { path: 'platform/i86pc/amd64/boot_archive', size: 1, role: 'boot_archive', sha256: 'b' },
      { path: 'platform/i86pc/amd64/boot_archive.hash', size: 1, role: 'boot_archive_hash', sha256: 'c' },
    ],
    size: 3,
    kernelArgs: null,
    isDefault,
    importedAt: 0,
  };
}

function linux(stamp: string, isDefault = false): PlatformRecord {
  return {
    stamp,
    os: 'linux',
    version: '6.1',
    files: [
      { path: 'vmlinuz', size: 1, role: 'kernel', sha256: 'a' },
      { path: 'initrd.img', size: 1, role: 'initrd', sha256: 'b' },
    ],
    size: 2,
    kernelArgs: 'quiet',
    isDefault,
    importedAt: 0,
  };
}

function node(o: { state?: NodeState; bootPlatform?: string | null; previousPlatform?: string | null; hostname?: string | null; traits?: Record<string, string> } = {}): NodeRecord {
  return nodeRecord({
    id: 7,
    hostname: o.hostname ?? null,
    state: o.state ?? 'running',
    bootPlatform: o.bootPlatform ?? null,
    previousPlatform: o.previousPlatform ?? null,
    traits: o.traits ?? {},
    nics: [
      { mac, nodeId: 7, nicTag: 'admin', ip: null, network: null, vlan: null, mtu: null, isAdmin: true },
      { mac: '52:54:00:aa:bb:cc' as Mac, nodeId: 7, nicTag: 'external', ip: null, network: null, vlan: null, mtu: null, isAdmin: false },
    ],
  });
}

const platforms = [smartos('20240101T000000Z', true), smartos('20240201T000000Z'), linux('lab-6.1')];
const none: NodeBootContribution = { bootArgs: {}, modules: [] };

/** A one-line summary of a plan for the table: action, mode, stamps. */
function summary(p: BootPlan): string {
  if (p.action === 'exit') return `exit: ${p.reason}`;
  return `${p.mode} ${p.entries.map((e) => `${e.label}=${e.stamp}`).join(' ')}`;
}

const cases: { name: string; node: NodeRecord | null; platforms?: PlatformRecord[]; config?: ConfigInput; expect: string | RegExp }[] = [
  { name: 'a machine admission did not make a node', node: null, expect: /^exit: machine 52:54:00:12:34:56: not registered$/ },
  { name: 'registered machine under allow-list', node: node(), config: { unknownNodePolicy: 'allow-list' }, expect: 'normal normal=20240101T000000Z' },
  { name: 'registered machine under ignore', node: node({ bootPlatform: 'lab-6.1' }), config: { unknownNodePolicy: 'ignore' }, expect: 'normal normal=lab-6.1' },
  { name: 'discovered node without a platform', node: node({ state: 'discovered' }), expect: 'discovery normal=20240101T000000Z' },
  { name: 'discovered node with an assigned platform', node: node({ state: 'discovered', bootPlatform: '20240201T000000Z' }), expect: 'normal normal=20240201T000000Z' },
  { name: 'running node with its assigned platform', node: node({ bootPlatform: '20240201T000000Z' }), expect: 'normal normal=20240201T000000Z' },
  { name: 'running node without one boots the default', node: node(), expect: 'normal normal=20240101T000000Z' },
  { name: 'assigned platform no longer imported', node: node({ bootPlatform: '20230101T000000Z' }), expect: 'normal normal=20240101T000000Z' },
  { name: 'previous platform gives a rescue entry', node: node({ bootPlatform: '20240201T000000Z', previousPlatform: '20240101T000000Z' }), expect: 'normal normal=20240201T000000Z rescue=20240101T000000Z' },
  { name: 'previous platform removed: no rescue entry', node: node({ bootPlatform: '20240201T000000Z', previousPlatform: '20230101T000000Z' }), expect: 'normal normal=20240201T000000Z' },
  { name: 'retired node', node: node({ state: 'retired', bootPlatform: '20240201T000000Z' }), expect: /^exit: node 7 is retired$/ },
  { name: 'no platform at all', node: node(), platforms: [], expect: /^exit: no platform to boot/ },
  { name: 'no default and nothing assigned', node: node({ state: 'discovered' }), platforms: [smartos('20240201T000000Z')], expect: /^exit: no platform to boot/ },
];

for (const c of cases) {
  test(`boot plan: ${c.name}`, () => {
    const plan = bootPlanFor(c.node, c.platforms ?? platforms, config(c.config), c.node ? none : null, { mac, baseUrl });
    if (typeof c.expect === 'string') assert.equal(summary(plan), c.expect);
    else assert.match(summary(plan), c.expect);
  });
}

test('boot plan: SmartOS boot args carry the console, NICs, hostname, contribution and check-in URL, in order', () => {
  const plan = bootPlanFor(
    node({ hostname: 'cn-07', bootPlatform: '20240201T000000Z', previousPlatform: '20240101T000000Z', traits: { kernel_flags: '-kd' } }),
    platforms,
    config({ boot: { console: 'ttyb', consoleSpeed: 9600 } }),
    { bootArgs: { admin_ip: '10.99.0.50', fleetboot_url: 'http://evil', 'bad key': 'x', note: 'has space' }, modules: [{ path: '/nodes/52:54:00:12:34:56/answers.json', type: 'file', name: 'answers.json' }] },
    { mac, baseUrl },
  );
  assert.equal(plan.action, 'boot');
  if (plan.action !== 'boot') return;
  const [normal, rescue] = plan.entries as [SmartosEntry, SmartosEntry];
  assert.equal(normal.kernelPath, '/os/20240201T000000Z/platform/i86pc/kernel/amd64/unix');
  assert.deepEqual(normal.kernelFlags, ['-kd']);
  assert.deepEqual(normal.bootArgs, [
    ['console', 'ttyb'],
    ['ttyb-mode', '"9600,8,n,1,-"'],
    ['admin_nic', mac],
    ['external_nic', '52:54:00:aa:bb:cc'],
    ['hostname', 'cn-07'],
    ['smartos', 'true'],
    ['admin_ip', '10.99.0.50'],
    ['fleetboot_url', baseUrl],
    ['fleetboot_node', '7'],
  ]);
  assert.deepEqual(normal.modules.map((m) => `${m.type}:${m.name}:${m.path}`), [
    'rootfs:ramdisk:/os/20240201T000000Z/platform/i86pc/amd64/boot_archive',
    'hash:ramdisk:/os/20240201T000000Z/platform/i86pc/amd64/boot_archive.hash',
    'file:answers.json:/nodes/52:54:00:12:34:56/answers.json',
  ]);
  assert.ok(rescue.bootArgs.some(([k, v]) => k === 'noimport' && v === 'true'));
  assert.ok(!normal.bootArgs.some(([k]) => k === 'noimport'));
  assert.equal(plan.warnings.length, 3, plan.warnings.join('; '));
});

test('boot plan: a Linux command line gets the serial console from config.boot unless it names one', () => {
  const plan = bootPlanFor(node({ bootPlatform: 'lab-6.1' }), platforms, config({ boot: { console: 'ttya', consoleSpeed: 115200 } }), { bootArgs: { ip: 'dhcp' }, modules: [] }, { mac, baseUrl });
  assert.equal(plan.action, 'boot');
  if (plan.action !== 'boot') return;
  const e = plan.entries[0] as LinuxEntry;
  assert.equal(e.cmdline, `quiet console=ttyS0,115200n8 initrd=initrd.img ip=dhcp fleetboot_url=${baseUrl} fleetboot_node=7`);
  assert.deepEqual(e.initrds, [{ path: '/os/lab-6.1/initrd.img', name: 'initrd.img' }]);
  const withConsole = { ...linux('lab-6.1'), kernelArgs: 'console=ttyS0,9600 quiet' };
  const p2 = bootPlanFor(node({ bootPlatform: 'lab-6.1' }), [withConsole], config(), none, { mac, baseUrl });
  assert.equal(p2.action === 'boot' && (p2.entries[0] as LinuxEntry).cmdline, `console=ttyS0,9600 quiet initrd=initrd.img fleetboot_url=${baseUrl} fleetboot_node=7`);
});
