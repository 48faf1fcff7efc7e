import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import express from 'express';
import type { NodeContributionProvider } from '../src/boot/plan.ts';
import { nodeScriptRoutes } from '../src/boot/script-route.ts';
import { BootTemplates } from '../src/boot/templates.ts';
import type { ConfigInput } from '../src/config/schema.ts';
import { silentLogger } from '../src/log.ts';
import { parseMac } from '../src/mac.ts';
import { importLinuxPlatform, importSmartosTarball, readLinuxManifest } from '../src/platforms/import.ts';
import { Store } from '../src/store/store.ts';
import { repoRoot, startHeadNode, tempDir, testConfig } from './fixtures.ts';
import { writeLinuxPlatform, writeSmartosTarball } from './platform-fixtures.ts';

const base = 'http://10.99.0.1:8080';
const mac = parseMac('52:54:00:12:34:56')!;
const q = `/boot/node.ipxe?mac=${mac}&uuid=6b4a3e5c-0d3f-4f0e-9d7a-2f6c1b2a3c4d&serial=&arch=x86_64`;

// What node configuration's provider returns for a configured node, fixed for exact scripts.
const contribution: NodeContributionProvider = (n) => ({
  bootArgs: { fleetboot_node: String(n.id), admin_ip: '10.99.0.50' },
  modules: [
    { path: `/nodes/${mac}/networking.json`, type: 'file', name: 'networking.json' },
    { path: `/nodes/${mac}/networking.json.hash`, type: 'hash', name: 'networking.json' },
  ],
});

async function scriptServer(t: Parameters<typeof tempDir>[0], overrides: ConfigInput = {}): Promise<{ url: string; store: Store }> {
  const dir = tempDir(t);
  const config = testConfig(dir, { http: { publicUrl: base }, templatesDir: join(repoRoot, 'boot-templates'), ...overrides });
  const store = Store.open(join(dir, 'fleetboot.db'));
  t.after(() => store.close());
  await importSmartosTarball(writeSmartosTarball(dir), { store, platformImagesDir: config.platformImagesDir });
  const m = readLinuxManifest(writeLinuxPlatform(dir, { stamp: 'lab-6.1', cmdline: 'quiet' }));
  await importLinuxPlatform(m.manifest, m.dir, { store, platformImagesDir: config.platformImagesDir });
  const app = express();
  app.use(nodeScriptRoutes({ config, store, templates: new BootTemplates(config.templatesDir!), log: silentLogger, nodeContribution: contribution }));
  const server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, store };
}

const smartosDiscovery = `#!ipxe
# fleetboot: node 1 (52:54:00:12:34:56) boots SmartOS 20240101T000000Z (discovery) to register
:normal
echo fleetboot: booting SmartOS 20240101T000000Z (discovery)
kernel ${base}/os/20240101T000000Z/platform/i86pc/kernel/amd64/unix?mac=${mac} -B console=ttya,ttya-mode="115200,8,n,1,-",admin_nic=${mac},smartos=true,noimport=true,admin_ip=10.99.0.50,fleetboot_url=${base},fleetboot_node=1,fleetboot_mode=discovery
module ${base}/os/20240101T000000Z/platform/i86pc/amd64/boot_archive?mac=${mac} type=rootfs name=ramdisk
module ${base}/os/20240101T000000Z/platform/i86pc/amd64/boot_archive.hash?mac=${mac} type=hash name=ramdisk
module ${base}/nodes/${mac}/networking.json type=file name=networking.json
module ${base}/nodes/${mac}/networking.json.hash type=hash name=networking.json
boot || goto failed
:failed
echo fleetboot: boot failed; trying the next boot device
exit 1
`;

