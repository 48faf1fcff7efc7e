// The platform key (`fleetboot usb-image --standalone`): a USB key that carries a platform and
// boots it with no network boot at all, the way a SmartOS USB key does, optionally with one
// node's config modules so it comes up with its own network and pool. The kernel line and
// modules are the node's network boot plan (boot/plan.ts platformBootEntry) and the module
// bytes are what the head node serves (nodeconfig/render.ts); only the loader differs:
// - BIOS: syslinux (Debian syslinux), `linux` for Linux, mboot.c32 (multiboot) for SmartOS;
// - UEFI: GRUB (Debian grub-efi-amd64-bin, grub-mkimage) as EFI/BOOT/BOOTX64.EFI: Debian's
//   kernel has no built-in command line and a firmware's removable-media boot passes its EFI
//   stub none, so a loader has to carry the command line and hand over the initrds.
// docs/usb.md has the layouts and why.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { z } from 'zod';
import { newcArchive } from '../boot/cpio.ts';
import { platformBootEntry, type BootModule, type LinuxEntry, type SmartosEntry } from '../boot/plan.ts';
import type { FleetbootConfig } from '../config/schema.ts';
import { nodeConfigContribution } from '../nodeconfig/boot-modules.ts';
import { configModuleNames, defaultNtpHost, networkOf, renderConfigModule, type ConfigModuleName } from '../nodeconfig/render.ts';
import { nodeKeysIn, rootPassword, type NodeKeys } from '../nodeconfig/secrets.ts';
import { platformsRoot } from '../platforms/layout.ts';
import { parseMac } from '../mac.ts';
import type { NodeRecord } from '../store/nodes.ts';
import type { PlatformRecord } from '../store/platforms.ts';
import type { Store } from '../store/store.ts';
import { buildUsbImage, minimumImageMiB, neededMiB, UsbImageError, type UsbFile } from './disk.ts';

/** Consoles a SmartOS loader offers (smartos-live tools/build_boot_image `-c`), plus `vga`. */
export const keyConsoles = ['ttya', 'ttyb', 'ttyc', 'ttyd', 'text', 'vga'] as const;
export type KeyConsole = (typeof keyConsoles)[number];

export interface StandaloneKeyInput {
  config: FleetbootConfig;
  platform: PlatformRecord;
  /** The platform's imported folder (`platform-images/os/<stamp>`). */
  platformDir: string;
  /** The node whose config modules go on the key, or null for a key any machine boots. */
  node: NodeRecord | null;
  /** The head node's key (node token, root password); needed with a node. */
  keys: NodeKeys | null;
  /** Where the node checks in once it can reach the head node (`fleetboot_url=`). */
  checkinUrl: string;
  /** Default: the head node's `boot.console`. */
  console?: KeyConsole;
}

export interface StandaloneKeyLayout {
  /** Every file on the key except the GRUB EFI binary (built by grub-mkimage at build time). */
  files: UsbFile[];
  /** The BIOS loader's config, for `buildUsbImage`'s `syslinuxCfg`. */
  syslinuxCfg: string;
  /** GRUB's config, also in `files` at EFI/BOOT/grub.cfg. */
  grubCfg: string;
  /** SmartOS: boot/loader.conf in build_boot_image's form, also in `files`; null for Linux. */
  loaderConf: string | null;
  /** syslinux modules the BIOS loader needs besides ldlinux (SmartOS: mboot.c32 and its library). */
  syslinuxModules: string[];
  /** FAT volume label. */
  label: string;
  /** Boot args or module files the boot plan left out, and why. */
  warnings: string[];
}

/** Where a node's config modules sit on the key. */
export const keyModuleDir = 'fleetboot/node';
/** SmartOS under GRUB: the boot args whose values need quotes, as an illumos environment module. */
export const keyEnvironment = 'fleetboot/boot.env';
/** The folder holding GRUB's config; grub-mkimage's prefix. */
export const grubPrefix = 'EFI/BOOT';

const moduleFileName = (m: BootModule): string => (m.type === 'hash' ? `${m.name}.hash` : m.name);
const isConfigModule = (name: string): name is ConfigModuleName => (configModuleNames as readonly string[]).includes(name);

