// The node agent (/agent.sh) run for real under busybox sh, with busybox's own wget, sed
// and sha1sum, against a fake /sys-/proc root (FLEETBOOT_ROOT), checking in to an
// in-process head node on loopback.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { execa } from 'execa';
import { parseMac } from '../src/mac.ts';
import { setupNode } from '../src/nodeconfig/lifecycle.ts';
import { currentNodeToken, nodeKeysIn } from '../src/nodeconfig/secrets.ts';
import { zpoolPlanOf } from '../src/nodeconfig/render.ts';
import type { StoredSysinfo } from '../src/nodeconfig/sysinfo.ts';
import { describePlan, parseZpoolSpec } from '../src/nodeconfig/zpool.ts';
import { startHeadNode, tempDir } from './fixtures.ts';
import { requires } from './requires.ts';

const busybox = '/bin/busybox';
const mac = parseMac('52:54:00:12:34:56')!;
const uuid = '6b4a3e5c-0d3f-4f0e-9d7a-2f6c1b2a3c4d';

/** A folder of busybox applet links: with PATH set to it alone, every tool the agent runs is busybox's. */
function busyboxBin(dir: string): string {
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  for (const applet of ['sh', 'sed', 'tr', 'head', 'cat', 'grep', 'cut', 'sha1sum', 'wget', 'sleep', 'rm', 'uname', 'printf']) symlinkSync(busybox, join(bin, applet));
  return bin;
}

function fakeRoot(dir: string, cmdline: string): string {
  const root = join(dir, 'root');
  const put = (path: string, text: string): void => {
    mkdirSync(join(root, path, '..'), { recursive: true });
    writeFileSync(join(root, path), text);
  };
  put('proc/cmdline', `console=ttyS0 quiet ${cmdline}\n`);
  put('proc/cpuinfo', 'processor\t: 0\nmodel name\t: QEMU Virtual CPU "v2.5+"\n\nprocessor\t: 1\nmodel name\t: QEMU Virtual CPU "v2.5+"\n');
  put('proc/meminfo', 'MemTotal:         503784 kB\nMemFree:          400000 kB\n');
  put('proc/stat', 'cpu  1 2 3 4\nbtime 1790000123\nprocesses 99\n');
  put('proc/sys/kernel/hostname', '(none)\n');
  put('sys/class/dmi/id/product_uuid', `${uuid}\n`);
  put('sys/class/net/lo/address', '00:00:00:00:00:00\n');
  put('sys/class/net/eth0/address', `${mac}\n`);
  put('sys/class/net/eth1/address', '52:54:00:12:34:57\n');
  put('sys/block/vda/size', '20971520\n');
  put('sys/block/vda/queue/rotational', '1\n');
  put('sys/block/vda/removable', '0\n');
  put('sys/block/vdb/size', '2097152\n');
  put('sys/block/vdb/queue/rotational', '0\n');
  put('sys/block/vdb/removable', '0\n');
  put('sys/block/loop0/size', '100\n');
  put('etc/fleetboot-platform', 'linux-test-1\n');
  return root;
}