test('an unknown machine under discover is registered and boots the default SmartOS platform in discovery mode', async (t) => {
  const { url, store } = await scriptServer(t);
  const res = await fetch(`${url}${q}`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('cache-control'), 'no-store');
  assert.equal(await res.text(), smartosDiscovery);
  const node = store.nodes.findByMac(mac)!;
  assert.equal(node.state, 'discovered');
  assert.equal(node.uuid, '6b4a3e5c-0d3f-4f0e-9d7a-2f6c1b2a3c4d');
  assert.equal(node.arch, 'x86_64');
  const [event] = store.events.timeline(node.id);
  assert.equal(event?.event, 'script');
  // Recorded when the response ended, with how long it took (docs/timeline.md).
  const { ms, ...detail } = event?.detail ?? {};
  assert.ok(typeof ms === 'number' && ms >= 0, `ms: ${String(ms)}`);
  assert.deepEqual(detail, { action: 'boot', mode: 'discovery', stamp: '20240101T000000Z', rescue: null, uuid: '6b4a3e5c-0d3f-4f0e-9d7a-2f6c1b2a3c4d', arch: 'x86_64', created: true, bytes: Buffer.byteLength(smartosDiscovery), complete: true });
});

test('a SmartOS node with an assigned platform, a hostname and a previous platform gets a rescue menu', async (t) => {
  const { url, store } = await scriptServer(t);
  const { node } = store.nodes.discover({ mac });
  store.nodes.update(node.id, { state: 'running', hostname: 'cn-07', bootPlatform: '20240101T000000Z', previousPlatform: 'lab-6.1' });
  const text = await (await fetch(`${url}${q}`)).text();
  assert.equal(
    text,
    `#!ipxe
# fleetboot: node 1 (${mac}) boots SmartOS 20240101T000000Z
menu fleetboot: node 1 (${mac}) boots SmartOS 20240101T000000Z
item normal SmartOS 20240101T000000Z
item rescue rescue: Linux lab-6.1 (noimport)
choose --timeout 3000 --default normal target || goto normal
goto \${target}
:normal
echo fleetboot: booting SmartOS 20240101T000000Z
kernel ${base}/os/20240101T000000Z/platform/i86pc/kernel/amd64/unix?mac=${mac} -B console=ttya,ttya-mode="115200,8,n,1,-",admin_nic=${mac},hostname=cn-07,smartos=true,admin_ip=10.99.0.50,fleetboot_url=${base},fleetboot_node=1
module ${base}/os/20240101T000000Z/platform/i86pc/amd64/boot_archive?mac=${mac} type=rootfs name=ramdisk
module ${base}/os/20240101T000000Z/platform/i86pc/amd64/boot_archive.hash?mac=${mac} type=hash name=ramdisk
module ${base}/nodes/${mac}/networking.json type=file name=networking.json
module ${base}/nodes/${mac}/networking.json.hash type=hash name=networking.json
boot || goto failed
:rescue
echo fleetboot: booting rescue: Linux lab-6.1 (noimport)
kernel ${base}/os/lab-6.1/vmlinuz?mac=${mac} quiet console=ttyS0,115200n8 initrd=initrd.img noimport=true admin_ip=10.99.0.50 fleetboot_url=${base} fleetboot_node=1
initrd --name initrd.img ${base}/os/lab-6.1/initrd.img?mac=${mac}
initrd --name networking.json ${base}/nodes/${mac}/networking.json
imgargs networking.json networking.json
initrd --name networking.json.hash ${base}/nodes/${mac}/networking.json.hash
imgargs networking.json.hash networking.json.hash
boot || goto failed
:failed
echo fleetboot: boot failed; trying the next boot device
exit 1
`,
  );
});

test('a Linux node boots kernel, initrd and its modules as named initrds, with fleetboot_url and fleetboot_node on the command line', async (t) => {
  const { url, store } = await scriptServer(t);
  const { node } = store.nodes.discover({ mac });
  store.nodes.update(node.id, { state: 'running', bootPlatform: 'lab-6.1' });
  assert.equal(
    await (await fetch(`${url}${q}`)).text(),
    `#!ipxe
# fleetboot: node 1 (${mac}) boots Linux lab-6.1
:normal
echo fleetboot: booting Linux lab-6.1
kernel ${base}/os/lab-6.1/vmlinuz?mac=${mac} quiet console=ttyS0,115200n8 initrd=initrd.img admin_ip=10.99.0.50 fleetboot_url=${base} fleetboot_node=1
initrd --name initrd.img ${base}/os/lab-6.1/initrd.img?mac=${mac}
initrd --name networking.json ${base}/nodes/${mac}/networking.json
imgargs networking.json networking.json
initrd --name networking.json.hash ${base}/nodes/${mac}/networking.json.hash
imgargs networking.json.hash networking.json.hash
boot || goto failed
:failed
echo fleetboot: boot failed; trying the next boot device
exit 1
`,
  );
});