/** GRUB script word quoting: single quotes take everything literally (GRUB manual "Quoting"), `'` itself closes, escapes and reopens. */
function grubWord(w: string): string {
  return `'${w.replace(/'/g, `'\\''`)}'`;
}

/** The serial unit of a ttyX console (ttya = COM1 = unit 0), or null for the screen. */
function serialUnit(console: KeyConsole): number | null {
  const m = /^tty([a-d])$/.exec(console);
  return m ? m[1]!.charCodeAt(0) - 'a'.charCodeAt(0) : null;
}

/**
 * smartos-live tools/build_boot_image (populate_root): the loader's console list puts the
 * chosen console first and then the others, os_console is the chosen one.
 */
export function loaderConsoleList(console: KeyConsole): string {
  const serial = ['ttya', 'ttyb', 'ttyc', 'ttyd'];
  if (console === 'text' || console === 'vga') return ['text', ...serial].join(',');
  return [console, ...serial.filter((s) => s !== console), 'text'].join(',');
}

function syslinuxHead(console: KeyConsole, speed: number): string[] {
  const unit = serialUnit(console);
  // syslinux(1) config: SERIAL must be the first directive to catch everything on that port.
  return [...(unit !== null ? [`SERIAL ${unit} ${speed}`] : []), 'DEFAULT fleetboot', 'PROMPT 0', 'TIMEOUT 10'];
}

function grubHead(console: KeyConsole, speed: number): string[] {
  const unit = serialUnit(console);
  return [
    ...(unit !== null
      ? [`serial --unit=${unit} --speed=${speed}`, 'terminal_input serial console', 'terminal_output serial console']
      : []),
    'set default=0',
    'set timeout=1',
  ];
}

/** The console a key uses when none is asked for: the head node's `boot.console`, when a loader offers it. */
function keyConsoleOf(console: string): KeyConsole {
  const known = keyConsoles.find((c) => c === console);
  if (!known) throw new UsbImageError(`boot.console ${JSON.stringify(console)} is not a console a key's loaders offer: pass --console ${keyConsoles.join('|')}`);
  return known;
}

/**
 * The bytes of the node's config modules as the head node serves them (nodeconfig/render.ts),
 * by the file name the boot plan gives each module (`networking.json.hash` for its hash).
 */
function nodeModuleBodies<M extends { file: string }>(modules: readonly M[], input: StandaloneKeyInput): (M & { body: string })[] {
  const node = input.node;
  if (!node) return [];
  const secrets = { rootPassword: input.keys ? rootPassword(input.keys, node) : null, ntpHost: defaultNtpHost(input.config) };
  const out: (M & { body: string })[] = [];
  for (const m of modules) {
    if (!isConfigModule(m.file)) throw new UsbImageError(`boot module ${m.file} is not a config module fleetboot renders; cannot put it on a key`);
    const body = renderConfigModule(m.file, node, secrets);
    if (body !== null) out.push({ ...m, body });
  }
  return out;
}

/**
 * The files and loader configs of a platform key, from the platform's record and folder, the
 * node and the head node's config; reads nothing but whether the platform's files are there. The kernel line and module list are the node's network
 * boot (boot/plan.ts), so a node booted from the key checks in as it would from the network.
 */
export function standaloneKeyFiles(input: StandaloneKeyInput): StandaloneKeyLayout {
  const { platform, node } = input;
  const console = input.console ?? keyConsoleOf(input.config.boot.console);
  const speed = input.config.boot.consoleSpeed;
  if (node && node.state === 'retired') throw new UsbImageError(`node ${node.id} is retired: it gets no config modules`);
  if (node && !networkOf(node)) throw new UsbImageError(`node ${node.id} has no network config to carry: run fleetboot node setup ${node.id} --network FILE first`);
  if (node && !input.keys) throw new UsbImageError(`a key for node ${node.id} needs the head node's key (dataDir/node-key) for its token and modules`);
  const contribution = node ? nodeConfigContribution(node, input.keys ?? undefined, { fromNode: true }) : null;
  const config: FleetbootConfig = { ...input.config, boot: { ...input.config.boot, console } };
  // Without a node no machine is named: the placeholder MAC only fills the request, and its
  // admin_nic is dropped below (SmartOS then asks for the admin NIC at first boot).
  const adminMac = node?.nics.find((n) => n.isAdmin)?.mac ?? node?.nics[0]?.mac ?? parseMac('00:00:00:00:00:00')!;
  // pcbios: the loaders on the key hand the kernel its initrds themselves (syslinux, GRUB),
  // as iPXE does under BIOS.
  const planned = platformBootEntry(platform, node, config, contribution, { mac: adminMac, baseUrl: input.checkinUrl, firmware: 'pcbios' });
  const { warnings } = planned;
  const entry = planned.entry.os === 'smartos' && !node ? { ...planned.entry, bootArgs: planned.entry.bootArgs.filter(([k]) => k !== 'admin_nic') } : planned.entry;
  const platformFile = (path: string): string => join(input.platformDir, path);
  for (const f of platform.files) {
    if (!existsSync(platformFile(f.path))) throw new UsbImageError(`platform ${platform.stamp}: ${platformFile(f.path)} is missing (re-import the platform)`);
  }
  if (entry.os === 'smartos') return smartosLayout(entry, input, console, speed, warnings);
  return linuxLayout(entry, input, console, speed, warnings);
}