test('the agent under busybox sh + wget reports Linux sysinfo and module hashes, and moves a set-up node to running', { skip: requires({ commands: [busybox] }) }, async (t) => {
  const dir = tempDir(t);
  const h = await startHeadNode(t, dir);
  const bin = busyboxBin(dir);
  const agent = join(dir, 'agent.sh');
  const res = await fetch(`${h.url}/agent.sh`);
  assert.equal(res.status, 200);
  writeFileSync(agent, await res.text());
  const run = (root: string) =>
    execa(busybox, ['sh', agent], { env: { PATH: bin, FLEETBOOT_ROOT: root, FLEETBOOT_TRIES: '1', TMPDIR: dir }, extendEnv: false, reject: false, timeout: 30_000 });

  // First boot: discovery. The URL comes from the kernel command line.
  const r1 = await run(fakeRoot(join(dir, 'a'), `fleetboot_url=${h.url}`));
  assert.equal(r1.exitCode, 0, `${r1.stderr}`);
  const store = h.head.store;
  let node = store.nodes.findByMac(mac)!;
  assert.ok(node, 'the agent registered the node');
  assert.equal(node.state, 'discovered');
  assert.equal(node.uuid, uuid);
  assert.equal(node.currentPlatform, 'linux-test-1');
  assert.equal(node.lastBoot, 1790000123 * 1000);
  const si = node.sysinfo as StoredSysinfo;
  assert.deepEqual(si.cpu, { model: 'QEMU Virtual CPU "v2.5+"', count: 2 });
  assert.equal(si.ramBytes, 503784 * 1024);
  assert.deepEqual(si.disks, [
    { name: 'vda', sizeBytes: 20971520 * 512, ssd: false, removable: false },
    { name: 'vdb', sizeBytes: 2097152 * 512, ssd: true, removable: false },
  ]);
  assert.deepEqual(si.nics.map((n) => n.mac).sort(), [mac, '52:54:00:12:34:57']);
  assert.equal(si.hostname, null);

  // Setup, then a boot with the config modules in the initramfs root and the token on the command line.
  const keys = nodeKeysIn(h.head.config.dataDir);
  node = setupNode(store, keys, node, { network: { hostname: 'cn1', nics: [{ mac, tags: ['admin'] }] } });
  const token = currentNodeToken(keys, node)!;
  const root2 = fakeRoot(join(dir, 'b'), `fleetboot_url=${h.url} fleetboot_node=${node.id} fleetboot_token=${token}`);
  const served: Record<string, string> = {};
  for (const name of ['networking.json', 'answers.json', 'node.json']) {
    const body = await (await fetch(`${h.url}/nodes/${mac}/${name}?token=${encodeURIComponent(token)}`)).text();
    writeFileSync(join(root2, name), body);
    served[name] = createHash('sha1').update(body).digest('hex');
  }
  const hashModule = await (await fetch(`${h.url}/nodes/${mac}/networking.json.hash?token=${encodeURIComponent(token)}`)).text();
  assert.equal(hashModule, served['networking.json']);
  const r2 = await run(root2);
  assert.equal(r2.exitCode, 0, `${r2.stderr}`);
  assert.doesNotMatch(`${r2.stdout}${r2.stderr}`, new RegExp(token.replace(/[-]/g, '\\-')), 'the agent does not print its token');
  node = store.nodes.get(node.id)!;
  assert.equal(node.state, 'running');
  assert.deepEqual((node.sysinfo as StoredSysinfo).modules, served);
  const checkins = store.events.timeline(node.id).filter((e) => e.event === 'checkin');
  assert.equal(checkins.length, 2);
  assert.equal(checkins[1]!.detail.auth, 'token');
});

test('the agent with curl sends the same report; a refused check-in exits non-zero', { skip: requires({ commands: [busybox, 'curl'] }) }, async (t) => {
  const dir = tempDir(t);
  const h = await startHeadNode(t, dir);
  const agent = join(dir, 'agent.sh');
  writeFileSync(agent, await (await fetch(`${h.url}/agent.sh`)).text());
  const root = fakeRoot(join(dir, 'a'), `fleetboot_url=${h.url}`);
  const env = { PATH: '/usr/bin:/bin', FLEETBOOT_ROOT: root, FLEETBOOT_TRIES: '2', FLEETBOOT_RETRY_SECONDS: '0', TMPDIR: dir };
  const dry = await execa(busybox, ['sh', agent], { env: { ...env, FLEETBOOT_DRY_RUN: '1' }, extendEnv: false });
  const body = JSON.parse(dry.stdout) as { nics: unknown[]; platform: string };
  assert.equal(body.platform, 'linux-test-1');
  const ok = await execa('sh', [agent], { env, extendEnv: false, reject: false });
  assert.equal(ok.exitCode, 0, ok.stderr);
  assert.equal(h.head.store.nodes.findByMac(mac)?.state, 'discovered');
  // Set up the node without giving the agent the token: the check-in is refused and the agent says so.
  setupNode(h.head.store, nodeKeysIn(h.head.config.dataDir), h.head.store.nodes.findByMac(mac)!, { network: { hostname: 'cn1', nics: [{ mac, tags: ['admin'] }] } });
  const refused = await execa('sh', [agent], { env, extendEnv: false, reject: false });
  assert.equal(refused.exitCode, 1);
  assert.match(refused.stderr, /check-in to .* failed after 2 attempts/);
});

const smartosSysinfo = {
  UUID: uuid,
  Hostname: 'cn12',
  'Live Image': '20250101T000000Z',
  'Boot Time': '1790000456',
  'CPU Type': 'Intel(R) Xeon(R) Gold 6230',
  'CPU Total Cores': 40,
  'MiB of Memory': '262041',
  'Network Interfaces': { ixgbe0: { 'MAC Address': mac, ip4addr: '10.99.0.31', 'NIC Names': ['admin'] }, ixgbe1: { 'MAC Address': '52:54:00:12:34:57', ip4addr: '' } },
};

