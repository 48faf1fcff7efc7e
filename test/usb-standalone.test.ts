// The platform key's layout (src/usb/standalone.ts) against what smartos-live's
// tools/build_boot_image puts on a SmartOS key and what a network boot gives the node: the
// kernel line, the modules and their bytes; and the refusals a build makes before writing.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, openSync, closeSync, ftruncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { ConfigInput } from '../src/config/schema.ts';
import { parseMac } from '../src/mac.ts';
import { setupNode } from '../src/nodeconfig/lifecycle.ts';
import { nodeKeysIn, tokenMatchesNode } from '../src/nodeconfig/secrets.ts';
import { platformsRoot } from '../src/platforms/layout.ts';
import type { NodeRecord } from '../src/store/nodes.ts';
import type { PlatformFile } from '../src/store/platforms.ts';
import { listUsbImage, UsbImageError, type UsbFile } from '../src/usb/disk.ts';
import { buildStandaloneKey, describeStandaloneKey, loaderConsoleList, standaloneKeyFiles, type KeyConsole, type StandaloneKeyLayout } from '../src/usb/standalone.ts';
import { Store } from '../src/store/store.ts';
import { runCli, startHeadNode, tempDir, type RunningHeadNode } from './fixtures.ts';
import { requires } from './requires.ts';

const mac = parseMac('52:54:00:5b:00:01')!;
const checkinUrl = 'http://10.99.5.1:8080';
const linuxStamp = 'usb-linux-1';
const smartosStamp = '20250301T000000Z';
const sha1 = (s: string | Buffer): string => createHash('sha1').update(s).digest('hex');
const network = {
  hostname: 'cn21',
  dnsDomain: 'lab.example',
  resolvers: ['10.99.5.1'],
  nics: [{ mac, tags: ['admin'] }],
  interfaces: [{ tag: 'admin', ip: '10.99.5.21', netmask: '255.255.255.0', gateway: '10.99.5.1' }],
};

const keyBuildNeeds = requires({ commands: ['mkfs.vfat', 'mcopy', 'syslinux', '/usr/lib/syslinux/mbr/mbr.bin', 'grub-mkimage', '/usr/lib/grub/x86_64-efi/linux.mod', '/usr/lib/syslinux/modules/bios/mboot.c32'] });

/** Writes a platform's files into the head node's platform folder and records it, as an import would. */
function addPlatform(store: Store, imagesDir: string, stamp: string, os: 'linux' | 'smartos', bytes: Record<string, { role: PlatformFile['role']; data?: string; size?: number }>, kernelArgs: string | null): void {
  const dir = join(platformsRoot(imagesDir), stamp);
  const files: PlatformFile[] = [];
  for (const [path, f] of Object.entries(bytes)) {
    const full = join(dir, path);
    mkdirSync(join(full, '..'), { recursive: true });
    if (f.size !== undefined) {
      const fd = openSync(full, 'w');
      ftruncateSync(fd, f.size);
      closeSync(fd);
    } else {
      writeFileSync(full, f.data ?? path);
    }
    files.push({ path, size: f.size ?? Buffer.byteLength(f.data ?? path), role: f.role, sha256: '0'.repeat(64) });
  }
  store.platforms.insert({ stamp, os, version: null, files, size: 1, kernelArgs }, () => stamp, () => {});
}

function linuxPlatform(store: Store, imagesDir: string): void {
  addPlatform(store, imagesDir, linuxStamp, 'linux', { vmlinuz: { role: 'kernel', data: 'kernel bytes' }, 'initrd.img': { role: 'initrd', data: 'initrd bytes' } }, 'console=ttyS0 panic=5');
}

