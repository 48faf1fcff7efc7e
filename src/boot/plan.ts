// What a node boots (docs/design.md "The boot path" §4-5), as a pure function of the node, the
// imported platforms, the config and what other modules contribute for the node. Servers
// only carry bytes; templates only format a plan (the pixiecore / matchbox split, docs/style.md).
import type { FleetbootConfig } from '../config/schema.ts';
import type { Mac } from '../mac.ts';
import type { NodeRecord } from '../store/nodes.ts';
import type { PlatformOs, PlatformRecord } from '../store/platforms.ts';

// What node configuration (nodeconfig/boot-modules.ts) adds to a node's boot.
export interface BootModule { path: string; type: 'file' | 'hash' | 'rootfs'; name: string } // path is an HTTP path on the head node, e.g. /nodes/52:54:00:12:34:56/networking.json
export interface NodeBootContribution { bootArgs: Record<string, string>; modules: BootModule[] }
/**
 * `fromNode`: the script request came from an address fleetboot knows belongs to this node
 * (or fleetboot hands out no addresses and cannot tell). Secrets go only into such scripts.
 */
export interface ScriptRequest { fromNode: boolean }
export type NodeContributionProvider = (node: NodeRecord, request: ScriptRequest) => NodeBootContribution;

/** The contribution used until a module provides a real one: nothing extra. */
export const noContribution: NodeContributionProvider = () => ({ bootArgs: {}, modules: [] });

/** What the booting machine told us about itself, and how it reached us. */
export interface BootRequest {
  mac: Mac;
  /** Base URL the node uses to reach this head node (http/boot-routes.ts baseUrlFor). */
  baseUrl: string;
  /** iPXE's ${platform}: how the firmware runs it, when the script request says. */
  firmware?: 'pcbios' | 'efi' | null;
  /** Why a machine that is no node was not admitted (nodeconfig/admission.ts). */
  refusal?: string;
}

/** Query flag on a config-module URL asking for the file wrapped in a one-file newc cpio archive. */
export const newcFormat = 'format=newc';

interface EntryBase {
  /** `normal` is the default menu choice; `rescue` boots the previous platform without importing pools. */
  label: 'normal' | 'rescue';
  title: string;
  stamp: string;
  /** HTTP path of the kernel (under /os/<stamp>/). */
  kernelPath: string;
}

export interface SmartosEntry extends EntryBase {
  os: 'smartos';
  /** unix(1M)-style flags before -B, e.g. `-kd`. */
  kernelFlags: string[];
  /** `-B` boot properties in order (illumos boot(8)); values already quoted where needed. */
  bootArgs: [string, string][];
  /** Platform modules (rootfs + hash) followed by the node's own. */
  modules: BootModule[];
}

export interface LinuxEntry extends EntryBase {
  os: 'linux';
  /** The platform's initrds, in order: HTTP path and the image name iPXE gives it (what `initrd=` names). */
  initrds: { path: string; name: string }[];
  /** The full kernel command line. */
  cmdline: string;
  /**
   * The node's own modules as extra initrds: `name` is the file the kernel finds in its
   * initramfs root (a hash module's is `<module>.hash`). Under EFI the path asks for a cpio
   * wrapping (see linuxModules).
   */
  modules: { path: string; name: string }[];
}

export type BootEntry = SmartosEntry | LinuxEntry;

export type BootPlan =
  | { action: 'exit'; reason: string; warnings: string[] }
  | {
      action: 'boot';
      /** discovery: an unregistered or not-yet-set-up machine boots only to register. */
      mode: 'normal' | 'discovery';
      nodeId: number | null;
      mac: Mac;
      /** The first entry is what boots; a second one is the rescue choice. */
      entries: BootEntry[];
      /** Contribution values left out because they cannot be put on a kernel line safely. */
      warnings: string[];
    };

/** How long the menu waits before booting the normal entry when a rescue entry exists. */
export const rescueMenuTimeoutMs = 3000;