/**
 * SmartOS's tools as stand-ins printing their documented output: sysinfo(8) JSON, diskinfo
 * -Hp rows, bootparams (read from a file the test rewrites between boots), uname, and json(1)
 * as smartos-live ships it (trentm/json: `json KEY` prints a field, `-Ma` iterates key/value pairs).
 */
function smartosTools(dir: string, diskRows: string[]): { bin: string; bootparams: (lines: string[]) => void } {
  const bin = join(dir, 'smartos-bin');
  mkdirSync(bin);
  const tool = (name: string, body: string): void => writeFileSync(join(bin, name), body, { mode: 0o755 });
  const paramsFile = join(dir, 'bootparams.txt');
  tool('uname', '#!/bin/sh\necho SunOS\n');
  tool('sysinfo', `#!/bin/sh\ncat <<'EOF'\n${JSON.stringify(smartosSysinfo, null, 2)}\nEOF\n`);
  tool('bootparams', `#!/bin/sh\ncat '${paramsFile}'\n`);
  tool('diskinfo', `#!/bin/sh\nprintf '${diskRows.map((r) => `${r}\\n`).join('')}'\n`);
  tool(
    'json',
    `#!${process.execPath}\nconst a = process.argv.slice(2); const o = JSON.parse(require('fs').readFileSync(0, 'utf8'));\n` +
      `const get = (v, k, p) => p === 'key' ? k : p.startsWith('value["') ? v[p.slice(7, -2)] : p.startsWith('value.') ? v[p.slice(6)] : undefined;\n` +
      `if (a[0] === '-Ma') { for (const [k, v] of Object.entries(o)) console.log(a.slice(1).map((p) => get(v, k, p) ?? '').join(' ')); }\n` +
      `else { const v = o[a[0]]; console.log(typeof v === 'object' ? JSON.stringify(v) : String(v)); }\n`,
  );
  return { bin, bootparams: (lines) => writeFileSync(paramsFile, `${lines.join('\n')}\n`) };
}

test('the agent on SmartOS reads sysinfo, diskinfo and bootparams (tools stubbed with their documented output)', async (t) => {
  const dir = tempDir(t);
  const h = await startHeadNode(t, dir);
  const agent = join(dir, 'agent.sh');
  writeFileSync(agent, await (await fetch(`${h.url}/agent.sh`)).text());
  const tools = smartosTools(dir, ['SCSI\\tc1t0d0\\tATA\\tST4000NM\\t4000787030016\\tno\\tno', 'SCSI\\tc1t1d0\\tATA\\tINTEL SSD\\t400088457216\\tno\\tyes', 'USB\\tc2t0d0\\tKingston\\tDataTraveler\\t8004304896\\tyes\\tno']);
  tools.bootparams(['console=ttya', 'ttya-mode="115200,8,n,1,-"', `fleetboot_url=${h.url}`, 'fleetboot_node=7']);
  const r = await execa('sh', [agent], { env: { PATH: `${tools.bin}:/usr/bin:/bin`, FLEETBOOT_TRIES: '1', FLEETBOOT_DRY_RUN: '1' }, extendEnv: false, reject: false });
  assert.equal(r.exitCode, 0, r.stderr);
  const body = JSON.parse(r.stdout) as Record<string, unknown>;
  assert.deepEqual(body, {
    agent: 'fleetboot-agent/1',
    node: '7',
    uuid,
    hostname: 'cn12',
    nics: [
      { mac, name: 'ixgbe0', ip: '10.99.0.31' },
      { mac: '52:54:00:12:34:57', name: 'ixgbe1', ip: null },
    ],
    cpu: { model: 'Intel(R) Xeon(R) Gold 6230', count: 40 },
    ramBytes: 262041 * 1048576,
    disks: [
      { name: 'c1t0d0', sizeBytes: 4000787030016, ssd: false, removable: false, usb: false },
      { name: 'c1t1d0', sizeBytes: 400088457216, ssd: true, removable: false, usb: false },
      { name: 'c2t0d0', sizeBytes: 8004304896, ssd: false, removable: true, usb: true },
    ],
    platform: '20250101T000000Z',
    bootTime: 1790000456,
    modules: {},
  });
  // And the head node accepts that report as a check-in.
  const sent = await execa('sh', [agent], { env: { PATH: `${tools.bin}:/usr/bin:/bin`, FLEETBOOT_TRIES: '1' }, extendEnv: false, reject: false });
  assert.equal(sent.exitCode, 0, sent.stderr);
  assert.equal(h.head.store.nodes.findByMac(mac)?.currentPlatform, '20250101T000000Z');
});