function smartosPlatform(store: Store, imagesDir: string, archiveSize?: number): void {
  addPlatform(
    store,
    imagesDir,
    smartosStamp,
    'smartos',
    {
      'platform/i86pc/kernel/amd64/unix': { role: 'kernel' },
      'platform/i86pc/amd64/boot_archive': archiveSize !== undefined ? { role: 'boot_archive', size: archiveSize } : { role: 'boot_archive', data: 'archive' },
      'platform/i86pc/amd64/boot_archive.hash': { role: 'boot_archive_hash', data: `${sha1('archive')}\n` },
      'platform/etc/version/platform': { role: 'other', data: '20250301T000000Z\n' },
    },
    null,
  );
}

async function headNode(t: Parameters<typeof tempDir>[0] & { after: (fn: () => Promise<void> | void) => void }, overrides: ConfigInput = {}): Promise<RunningHeadNode> {
  return startHeadNode(t, tempDir(t), { http: { listen: '127.0.0.1', port: 0, publicUrl: checkinUrl }, ...overrides });
}

function setUpNode(h: RunningHeadNode): NodeRecord {
  const store = h.head.store;
  return setupNode(store, nodeKeysIn(h.head.config.dataDir), store.nodes.discover({ mac }).node, { network });
}

function layoutFor(h: RunningHeadNode, stamp: string, node: NodeRecord | null, console?: KeyConsole): StandaloneKeyLayout {
  const platform = h.head.store.platforms.get(stamp)!;
  return standaloneKeyFiles({
    config: h.head.config,
    platform,
    platformDir: join(platformsRoot(h.head.config.platformImagesDir), platform.folder),
    node,
    keys: node ? nodeKeysIn(h.head.config.dataDir) : null,
    checkinUrl,
    ...(console ? { console } : {}),
  });
}

const content = (layout: StandaloneKeyLayout, path: string): string => {
  const f = layout.files.find((x) => x.path === path);
  assert.ok(f, `${path} is on the key (has: ${layout.files.map((x) => x.path).join(', ')})`);
  assert.ok('content' in f, `${path} is generated`);
  return f.content.toString();
};
const sourceOf = (layout: StandaloneKeyLayout, path: string): string => {
  const f = layout.files.find((x): x is Extract<UsbFile, { source: string }> => x.path === path && 'source' in x);
  assert.ok(f, `${path} is copied onto the key`);
  return f.source;
};

/** The members of a newc cpio archive (Documentation/driver-api/early-userspace/buffer-format.rst). */
function cpioMembers(archive: Buffer): { name: string; data: string }[] {
  const members: { name: string; data: string }[] = [];
  let at = 0;
  const align = (n: number): number => (n + 3) & ~3;
  for (;;) {
    assert.equal(archive.subarray(at, at + 6).toString('ascii'), '070701');
    const field = (i: number): number => parseInt(archive.subarray(at + 6 + i * 8, at + 14 + i * 8).toString('ascii'), 16);
    const size = field(6);
    const nameSize = field(11);
    const name = archive.subarray(at + 110, at + 110 + nameSize - 1).toString('utf8');
    const dataAt = align(at + 110 + nameSize);
    if (name === 'TRAILER!!!') break;
    members.push({ name, data: archive.subarray(dataAt, dataAt + size).toString('utf8') });
    at = align(dataAt + size);
  }
  return members;
}

async function served(h: RunningHeadNode, file: string, token: string): Promise<string> {
  const res = await fetch(`${h.url}/nodes/${mac}/${file}?token=${encodeURIComponent(token)}`);
  assert.equal(res.status, 200, file);
  return res.text();
}