test('under UEFI a Linux node gets its modules as cpio archives named by initrd= (the EFI stub loads only what initrd= names)', async (t) => {
  const { url, store } = await scriptServer(t);
  const { node } = store.nodes.discover({ mac });
  store.nodes.update(node.id, { state: 'running', bootPlatform: 'lab-6.1' });
  const script = await (await fetch(`${url}${q}&platform=efi`)).text();
  assert.match(
    script,
    new RegExp(`\\nkernel \\S+ quiet console=ttyS0,115200n8 initrd=networking\\.json initrd=networking\\.json\\.hash initrd=initrd\\.img admin_ip=`),
  );
  assert.ok(script.includes(`initrd --name networking.json ${base}/nodes/${mac}/networking.json?format=newc\n`), script);
  assert.ok(script.includes(`initrd --name networking.json.hash ${base}/nodes/${mac}/networking.json.hash?format=newc\n`), script);
  // BIOS (or an older stage1 that does not say) keeps the raw files iPXE wraps itself.
  const bios = await (await fetch(`${url}${q}&platform=pcbios`)).text();
  assert.doesNotMatch(bios, /format=newc|initrd=networking/);
});

const exitScript = (reason: string): string => `#!ipxe
# fleetboot: ${reason}
echo fleetboot: ${reason}
echo fleetboot: handing back to the firmware (next boot device, normally the local disk)
exit 0
`;

test('an unknown machine under ignore gets exit and is not registered', async (t) => {
  const { url, store } = await scriptServer(t, { unknownNodePolicy: 'ignore' });
  assert.equal(await (await fetch(`${url}${q}`)).text(), exitScript(`machine ${mac}: not in the registry and the unknown-node policy is "ignore"`));
  assert.equal(store.nodes.findByMac(mac), undefined);
  assert.deepEqual(store.nodes.list(), []);
});

test('under allow-list only registered MACs boot', async (t) => {
  const { url, store } = await scriptServer(t, { unknownNodePolicy: 'allow-list' });
  assert.equal(await (await fetch(`${url}${q}`)).text(), exitScript(`machine ${mac}: not in the registry and the unknown-node policy is "allow-list"`));
  assert.deepEqual(store.nodes.list(), []);
  const registered = store.nodes.create({ nics: [{ mac, isAdmin: true }], state: 'running' });
  store.nodes.update(registered.id, { bootPlatform: 'lab-6.1' });
  assert.match(await (await fetch(`${url}${q}`)).text(), /^kernel http:\/\/10\.99\.0\.1:8080\/os\/lab-6\.1\/vmlinuz\?mac=52:54:00:12:34:56 /m);
});

test('a request without a usable MAC is a 400 that iPXE prints', async (t) => {
  const { url } = await scriptServer(t);
  const res = await fetch(`${url}/boot/node.ipxe?mac=nope&uuid=&serial=&arch=x86_64`);
  assert.equal(res.status, 400);
  assert.equal(await res.text(), '#!ipxe\necho fleetboot: mac: "nope" is not a MAC address\nexit 1\n');
});

test('the head node serves node.ipxe with the node-config contribution wired in, on the address the node used', async (t) => {
  const dir = tempDir(t);
  const { url, head } = await startHeadNode(t, dir);
  await importSmartosTarball(writeSmartosTarball(dir), { store: head.store, platformImagesDir: head.config.platformImagesDir });
  const text = await (await fetch(`${url}${q}`)).text();
  const kernel = text.split('\n').find((l) => l.startsWith('kernel '))!;
  assert.ok(kernel.startsWith(`kernel ${url}/os/20240101T000000Z/platform/i86pc/kernel/amd64/unix?mac=${mac} -B `), kernel);
  assert.equal(kernel.match(/fleetboot_node=/g)?.length, 1, kernel);
  assert.match(kernel, new RegExp(`fleetboot_url=${url.replace(/[.:/]/g, '\\$&')}(,|$)`));
  assert.ok(head.store.nodes.findByMac(mac));
});