test("a SmartOS node's first boot: discovered by its disks, set up, it boots with /system/boot modules SmartOS setup runs unattended on, and checks in running", async (t) => {
  const dir = tempDir(t);
  const h = await startHeadNode(t, dir);
  const agent = join(dir, 'agent.sh');
  writeFileSync(agent, await (await fetch(`${h.url}/agent.sh`)).text());
  // 12 x 4 TB, two SSDs and a USB disk that is not removable (setup still leaves it out).
  const rows = Array.from({ length: 12 }, (_, i) => `SCSI\\tc0t${i}d0\\tHGST\\tHUS726T4\\t4000787030016\\tno\\tno`);
  rows.push('SCSI\\tc1t0d0\\tINTEL\\tSSDSC2KB\\t480103981056\\tno\\tyes', 'SCSI\\tc1t1d0\\tINTEL\\tSSDSC2KB\\t480103981056\\tno\\tyes', 'USB\\tc3t0d0\\tWD\\tMyBook\\t2000398934016\\tno\\tno');
  const tools = smartosTools(dir, rows);
  const root = join(dir, 'root');
  const env = { PATH: `${tools.bin}:/usr/bin:/bin`, FLEETBOOT_ROOT: root, FLEETBOOT_TRIES: '1', TMPDIR: dir };

  // Discovery boot (noimport=true): no modules yet.
  tools.bootparams(['console=ttya', `fleetboot_url=${h.url}`, 'noimport=true']);
  const first = await execa('sh', [agent], { env, extendEnv: false, reject: false });
  assert.equal(first.exitCode, 0, first.stderr);
  const store = h.head.store;
  let node = store.nodes.findByMac(mac)!;
  assert.equal(node.state, 'discovered');

  // What node show proposes is what setup will build: disklayout's default, USB disk left out.
  const { plan } = zpoolPlanOf(node);
  assert.equal(describePlan(plan!), 'raidz2 1x11, 1 spare, 2 logs');
  assert.deepEqual(plan!.unused, ['c3t0d0']);

  const keys = nodeKeysIn(h.head.config.dataDir);
  node = setupNode(store, keys, node, {
    network: {
      hostname: 'cn12',
      dnsDomain: 'lab.example',
      resolvers: ['10.99.0.1'],
      nics: [{ mac, tags: ['admin'] }],
      interfaces: [{ tag: 'admin', ip: '10.99.0.31', netmask: '255.255.255.0', gateway: '10.99.0.1' }],
    },
    zpool: parseZpoolSpec('default'),
  });
  const token = currentNodeToken(keys, node)!;

  // The setting-up boot: iPXE put the modules at /system/boot, the -B args carry the token.
  mkdirSync(join(root, 'system', 'boot'), { recursive: true });
  const served: Record<string, string> = {};
  for (const name of ['networking.json', 'answers.json', 'node.json']) {
    const body = await (await fetch(`${h.url}/nodes/${mac}/${name}?token=${encodeURIComponent(token)}`)).text();
    writeFileSync(join(root, 'system', 'boot', name), body);
    served[name] = createHash('sha1').update(body).digest('hex');
  }
  const answers = JSON.parse(readFileSync(join(root, 'system', 'boot', 'answers.json'), 'utf8')) as Record<string, unknown>;
  for (const [key, value] of Object.entries(answers)) assert.notEqual(value, '', `answers.json ${key} is empty: setup would prompt for it`);
  assert.deepEqual([answers.zpool_layout, answers.zpool_confirm_layout, answers.admin_nic, answers.dns_resolver2, answers.dns_search], ['default', 'yes', mac, '10.99.0.1', 'lab.example']);
  const nodeJson = JSON.parse(readFileSync(join(root, 'system', 'boot', 'node.json'), 'utf8')) as { zpool: { plan: { vdevs: unknown[]; log: { disks: string[] } } } };
  assert.deepEqual(nodeJson.zpool.plan.log.disks, ['c1t0d0', 'c1t1d0']);
  tools.bootparams(['console=ttya', `fleetboot_url=${h.url}`, `fleetboot_node=${node.id}`, `fleetboot_token=${token}`]);
  const second = await execa('sh', [agent], { env, extendEnv: false, reject: false });
  assert.equal(second.exitCode, 0, second.stderr);
  assert.doesNotMatch(`${second.stdout}${second.stderr}`, new RegExp(token.replace(/[-]/g, '\\-')), 'the agent does not print its token');
  node = store.nodes.get(node.id)!;
  assert.equal(node.state, 'running');
  assert.deepEqual((node.sysinfo as StoredSysinfo).modules, served);
  assert.equal(store.events.timeline(node.id).filter((e) => e.event === 'checkin').at(-1)!.detail.auth, 'token');
});