test('SmartOS key: build_boot_image layout, loader.conf console settings and smartos=true, BIOS (mboot) and UEFI (multiboot2) entries', async (t) => {
  const h = await headNode(t);
  smartosPlatform(h.head.store, h.head.config.platformImagesDir);
  const layout = layoutFor(h, smartosStamp, null, 'ttyb');
  const dir = join(platformsRoot(h.head.config.platformImagesDir), smartosStamp);
  // build_boot_image copies the platform folder to /platform on the key's root.
  for (const p of ['platform/i86pc/kernel/amd64/unix', 'platform/i86pc/amd64/boot_archive', 'platform/i86pc/amd64/boot_archive.hash', 'platform/etc/version/platform']) {
    assert.equal(sourceOf(layout, p), join(dir, p));
  }
  const conf = content(layout, 'boot/loader.conf');
  assert.equal(conf, layout.loaderConf);
  const lines = conf.trimEnd().split('\n');
  for (const want of [
    'console="ttyb,ttya,ttyc,ttyd,text"',
    'os_console="ttyb"',
    'ttya-mode="115200,8,n,1,-"',
    'ttyb-mode="115200,8,n,1,-"',
    'ttyc-mode="115200,8,n,1,-"',
    'ttyd-mode="115200,8,n,1,-"',
    'smartos="true"',
    `fleetboot_url="${checkinUrl}"`,
  ]) {
    assert.ok(lines.includes(want), `loader.conf has ${want}:\n${conf}`);
  }
  assert.ok(!lines.some((l) => l.startsWith('admin_nic=')), 'no node, no admin NIC');
  assert.ok(!lines.some((l) => l.startsWith('root_shadow=')), 'no published default password');
  assert.equal(layout.label, 'SMARTOSBOOT');
  assert.deepEqual(layout.syslinuxModules, ['mboot.c32', 'libcom32.c32']);

  const sys = layout.syslinuxCfg.split('\n');
  assert.equal(sys[0], 'SERIAL 1 115200', 'ttyb is COM2');
  assert.ok(sys.includes('  KERNEL /mboot.c32'));
  const append = sys.find((l) => l.startsWith('  APPEND '))!.slice('  APPEND '.length).split(' --- ');
  assert.match(append[0]!, /^\/platform\/i86pc\/kernel\/amd64\/unix -B console=ttyb,ttyb-mode="115200,8,n,1,-",.*smartos=true.*fleetboot_url=http:\/\/10\.99\.5\.1:8080$/);
  assert.deepEqual(append.slice(1), ['/platform/i86pc/amd64/boot_archive type=rootfs name=ramdisk', '/platform/i86pc/amd64/boot_archive.hash type=hash name=ramdisk']);

  const grub = content(layout, 'EFI/BOOT/grub.cfg');
  assert.match(grub, /^serial --unit=1 --speed=115200$/m);
  assert.match(grub, /^ {2}multiboot2 \/platform\/i86pc\/kernel\/amd64\/unix '\/platform\/i86pc\/kernel\/amd64\/unix' '-B' 'console=ttyb,smartos=true,fleetboot_url=http:\/\/10\.99\.5\.1:8080'$/m);
  // GRUB would hand the kernel \" for a quote: the quoted values ride in an environment module.
  assert.ok(!grub.includes('"'), grub);
  assert.match(grub, /^ {2}module2 \/fleetboot\/boot.env '\/fleetboot\/boot.env' 'type=environment' 'name=environment'$/m);
  assert.equal(content(layout, 'fleetboot/boot.env'), 'ttyb-mode=115200,8,n,1,-\0\0');
  assert.match(grub, /^ {2}module2 \/platform\/i86pc\/amd64\/boot_archive '\/platform\/i86pc\/amd64\/boot_archive' 'type=rootfs' 'name=ramdisk'$/m);
  assert.match(grub, /^ {2}module2 \/platform\/i86pc\/amd64\/boot_archive.hash '\/platform\/i86pc\/amd64\/boot_archive.hash' 'type=hash' 'name=ramdisk'$/m);

  // The console list and os_console for each console build_boot_image offers, and the screen.
  assert.equal(loaderConsoleList('text'), 'text,ttya,ttyb,ttyc,ttyd');
  assert.equal(loaderConsoleList('ttya'), 'ttya,ttyb,ttyc,ttyd,text');
  assert.equal(loaderConsoleList('ttyd'), 'ttyd,ttya,ttyb,ttyc,text');
  for (const c of ['text', 'vga'] as const) {
    const screen = layoutFor(h, smartosStamp, null, c);
    assert.ok(screen.loaderConf!.split('\n').includes(`os_console="${c}"`));
    assert.ok(screen.loaderConf!.split('\n').includes('console="text,ttya,ttyb,ttyc,ttyd"'));
    assert.ok(!/^SERIAL/m.test(screen.syslinuxCfg), 'no serial console on the screen');
    assert.ok(!/^serial/m.test(screen.grubCfg));
    assert.match(screen.syslinuxCfg, new RegExp(`-B console=${c},`));
  }
});