function linuxLayout(entry: LinuxEntry, input: StandaloneKeyInput, console: KeyConsole, speed: number, warnings: string[]): StandaloneKeyLayout {
  const { platform } = input;
  const base = `fleetboot/${platform.stamp}`;
  const files: UsbFile[] = [];
  const kernel = platform.files.find((f) => f.role === 'kernel');
  if (!kernel) throw new UsbImageError(`platform ${platform.stamp} has no kernel file`);
  const kernelOnKey = `${base}/${kernel.path}`;
  files.push({ path: kernelOnKey, source: join(input.platformDir, kernel.path) });
  const initrds: string[] = [];
  // The node's modules, each a one-file newc archive (boot/cpio.ts) so it lands at /<name> in
  // the initramfs, go first: uncompressed and 4-byte padded, the kernel finds each archive
  // after the one before (init/initramfs.c unpack_to_rootfs); the platform's compressed
  // initrds go last. The plain file sits beside its archive for `usb-image --list`.
  for (const { file, body } of nodeModuleBodies(entry.modules.map((m) => ({ file: m.name })), input)) {
    files.push({ path: `${keyModuleDir}/${file}`, content: body });
    files.push({ path: `${keyModuleDir}/${file}.cpio`, content: newcArchive(file, Buffer.from(body, 'utf8')) });
    initrds.push(`${keyModuleDir}/${file}.cpio`);
  }
  for (const f of platform.files.filter((x) => x.role === 'initrd')) {
    files.push({ path: `${base}/${f.path}`, source: join(input.platformDir, f.path) });
    initrds.push(`${base}/${f.path}`);
  }
  // The plan's `initrd=` words name images for iPXE and an EFI stub; here the loader hands the
  // kernel its initrds itself, and a stub started by the loader would look for files by those
  // names (Documentation/admin-guide/efi-stub.rst).
  const cmdline = entry.cmdline.split(' ').filter((w) => w !== '' && !w.startsWith('initrd=')).join(' ');
  // GRUB puts a backslash before each quote and backslash it hands a kernel (grub-core/lib/cmdline.c),
  // which Linux's parse_args does not undo: such a command line would differ under UEFI.
  if (/["'\\]/.test(cmdline)) throw new UsbImageError(`platform ${platform.stamp}'s command line holds a quote or backslash, which GRUB would hand the kernel escaped under UEFI: re-import it without them`);
  const syslinuxCfg = [
    ...syslinuxHead(console, speed),
    'LABEL fleetboot',
    `  MENU LABEL ${entry.title}`,
    `  KERNEL /${kernelOnKey}`,
    // syslinux(1) INITRD: several files separated by commas are loaded one after another.
    ...(initrds.length ? [`  INITRD ${initrds.map((p) => `/${p}`).join(',')}`] : []),
    `  APPEND ${cmdline}`,
    '',
  ].join('\n');
  const grubCfg = [
    ...grubHead(console, speed),
    `menuentry ${grubWord(entry.title)} {`,
    `  linux /${kernelOnKey} ${cmdline.split(' ').map(grubWord).join(' ')}`,
    // GRUB's initrd loads each file 4-byte aligned after the one before (loader/linux.c grub_initrd_load).
    ...(initrds.length ? [`  initrd ${initrds.map((p) => `/${p}`).join(' ')}`] : []),
    '}',
    '',
  ].join('\n');
  files.push({ path: `${grubPrefix}/grub.cfg`, content: grubCfg });
  return { files, syslinuxCfg, grubCfg, loaderConf: null, syslinuxModules: [], label: 'FLEETBOOT', warnings };
}

/** loader.conf(5) quoting: every value in double quotes; a value holding one keeps it escaped. */
function loaderValue(v: string): string {
  return `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** A -B value the boot plan quoted for the kernel line, unquoted for loader.conf, which quotes it itself. */
const unquoted = (v: string): string => (v.length >= 2 && v.startsWith('"') && v.endsWith('"') ? v.slice(1, -1) : v);

function smartosLayout(entry: SmartosEntry, input: StandaloneKeyInput, console: KeyConsole, speed: number, warnings: string[]): StandaloneKeyLayout {
  const { platform } = input;
  const files: UsbFile[] = [];
  // build_boot_image (populate_root) copies the whole platform folder to /platform on the
  // key's root FS: the loader and the kernel want `/platform/i86pc/...`.
  for (const f of platform.files) files.push({ path: f.path, source: join(input.platformDir, f.path) });
  const unix = platform.files.find((f) => f.role === 'kernel')?.path;
  const archive = platform.files.find((f) => f.role === 'boot_archive')?.path;
  const archiveHash = platform.files.find((f) => f.role === 'boot_archive_hash')?.path;
  if (!unix || !archive || !archiveHash) throw new UsbImageError(`platform ${platform.stamp} lacks unix, boot_archive or boot_archive.hash`);

  // Module list as the network boot has it: the platform's rootfs and hash, then the node's
  // modules (type=file / type=hash, name=<module>: illumos dboot puts a named module at
  // /system/boot/<name>).
  const mods: { path: string; type: string; name: string }[] = [
    { path: archive, type: 'rootfs', name: 'ramdisk' },
    { path: archiveHash, type: 'hash', name: 'ramdisk' },
  ];
  const nodeModules = entry.modules.filter((m) => m.type !== 'rootfs' && !m.path.startsWith('/os/')).map((m) => ({ file: moduleFileName(m), type: m.type, name: m.name }));
  for (const { file, type, name, body } of nodeModuleBodies(nodeModules, input)) {
    files.push({ path: `${keyModuleDir}/${file}`, content: body });
    mods.push({ path: `${keyModuleDir}/${file}`, type, name });
  }

  const bootArgs = entry.bootArgs.map(([k, v]) => `${k}=${v}`).join(',');
  const flags = entry.kernelFlags.join(' ');
  const kernelArgs = `${flags ? `${flags} ` : ''}-B ${bootArgs}`;

  // smartos-live tools/build_boot_image populate_root: console list, os_console, the four
  // ttyX-mode lines, the loader's SmartOS branding and smartos="true". Its root_shadow (a
  // published default password) is left out: a node's answers.json sets the root password.
  const own = new Set(['console', 'smartos']);
  const lines = [
    `console=${loaderValue(loaderConsoleList(console))}`,
    `os_console=${loaderValue(console)}`,
    ...['ttya', 'ttyb', 'ttyc', 'ttyd'].map((t) => `${t}-mode=${loaderValue(`${speed},8,n,1,-`)}`),
    `loader_logo=${loaderValue('smartos')}`,
    `loader_brand=${loaderValue('smartos')}`,
    `smartos=${loaderValue('true')}`,
    // The rest of the node's boot args: the loader passes its variables to the kernel as boot
    // properties (illumos loader.conf(5)).
    ...entry.bootArgs.filter(([k]) => !own.has(k) && !/^tty[a-d]-mode$/.test(k)).map(([k, v]) => `${k}=${loaderValue(unquoted(v))}`),
  ];
  // loader.conf(5) modules: <m>_load, <m>_type, <m>_name (the file), <m>_flags (the module's
  // arguments: its name=); smartos-docs "Modifying Boot Files" uses the same four.
  for (const m of mods.slice(2)) {
    const key = `fleetboot_${m.path.slice(keyModuleDir.length + 1).replace(/[^A-Za-z0-9]/g, '_')}`;
    lines.push(`${key}_load=${loaderValue('YES')}`, `${key}_type=${loaderValue(m.type)}`, `${key}_name=${loaderValue(`/${m.path}`)}`, `${key}_flags=${loaderValue(`name=${m.name}`)}`);
  }
  const loaderConf = `${lines.join('\n')}\n`;
  files.push({ path: 'boot/loader.conf', content: loaderConf });

  // BIOS: syslinux's mboot.c32 boots a multiboot kernel: APPEND <kernel> <args> --- <module>
  // <args> ... (syslinux com32/mboot). The kernel path leads its own command line, as iPXE's
  // multiboot and GRUB legacy's `kernel$` hand it to illumos dboot.
  const syslinuxCfg = [
    ...syslinuxHead(console, speed),
    'LABEL fleetboot',
    `  MENU LABEL ${entry.title}`,
    '  KERNEL /mboot.c32',
    `  APPEND ${[`/${unix} ${kernelArgs}`, ...mods.map((m) => `/${m.path} type=${m.type} name=${m.name}`)].join(' --- ')}`,
    '',
  ].join('\n');
  // UEFI: GRUB's multiboot2, the protocol illumos' own loader boots unix with; GRUB leaves the
  // file name out of the command line (grub-core/loader/multiboot.c), so it is given twice.
  // GRUB puts a backslash before every quote it hands a kernel (grub-core/lib/cmdline.c), and
  // illumos reads a -B value's quotes but no backslashes (fakebop.c build_boot_properties), so
  // the values that need quotes (a comma or `=` in them: ttyX-mode, <aggr>_aggr) go instead in
  // an environment module, NUL-separated name=value pairs that fakebop.c
  // process_boot_environment turns into the same boot properties, as illumos' loader does.
  const quotedArg = ([, v]: [string, string]): boolean => v.startsWith('"');
  const grubBootArgs = entry.bootArgs.filter((a) => !quotedArg(a)).map(([k, v]) => `${k}=${v}`).join(',');
  const environment = entry.bootArgs.filter(quotedArg).map(([k, v]) => `${k}=${unquoted(v)}\0`).join('');
  const grubMods = [...mods];
  if (environment) {
    files.push({ path: keyEnvironment, content: Buffer.from(`${environment}\0`, 'utf8') });
    grubMods.splice(2, 0, { path: keyEnvironment, type: 'environment', name: 'environment' });
  }
  const grubCfg = [
    ...grubHead(console, speed),
    `menuentry ${grubWord(entry.title)} {`,
    `  multiboot2 /${unix} ${[`/${unix}`, ...(flags ? flags.split(' ') : []), '-B', grubBootArgs].map(grubWord).join(' ')}`,
    ...grubMods.map((m) => `  module2 /${m.path} ${grubWord(`/${m.path}`)} ${grubWord(`type=${m.type}`)} ${grubWord(`name=${m.name}`)}`),
    '}',
    '',
  ].join('\n');
  files.push({ path: `${grubPrefix}/grub.cfg`, content: grubCfg });
  return { files, syslinuxCfg, grubCfg, loaderConf, syslinuxModules: ['mboot.c32', 'libcom32.c32'], label: 'SMARTOSBOOT', warnings };
}

const grubModulesDir = '/usr/lib/grub/x86_64-efi';
const syslinuxModulesDir = '/usr/lib/syslinux/modules/bios';
// What GRUB needs to read the key and boot either platform kind from it.
const grubModules = ['part_msdos', 'fat', 'normal', 'configfile', 'echo', 'test', 'serial', 'terminal', 'linux', 'multiboot2', 'gzio', 'all_video'];

function commandPath(name: string): string | null {
  for (const dir of [...(process.env['PATH'] ?? '').split(':'), '/usr/bin', '/usr/sbin', '/bin', '/sbin']) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  return null;
}

/** BOOTX64.EFI: GRUB with its config read from the key's EFI/BOOT (grub-mkimage(1) -p, -c). */
async function buildGrubEfi(dir: string): Promise<string> {
  const mkimage = commandPath('grub-mkimage');
  if (!mkimage || !existsSync(join(grubModulesDir, 'linux.mod'))) {
    throw new UsbImageError('grub-mkimage or GRUB\'s x86_64-efi modules are missing: install the Debian package grub-efi-amd64-bin (apt-get install grub-efi-amd64-bin; lab/install-deps.sh installs it)');
  }
  const early = join(dir, 'early.cfg');
  // $root is the partition GRUB was loaded from; the config beside it decides the rest.
  writeFileSync(early, `set prefix=($root)/${grubPrefix}\nconfigfile $prefix/grub.cfg\n`);
  const out = join(dir, 'BOOTX64.EFI');
  const r = await execa(mkimage, ['-O', 'x86_64-efi', '-d', grubModulesDir, '-o', out, '-p', `/${grubPrefix}`, '-c', early, ...grubModules], { reject: false });
  if (r.exitCode !== 0) throw new UsbImageError(`grub-mkimage failed (exit ${r.exitCode}): ${r.stderr.trim().split('\n').slice(-2).join(' / ')}`);
  return out;
}

export interface BuildStandaloneKeyOptions {
  store: Store;
  config: FleetbootConfig;
  stamp: string;
  /** Node id, UUID, MAC or hostname. */
  nodeRef?: string | null;
  out: string;
  /** Check-in URL; default `http.publicUrl`. */
  url?: string | null;
  sizeMiB?: number;
  console?: KeyConsole;
  progress?: (msg: string) => void;
}

/** Resolves the platform and node, lays the key out and writes it with `buildUsbImage`. */
export async function buildStandaloneKey(o: BuildStandaloneKeyOptions): Promise<{ out: string; sizeBytes: number; layout: StandaloneKeyLayout }> {
  const progress = o.progress ?? (() => undefined);
  const platform = o.store.platforms.get(o.stamp);
  if (!platform) {
    const known = o.store.platforms.list().map((p) => p.stamp);
    throw new UsbImageError(`--platform ${o.stamp} is not imported (imported: ${known.length ? known.join(', ') : 'none'}; see fleetboot platform list)`);
  }
  let node: NodeRecord | null = null;
  if (o.nodeRef) {
    node = o.store.nodes.find(o.nodeRef) ?? null;
    if (!node) throw new UsbImageError(`--node ${o.nodeRef}: no such node (a node id, UUID, MAC or hostname; see fleetboot node list)`);
  }
  const checkinUrl = (o.url ?? o.config.http.publicUrl ?? '').replace(/\/+$/, '');
  if (!/^https?:\/\/[^\s/$]+/.test(checkinUrl)) {
    throw new UsbImageError(`the key needs the URL the node checks in at: set http.publicUrl in the config or pass --url http://HEAD:PORT${checkinUrl ? ` (got ${JSON.stringify(checkinUrl)})` : ''}`);
  }
  const layout = standaloneKeyFiles({
    config: o.config,
    platform,
    // The folder the platform's row names (a forced re-import gets a new one, src/store/platforms.ts).
    platformDir: join(platformsRoot(o.config.platformImagesDir), platform.folder),
    node,
    keys: node ? nodeKeysIn(o.config.dataDir) : null,
    checkinUrl,
    ...(o.console ? { console: o.console } : {}),
  });
  for (const w of layout.warnings) progress(`usb: warning: ${w}`);
  const work = mkdtempSync(join(tmpdir(), 'fleetboot-usb-'));
  try {
    progress('usb: GRUB for UEFI boot (grub-mkimage)');
    const files: UsbFile[] = [...layout.files, { path: `${grubPrefix}/BOOTX64.EFI`, source: await buildGrubEfi(work) }];
    for (const m of layout.syslinuxModules) {
      const src = join(syslinuxModulesDir, m);
      if (!existsSync(src)) throw new UsbImageError(`${src} is missing: install the Debian package syslinux-common`);
      files.push({ path: m, source: src });
    }
    const need = Math.max(minimumImageMiB, neededMiB([...files, { path: 'syslinux.cfg', content: layout.syslinuxCfg }], true));
    if (o.sizeMiB !== undefined && o.sizeMiB < need) {
      throw new UsbImageError(`platform ${platform.stamp}${node ? ` with node ${node.id}'s modules` : ''} does not fit in --size ${o.sizeMiB} MiB: the key needs ${need} MiB`);
    }
    progress(`usb: platform ${platform.stamp} (${platform.os})${node ? ` for node ${node.id}` : ''}, check-in at ${checkinUrl}`);
    const built = await buildUsbImage({ out: o.out, label: layout.label, files, syslinuxCfg: layout.syslinuxCfg, sizeMiB: o.sizeMiB ?? need, progress });
    return { ...built, layout };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** What a platform key boots, read back from its loader configs (for `usb-image --list`). */
export interface StandaloneKeySummary {
  os: 'linux' | 'smartos';
  /** The kernel's path on the key. */
  kernel: string;
  /** Linux: the command line; SmartOS: the unix flags and -B boot args. */
  kernelArgs: string;
  /** Initrds (Linux) or modules with their type and name (SmartOS), in load order. */
  modules: string[];
  checkinUrl: string | null;
  node: string | null;
  /** The node's admin address from the key's networking.json: an address/netmask, `dhcp`, or null without one. */
  adminAddress: string | null;
}

const keyNetworkingSchema = z.object({
  admin_tag: z.string(),
  vnics: z.array(z.object({ ip: z.string(), netmask: z.string().nullable().optional(), nic_tag: z.string(), vlan_id: z.number().optional() })),
});

/** The summary of a key fleetboot wrote with --standalone, or null for any other key. */
export function describeStandaloneKey(files: readonly { path: string; text?: string }[]): StandaloneKeySummary | null {
  const text = (p: string): string | undefined => files.find((f) => f.path.toLowerCase() === p.toLowerCase())?.text;
  const cfg = text('syslinux.cfg');
  if (cfg === undefined || !files.some((f) => f.path.toLowerCase() === `${grubPrefix}/grub.cfg`.toLowerCase())) return null;
  const directive = (name: string): string | undefined => new RegExp(`^\\s*${name}\\s+(.*)$`, 'mi').exec(cfg)?.[1]?.trim();
  const kernel = directive('KERNEL');
  const append = directive('APPEND') ?? '';
  if (!kernel) return null;
  const arg = (line: string, key: string): string | null => new RegExp(`(?:^|[\\s,])${key}="?([^\\s,"]+)`).exec(line)?.[1] ?? null;
  let adminAddress: string | null = null;
  const networking = text(`${keyModuleDir}/networking.json`);
  if (networking !== undefined) {
    try {
      const n = keyNetworkingSchema.parse(JSON.parse(networking));
      const admin = n.vnics.find((v) => v.nic_tag === n.admin_tag && (v.vlan_id ?? 0) === 0);
      adminAddress = admin ? `${admin.ip}${admin.netmask ? `/${admin.netmask}` : ''}` : 'dhcp';
    } catch {
      adminAddress = null;
    }
  }
  if (/(^|\/)mboot\.c32$/i.test(kernel)) {
    // mboot.c32: <kernel> <args> --- <module> <args> ...
    const [head = '', ...mods] = append.split(' --- ');
    const [unix = '', ...rest] = head.split(' ');
    const args = rest.join(' ');
    return { os: 'smartos', kernel: unix, kernelArgs: args, modules: mods, checkinUrl: arg(args, 'fleetboot_url'), node: arg(args, 'fleetboot_node'), adminAddress };
  }
  return {
    os: 'linux',
    kernel,
    kernelArgs: append,
    modules: (directive('INITRD') ?? '').split(',').filter(Boolean),
    checkinUrl: arg(append, 'fleetboot_url'),
    node: arg(append, 'fleetboot_node'),
    adminAddress,
  };
}

/** The summary as lines for `usb-image --list`. */
export function standaloneSummaryLines(s: StandaloneKeySummary): string[] {
  return [
    `platform key (${s.os === 'smartos' ? 'SmartOS' : 'Linux'}): kernel ${s.kernel}`,
    `  ${s.os === 'smartos' ? 'boot args' : 'command line'}: ${s.kernelArgs.replace(/fleetboot_token=[^\s,]+/, 'fleetboot_token=(set)')}`,
    ...s.modules.map((m) => `  ${s.os === 'smartos' ? 'module' : 'initrd'} ${m}`),
    `  node: ${s.node ?? 'none (any machine)'}; admin address: ${s.adminAddress ?? 'asked at first boot'}; checks in at ${s.checkinUrl ?? '(no URL)'}`,
  ];
}