// Keys fleetboot itself sets: a contribution cannot change where the node checks in or its console.
const reservedArgs = new Set(['console', 'fleetboot_url', 'fleetboot_node', 'fleetboot_mode', 'noimport']);
const argKey = /^[A-Za-z0-9_.-]{1,64}$/;
// Nothing iPXE would expand (${...}), nothing that ends or splits a kernel line, no quotes.
const safeValue = /^[^\s"'$\\\x00-\x1f]*$/;
const safePath = /^\/[A-Za-z0-9._~:@!&'()*+,;=/%?-]*$/;
const moduleName = /^[A-Za-z0-9._-]{1,64}$/;
const unixFlags = /^-[A-Za-z]+(?: -[A-Za-z]+)*$/;

/** The SmartOS console (`ttya`..`ttyd`, `text`, `vga`) as Linux names it. */
function linuxConsole(console: string, speed: number): string {
  const unit = /^tty([a-d])$/.exec(console)?.[1];
  if (unit !== undefined) return `ttyS${unit.charCodeAt(0) - 'a'.charCodeAt(0)},${speed}n8`;
  return 'tty0';
}

/** Quotes a -B value holding a comma: the loader splits properties on commas (illumos boot(8)). */
function smartosValue(v: string): string {
  return v.includes(',') || v.includes('=') ? `"${v}"` : v;
}

interface Args {
  list: [string, string][];
  set(key: string, value: string): void;
}

function argList(): Args {
  const list: [string, string][] = [];
  return {
    list,
    set(key, value) {
      const at = list.findIndex(([k]) => k === key);
      if (at >= 0) list[at] = [key, value];
      else list.push([key, value]);
    },
  };
}

/**
 * Decides what a machine boots.
 * - a retired node, or a machine admission did not make a node: iPXE `exit`
 *   (the firmware goes on to the next boot device, normally the local disk);
 * - a node still `discovered` with no assigned platform: the default platform in discovery mode;
 * - otherwise the node's assigned platform, else the default, plus a rescue entry (the
 *   previous platform with noimport=true) when the node has one.
 */
export function bootPlanFor(
  node: NodeRecord | null,
  platforms: readonly PlatformRecord[],
  config: FleetbootConfig,
  contribution: NodeBootContribution | null,
  request: BootRequest,
): BootPlan {
  const warnings: string[] = [];
  const byStamp = new Map(platforms.map((p) => [p.stamp, p]));
  const fallback = platforms.find((p) => p.isDefault) ?? null;

  // Admission (nodeconfig/admission.ts) decided already: a machine it did not make a node boots nothing.
  if (node === null) {
    return { action: 'exit', reason: `machine ${request.mac}: ${request.refusal ?? 'not registered'}`, warnings };
  }
  if (node.state === 'retired') {
    return { action: 'exit', reason: `node ${node.id} is retired`, warnings };
  }

  let platform: PlatformRecord | null = null;
  if (node.bootPlatform) {
    platform = byStamp.get(node.bootPlatform) ?? null;
    if (!platform) warnings.push(`assigned platform ${node.bootPlatform} is not imported; booting the default`);
  }
  const assigned = platform !== null;
  platform ??= fallback;
  if (!platform) {
    return { action: 'exit', reason: 'no platform to boot: import one with `fleetboot platform import`', warnings };
  }
  const mode: 'normal' | 'discovery' = !assigned && node.state === 'discovered' ? 'discovery' : 'normal';

  const { contributedArgs, modules } = acceptedContribution(node, contribution, warnings);

  const flagTrait = node.traits['kernel_flags'];
  const ctx: EntryContext = { node, request, config, contributedArgs, modules, mode, warnings, flagTrait: flagTrait ?? null };
  const entries: BootEntry[] = [entryFor(platform, 'normal', false, ctx)];
  const previous = node.previousPlatform ? byStamp.get(node.previousPlatform) : undefined;
  if (previous && mode === 'normal') entries.push(entryFor(previous, 'rescue', true, ctx));
  return { action: 'boot', mode, nodeId: node.id, mac: request.mac, entries, warnings };
}

/** The contribution's args and modules that can go on a kernel line or in a script; the rest is a warning. */
function acceptedContribution(node: NodeRecord | null, contribution: NodeBootContribution | null, warnings: string[]): { contributedArgs: [string, string][]; modules: BootModule[] } {
  const given = contribution ?? { bootArgs: {}, modules: [] };
  const contributedArgs: [string, string][] = [];
  for (const [k, v] of Object.entries(given.bootArgs)) {
    if (k === 'fleetboot_node' && node && v === String(node.id)) continue; // the same value fleetboot sets
    if (!argKey.test(k) || reservedArgs.has(k) || /^tty[a-d]-mode$/.test(k)) warnings.push(`boot arg ${k} is reserved or not a valid name; left out`);
    else if (!safeValue.test(v)) warnings.push(`boot arg ${k} has a value that cannot go on a kernel line; left out`);
    else contributedArgs.push([k, v]);
  }
  const modules = given.modules.filter((m) => {
    const ok = safePath.test(m.path) && moduleName.test(m.name) && ['file', 'hash', 'rootfs'].includes(m.type);
    if (!ok) warnings.push(`boot module ${JSON.stringify(m.name)} (${m.path}) has an unsafe path or name; left out`);
    return ok;
  });

  return { contributedArgs, modules };
}

/**
 * The normal entry of platform `p` for `node` (or for no node at all) outside a script
 * request: what a boot medium's own loader config boots (a standalone USB key, src/usb/),
 * with the same kernel line and modules a network boot would get, no rescue entry and no
 * discovery mode. `request.baseUrl` is where the node checks in once it can.
 */
export function platformBootEntry(
  p: PlatformRecord,
  node: NodeRecord | null,
  config: FleetbootConfig,
  contribution: NodeBootContribution | null,
  request: BootRequest,
): { entry: BootEntry; warnings: string[] } {
  const warnings: string[] = [];
  const { contributedArgs, modules } = acceptedContribution(node, contribution, warnings);
  const ctx: EntryContext = { node, request, config, contributedArgs, modules, mode: 'normal', warnings, flagTrait: node?.traits['kernel_flags'] ?? null };
  return { entry: entryFor(p, 'normal', false, ctx), warnings };
}

interface EntryContext {
  node: NodeRecord | null;
  request: BootRequest;
  config: FleetbootConfig;
  contributedArgs: [string, string][];
  modules: BootModule[];
  mode: 'normal' | 'discovery';
  warnings: string[];
  flagTrait: string | null;
}

function osName(os: PlatformOs): string {
  return os === 'smartos' ? 'SmartOS' : 'Linux';
}

function entryFor(p: PlatformRecord, label: 'normal' | 'rescue', rescue: boolean, ctx: EntryContext): BootEntry {
  const kernel = p.files.find((f) => f.role === 'kernel');
  const title = `${rescue ? 'rescue: ' : ''}${osName(p.os)} ${p.stamp}${rescue ? ' (noimport)' : ctx.mode === 'discovery' ? ' (discovery)' : ''}`;
  const base = { label, title, stamp: p.stamp, kernelPath: `/os/${p.stamp}/${kernel?.path ?? 'kernel'}` };
  const { node, request, config } = ctx;
  const noimport = rescue || ctx.mode === 'discovery';
  const tail = (args: Args): void => {
    for (const [k, v] of ctx.contributedArgs) args.set(k, v);
    args.set('fleetboot_url', request.baseUrl);
    if (node) args.set('fleetboot_node', String(node.id));
    if (ctx.mode === 'discovery') args.set('fleetboot_mode', 'discovery');
  };

  if (p.os === 'smartos') {
    const args = argList();
    const console = config.boot.console;
    args.set('console', console);
    // smartos-live boot menu: ttyX-mode="<speed>,8,n,1,-" for serial consoles.
    if (/^tty[a-d]$/.test(console)) args.set(`${console}-mode`, `${config.boot.consoleSpeed},8,n,1,-`);
    const adminMac = node?.nics.find((n) => n.isAdmin)?.mac ?? request.mac;
    args.set('admin_nic', adminMac);
    for (const nic of node?.nics ?? []) {
      if (nic.nicTag && nic.nicTag !== 'admin' && /^[a-z][a-z0-9_]*$/.test(nic.nicTag)) args.set(`${nic.nicTag}_nic`, nic.mac);
    }
    if (node?.hostname) args.set('hostname', node.hostname);
    // smartos=true: a standalone SmartOS node set up from answers.json (smartos_prompt_config.sh).
    args.set('smartos', 'true');
    // noimport=true: boot without importing the zones pool (fs-joyent), for rescue and discovery.
    if (noimport) args.set('noimport', 'true');
    tail(args);
    const flags: string[] = [];
    if (ctx.flagTrait !== null) {
      if (unixFlags.test(ctx.flagTrait)) flags.push(...ctx.flagTrait.split(' '));
      else if (label === 'normal') ctx.warnings.push(`trait kernel_flags ${JSON.stringify(ctx.flagTrait)} is not unix flags like "-kd"; left out`);
    }
    const fileOf = (role: string): string => `/os/${p.stamp}/${p.files.find((f) => f.role === role)?.path ?? role}`;
    return {
      ...base,
      os: 'smartos',
      kernelFlags: flags,
      bootArgs: args.list.map(([k, v]) => [k, smartosValue(v)]),
      modules: [
        { path: fileOf('boot_archive'), type: 'rootfs', name: 'ramdisk' },
        { path: fileOf('boot_archive_hash'), type: 'hash', name: 'ramdisk' },
        ...ctx.modules,
      ],
    };
  }

  const parts: string[] = p.kernelArgs ? p.kernelArgs.split(/\s+/).filter((s) => s !== '') : [];
  const console = linuxConsole(config.boot.console, config.boot.consoleSpeed);
  const consoleDevice = console.split(',')[0]!;
  if (!parts.some((w) => w === `console=${console}` || w.startsWith(`console=${consoleDevice},`) || w === `console=${consoleDevice}`)) {
    parts.push(`console=${console}`);
  }
  if (ctx.flagTrait !== null) {
    if (safeValue.test(ctx.flagTrait.replace(/ /g, ''))) parts.push(...ctx.flagTrait.split(' ').filter((s) => s !== ''));
    else if (label === 'normal') ctx.warnings.push(`trait kernel_flags cannot go on a kernel line; left out`);
  }
  const initrdFiles = p.files.filter((f) => f.role === 'initrd').map((f) => f.path);
  const efi = ctx.request.firmware === 'efi';
  const modules = linuxModules(ctx.modules, efi);
  // Under UEFI, iPXE hands initrds to the kernel's EFI stub only by name: the stub loads and
  // concatenates, unpadded, the files `initrd=` names (Documentation/admin-guide/efi-stub.rst);
  // BIOS boots ignore it. The kernel finds a cpio archive only at a 4-byte offset after a
  // compressed one (init/initramfs.c unpack_to_rootfs), so the node's uncompressed, padded
  // module archives go first and the platform's initrds last. Any initrd= the platform's
  // command line had is replaced by this list.
  const initrdArgs = [...(efi ? modules.map((m) => m.name) : []), ...initrdFiles.map(initrdName)].map((n) => `initrd=${n}`);
  parts.splice(0, parts.length, ...parts.filter((w) => !w.startsWith('initrd=')), ...initrdArgs);
  const args = argList();
  if (noimport) args.set('noimport', 'true');
  tail(args);
  for (const [k, v] of args.list) parts.push(`${k}=${v}`);
  return {
    ...base,
    os: 'linux',
    initrds: initrdFiles.map((f) => ({ path: `/os/${p.stamp}/${f}`, name: initrdName(f) })),
    cmdline: parts.join(' '),
    modules,
  };
}

/**
 * Per-node modules for a Linux kernel. Under BIOS, iPXE wraps a named initrd in a cpio
 * header itself (bzimage.c, named by `imgargs`), so the file lands at /<name>. Under EFI it
 * hands the kernel's EFI stub the raw files `initrd=` names, and the kernel unpacks only
 * cpio archives (Documentation/driver-api/early-userspace/buffer-format.rst): those
 * modules are fetched already wrapped in a one-file newc archive.
 */
function linuxModules(modules: BootModule[], efi: boolean): { path: string; name: string }[] {
  return modules.map((m) => {
    const name = m.type === 'hash' ? `${m.name}.hash` : m.name;
    const path = efi ? `${m.path}${m.path.includes('?') ? '&' : '?'}${newcFormat}` : m.path;
    return { path, name };
  });
}

/** The iPXE image name of a platform initrd: its file name, as the kernel's `initrd=` names it. */
function initrdName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}