test('SmartOS key with --node: its modules are the bytes the head node serves, listed for loader, mboot and GRUB with their types, and its boot args carry its network and token', async (t) => {
  const h = await headNode(t);
  smartosPlatform(h.head.store, h.head.config.platformImagesDir);
  const node = setUpNode(h);
  const layout = layoutFor(h, smartosStamp, node);
  const token = /fleetboot_token="?([\w-]+)"?/.exec(layout.loaderConf!)?.[1];
  assert.ok(token && tokenMatchesNode(token, node.tokenHash), `loader.conf carries the node's token:\n${layout.loaderConf}`);
  for (const file of ['networking.json', 'networking.json.hash', 'answers.json', 'node.json']) {
    assert.equal(content(layout, `fleetboot/node/${file}`), await served(h, file, token), `${file} as served`);
  }
  assert.equal(content(layout, 'fleetboot/node/networking.json.hash'), sha1(content(layout, 'fleetboot/node/networking.json')));
  assert.equal((JSON.parse(content(layout, 'fleetboot/node/answers.json')) as { admin_ip: string }).admin_ip, '10.99.5.21');

  const conf = layout.loaderConf!.split('\n');
  for (const want of [`admin_nic="${mac}"`, 'hostname="cn21"', `fleetboot_node="${node.id}"`, 'smartos="true"']) assert.ok(conf.includes(want), `loader.conf has ${want}`);
  const moduleKeys = conf.filter((l) => /_load="YES"$/.test(l)).map((l) => l.slice(0, -'_load="YES"'.length));
  assert.equal(moduleKeys.length, 4);
  const flagsOf = (k: string): string[] => ['type', 'name', 'flags'].map((f) => conf.find((l) => l.startsWith(`${k}_${f}=`))!.split('=').slice(1).join('='));
  assert.deepEqual(moduleKeys.map(flagsOf), [
    ['"file"', '"/fleetboot/node/networking.json"', '"name=networking.json"'],
    ['"hash"', '"/fleetboot/node/networking.json.hash"', '"name=networking.json"'],
    ['"file"', '"/fleetboot/node/answers.json"', '"name=answers.json"'],
    ['"file"', '"/fleetboot/node/node.json"', '"name=node.json"'],
  ]);
  const append = layout.syslinuxCfg.split('\n').find((l) => l.startsWith('  APPEND '))!.split(' --- ');
  assert.match(append[0]!, new RegExp(`admin_nic=${mac},.*hostname=cn21,smartos=true,.*fleetboot_token=${token}`));
  assert.deepEqual(append.slice(3), [
    '/fleetboot/node/networking.json type=file name=networking.json',
    '/fleetboot/node/networking.json.hash type=hash name=networking.json',
    '/fleetboot/node/answers.json type=file name=answers.json',
    '/fleetboot/node/node.json type=file name=node.json',
  ]);
  assert.match(layout.grubCfg, /^ {2}module2 \/fleetboot\/node\/networking.json.hash '\/fleetboot\/node\/networking.json.hash' 'type=hash' 'name=networking.json'$/m);

  // What --list reads back from the key's configs.
  const listed = [...layout.files.map((f) => ({ path: f.path, ...('content' in f ? { text: f.content.toString() } : {}) })), { path: 'syslinux.cfg', text: layout.syslinuxCfg }];
  const summary = describeStandaloneKey(listed);
  assert.ok(summary);
  assert.equal(summary.os, 'smartos');
  assert.equal(summary.kernel, '/platform/i86pc/kernel/amd64/unix');
  assert.equal(summary.node, String(node.id));
  assert.equal(summary.checkinUrl, checkinUrl);
  assert.equal(summary.adminAddress, '10.99.5.21/255.255.255.0');
  assert.deepEqual(summary.modules.slice(0, 2), ['/platform/i86pc/amd64/boot_archive type=rootfs name=ramdisk', '/platform/i86pc/amd64/boot_archive.hash type=hash name=ramdisk']);
});

test('Linux key with --node: kernel, module archives first then the platform initrd, the command line of a network boot, for syslinux and GRUB', async (t) => {
  const h = await headNode(t);
  linuxPlatform(h.head.store, h.head.config.platformImagesDir);
  const node = setUpNode(h);
  const layout = layoutFor(h, linuxStamp, node);
  const dir = join(platformsRoot(h.head.config.platformImagesDir), linuxStamp);
  assert.equal(sourceOf(layout, `fleetboot/${linuxStamp}/vmlinuz`), join(dir, 'vmlinuz'));
  assert.equal(sourceOf(layout, `fleetboot/${linuxStamp}/initrd.img`), join(dir, 'initrd.img'));
  assert.equal(layout.loaderConf, null);
  assert.equal(layout.label, 'FLEETBOOT');

  const sys = layout.syslinuxCfg.split('\n');
  assert.equal(sys[0], 'SERIAL 0 115200');
  assert.ok(sys.includes(`  KERNEL /fleetboot/${linuxStamp}/vmlinuz`));
  const names = ['networking.json', 'networking.json.hash', 'answers.json', 'node.json'];
  const initrds = [...names.map((n) => `/fleetboot/node/${n}.cpio`), `/fleetboot/${linuxStamp}/initrd.img`];
  assert.ok(sys.includes(`  INITRD ${initrds.join(',')}`), layout.syslinuxCfg);
  const cmdline = sys.find((l) => l.startsWith('  APPEND '))!.slice('  APPEND '.length);
  const token = /fleetboot_token=([\w-]+)/.exec(cmdline)?.[1];
  assert.ok(token && tokenMatchesNode(token, node.tokenHash));
  assert.match(cmdline, new RegExp(`^console=ttyS0 panic=5 .*fleetboot_url=${checkinUrl.replace(/\./g, '\\.')} fleetboot_node=${node.id}\\b`));
  assert.ok(!/\binitrd=/.test(cmdline), 'no initrd= names for an EFI stub to look up');

  // Each archive holds one module at /<name> with the bytes the head node serves.
  for (const n of names) {
    const f = layout.files.find((x) => x.path === `fleetboot/node/${n}.cpio`)!;
    assert.ok('content' in f && Buffer.isBuffer(f.content));
    assert.equal(f.content.length % 4, 0, 'padded, so the next archive starts aligned');
    assert.deepEqual(cpioMembers(f.content), [{ name: n, data: await served(h, n, token) }]);
    assert.equal(content(layout, `fleetboot/node/${n}`), await served(h, n, token));
  }

  const grub = content(layout, 'EFI/BOOT/grub.cfg');
  assert.match(grub, /^serial --unit=0 --speed=115200$/m);
  const linuxLine = grub.split('\n').find((l) => l.startsWith('  linux '))!;
  assert.equal(linuxLine, `  linux /fleetboot/${linuxStamp}/vmlinuz ${cmdline.split(' ').map((w) => `'${w}'`).join(' ')}`);
  assert.ok(grub.split('\n').includes(`  initrd ${initrds.join(' ')}`));
});

test('usb-image --standalone refuses an unknown platform or node, a node never set up, a platform that does not fit, and a missing check-in URL', async (t) => {
  const h = await headNode(t);
  const store = h.head.store;
  linuxPlatform(store, h.head.config.platformImagesDir);
  const out = join(tempDir(t), 'key.img');
  const build = (o: Partial<Parameters<typeof buildStandaloneKey>[0]>): Promise<unknown> => buildStandaloneKey({ store, config: h.head.config, stamp: linuxStamp, out, ...o });
  await assert.rejects(build({ stamp: 'no-such' }), (e: Error) => e instanceof UsbImageError && /--platform no-such is not imported \(imported: usb-linux-1;/.test(e.message));
  await assert.rejects(build({ nodeRef: 'cn99' }), (e: Error) => e instanceof UsbImageError && /--node cn99: no such node/.test(e.message));
  const bare = store.nodes.discover({ mac: parseMac('52:54:00:5b:00:09')! }).node;
  await assert.rejects(build({ nodeRef: String(bare.id) }), (e: Error) => e instanceof UsbImageError && new RegExp(`node ${bare.id} has no network config to carry: run fleetboot node setup`).test(e.message));
  await assert.rejects(build({ config: { ...h.head.config, http: { ...h.head.config.http, publicUrl: undefined } } }), (e: Error) => e instanceof UsbImageError && /set http\.publicUrl in the config or pass --url/.test(e.message));
  await assert.rejects(build({ config: { ...h.head.config, boot: { ...h.head.config.boot, console: 'ttyS0' } } }), (e: Error) => e instanceof UsbImageError && /boot\.console "ttyS0".*--console/.test(e.message));
  addPlatform(store, h.head.config.platformImagesDir, 'quoted', 'linux', { vmlinuz: { role: 'kernel' } }, 'console=ttyS0 dyndbg="module e1000 +p"');
  await assert.rejects(build({ stamp: 'quoted' }), (e: Error) => e instanceof UsbImageError && /platform quoted's command line holds a quote or backslash/.test(e.message));
  assert.ok(!existsSync(out), 'nothing written');
});

test('a SmartOS platform larger than --size is refused naming the platform and the size it needs', { skip: keyBuildNeeds }, async (t) => {
  const h = await headNode(t);
  smartosPlatform(h.head.store, h.head.config.platformImagesDir, 90 * 1024 * 1024);
  const out = join(tempDir(t), 'key.img');
  await assert.rejects(
    buildStandaloneKey({ store: h.head.store, config: h.head.config, stamp: smartosStamp, out, sizeMiB: 64 }),
    (e: Error) => e instanceof UsbImageError && /platform 20250301T000000Z does not fit in --size 64 MiB: the key needs (\d+) MiB/.test(e.message) && Number(/needs (\d+)/.exec(e.message)![1]) > 90,
  );
  assert.ok(!existsSync(out));
});

test('a Linux platform key with --node is written: FAT on MBR with syslinux, GRUB as BOOTX64.EFI, the kernel, archives and configs', { skip: keyBuildNeeds }, async (t) => {
  const h = await headNode(t);
  linuxPlatform(h.head.store, h.head.config.platformImagesDir);
  setUpNode(h);
  const out = join(tempDir(t), 'key.img');
  const steps: string[] = [];
  const built = await buildStandaloneKey({ store: h.head.store, config: h.head.config, stamp: linuxStamp, nodeRef: 'cn21', out, progress: (m) => steps.push(m) });
  assert.equal(built.out, out);
  assert.ok(steps.some((s) => /platform usb-linux-1 \(linux\) for node \d+, check-in at http:\/\/10\.99\.5\.1:8080/.test(s)), steps.join('\n'));
  const listing = await listUsbImage(out);
  assert.equal(listing.label, 'FLEETBOOT');
  assert.ok(listing.mbrBootCode);
  assert.deepEqual(listing.partitions.map((p) => [p.active, p.type, p.startSector]), [[true, 0x0c, 2048]]);
  const files = new Map(listing.files.map((f) => [f.path, f]));
  for (const p of ['EFI/BOOT/BOOTX64.EFI', 'EFI/BOOT/grub.cfg', 'syslinux.cfg', 'ldlinux.sys', `fleetboot/${linuxStamp}/vmlinuz`, `fleetboot/${linuxStamp}/initrd.img`, 'fleetboot/node/networking.json', 'fleetboot/node/networking.json.cpio']) {
    assert.ok(files.has(p), `${p} on the key: ${[...files.keys()].join(', ')}`);
  }
  assert.equal(files.get(`fleetboot/${linuxStamp}/vmlinuz`)!.size, 'kernel bytes'.length);
  assert.equal(files.get('syslinux.cfg')!.text, built.layout.syslinuxCfg);
  assert.equal(files.get('EFI/BOOT/grub.cfg')!.text, built.layout.grubCfg);
  assert.match(files.get('fleetboot/node/networking.json')!.text!, /"ip": "10\.99\.5\.21"/);
  assert.ok(files.get('EFI/BOOT/BOOTX64.EFI')!.size > 100_000, 'a GRUB EFI image');
  const summary = describeStandaloneKey(listing.files);
  assert.deepEqual(summary && { os: summary.os, kernel: summary.kernel, node: summary.node, url: summary.checkinUrl, address: summary.adminAddress, last: summary.modules.at(-1) }, {
    os: 'linux',
    kernel: `/fleetboot/${linuxStamp}/vmlinuz`,
    node: String(h.head.store.nodes.find('cn21')!.id),
    url: checkinUrl,
    address: '10.99.5.21/255.255.255.0',
    last: `/fleetboot/${linuxStamp}/initrd.img`,
  });
});

test('fleetboot usb-image --standalone writes the key an operator asked for and --list shows what it boots; bad flags exit 2 naming them', { skip: keyBuildNeeds }, async (t) => {
  const dir = tempDir(t);
  const configFile = join(dir, 'fleetboot.json');
  writeFileSync(configFile, JSON.stringify({ http: { publicUrl: checkinUrl }, log: { level: 'silent' } }));
  const store = Store.open(Store.fileIn(join(dir, 'var')));
  try {
    linuxPlatform(store, join(dir, 'platform-images'));
  } finally {
    store.close();
  }
  const out = join(dir, 'any.img');
  const made = await runCli(['--config', configFile, 'usb-image', '--standalone', '--platform', linuxStamp, '--console', 'ttyb', '--out', out], dir);
  assert.equal(made.exitCode, 0, String(made.stderr));
  assert.match(String(made.stdout), /wrote .*any\.img \(64\.0 MiB\): platform key, usb-linux-1/);
  const list = await runCli(['--config', configFile, 'usb-image', '--list', out], dir);
  assert.equal(list.exitCode, 0, String(list.stderr));
  assert.match(String(list.stdout), /^platform key \(Linux\): kernel \/fleetboot\/usb-linux-1\/vmlinuz$/m);
  // The platform's own console stays; --console ttyb adds COM2, the last console= (the kernel's /dev/console).
  assert.match(String(list.stdout), /^ {2}command line: console=ttyS0 panic=5 console=ttyS1,115200n8 fleetboot_url=http:\/\/10\.99\.5\.1:8080$/m);
  assert.match(String(list.stdout), /^ {2}node: none \(any machine\); admin address: asked at first boot; checks in at http:\/\/10\.99\.5\.1:8080$/m);
  assert.match(String(list.stdout), /^SERIAL 1 115200$/m, 'the syslinux.cfg text, on ttyb');
  for (const [args, message] of [
    [['--standalone', '--out', out], /--standalone needs --platform STAMP/],
    [['--standalone', '--platform', linuxStamp, '--static', '10.0.0.5/24', '--out', out], /--static is for a netboot key/],
    [['--standalone', '--platform', linuxStamp, '--console', 'com1', '--out', out], /--console com1: expected one of ttya, ttyb, ttyc, ttyd, text, vga/],
    [['--standalone', '--platform', 'nope', '--out', out], /--platform nope is not imported/],
    [['--platform', linuxStamp, '--out', out], /--platform is for a platform key: add --standalone/],
  ] as const) {
    const r = await runCli(['--config', configFile, 'usb-image', ...args], dir);
    assert.equal(r.exitCode, 2, `${args.join(' ')}: ${String(r.stderr)}`);
    assert.match(String(r.stderr), message);
  }
});
