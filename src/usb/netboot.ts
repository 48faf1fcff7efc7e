// The netboot key: a USB key that starts iPXE on BIOS and UEFI machines and chains this head
// node's stage-1 script (boot-templates/stage1.ipxe.hbs), trying each head-node URL in order,
// over DHCP or a static address. docs/usb.md says why each piece is what it is.
//
// One iPXE script, `autoexec.ipxe` in the FAT root, carries the URLs and the address to both
// paths, both run by Debian's iPXE 1.21 (the trixie `ipxe` package, lab/fetch-ipxe-usb.sh):
// - BIOS: syslinux loads ipxe.lkrn with the script as its initrd, which iPXE's bzImage prefix
//   registers as an image and runs (SYSLINUX `INITRD`; iPXE src/arch/x86/prefix/lkrnprefix.S).
// - UEFI: ipxe.efi loads `autoexec.ipxe` from the file system it was started from (iPXE
//   src/interface/efi/efi_autoexec.c). Bookworm's iPXE (2019) has neither that nor an EFI
//   command line, so its ipxe.efi cannot carry a script; its ipxe.lkrn has no `vcreate`.
import { closeSync, existsSync, openSync, readFileSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { z } from 'zod';
import { installDir } from '../config/load.ts';
import { intToIpv4, ipv4ToInt, parseCidr } from '../config/schema.ts';
import { buildUsbImage, UsbImageError, type UsbFile } from './disk.ts';

/** Where lab/fetch-ipxe-usb.sh puts the iPXE the key carries. */
export const ipxeUsbDir = join(installDir, 'lab-build', 'ipxe-usb');
/** iPXE for UEFI that reads autoexec.ipxe. */
export const defaultIpxeEfi = join(ipxeUsbDir, 'ipxe.efi');
/** The same iPXE as a Linux bzImage, for syslinux on BIOS. */
export const defaultIpxeLkrn = join(ipxeUsbDir, 'ipxe.lkrn');
export const scriptName = 'autoexec.ipxe';

export interface StaticAddress {
  ip: string;
  prefix: number;
  gateway?: string;
  dns: string[];
}

export interface NetbootKeyOptions {
  /** Head-node base URLs, tried in order (each serves /boot/stage1.ipxe). */
  urls: string[];
  static?: StaticAddress;
  /** 802.1Q VLAN the head node is reached on (iPXE `vcreate`). */
  vlan?: number;
}

const urlSchema = z.url({ protocol: /^https?$/ });
const ipv4Schema = z.ipv4();

/** Parses and checks what the operator gave; a UsbImageError names the bad value. */
export function parseNetbootOptions(input: { urls: string[]; static?: string; gateway?: string; dns?: string[]; vlan?: string }): NetbootKeyOptions {
  if (input.urls.length === 0) throw new UsbImageError('no head-node URL: pass --url http://HEAD:PORT (repeatable) or set http.publicUrl in the config');
  const urls = input.urls.map((u) => {
    if (!urlSchema.safeParse(u).success) throw new UsbImageError(`--url ${u}: expected an http:// or https:// URL of the head node`);
    // iPXE would read these as its own syntax (settings, comments, command separators).
    if (/[\s${}#|&;]/.test(u)) throw new UsbImageError(`--url ${u}: spaces, $ { } # | & ; cannot be written into an iPXE script`);
    return u.replace(/\/+$/, '');
  });
  const out: NetbootKeyOptions = { urls };
  if (input.vlan !== undefined) {
    const v = Number(input.vlan);
    // IEEE 802.1Q §9.6: VIDs 1-4094 (0 and 4095 are reserved).
    if (!/^\d+$/.test(input.vlan) || v < 1 || v > 4094) throw new UsbImageError(`--vlan ${input.vlan}: expected a VLAN ID from 1 to 4094`);
    out.vlan = v;
  }
  if (input.static === undefined) {
    if (input.gateway !== undefined || (input.dns ?? []).length > 0) throw new UsbImageError('--gateway and --dns go with --static IP/PREFIX (without --static the key uses DHCP)');
    return out;
  }
  const m = /^([^/]+)\/(\d{1,2})$/.exec(input.static);
  if (!m || !ipv4Schema.safeParse(m[1]).success || Number(m[2]) < 1 || Number(m[2]) > 32) {
    throw new UsbImageError(`--static ${input.static}: expected IP/PREFIX, like 10.0.5.20/24`);
  }
  const ip = m[1]!;
  const prefix = Number(m[2]);
  const subnet = `${ip}/${prefix}`;
  const { network, mask } = parseCidr(subnet);
  const host = ipv4ToInt(ip);
  if (prefix <= 30 && (host === network || host === (network | (~mask >>> 0)) >>> 0)) {
    throw new UsbImageError(`--static ${input.static}: that is the ${host === network ? 'network' : 'broadcast'} address of ${intToIpv4(network)}/${prefix}`);
  }
  const st: StaticAddress = { ip, prefix, dns: [] };
  if (input.gateway !== undefined) {
    if (!ipv4Schema.safeParse(input.gateway).success) throw new UsbImageError(`--gateway ${input.gateway}: expected an IPv4 address`);
    if (((ipv4ToInt(input.gateway) & mask) >>> 0) !== network) throw new UsbImageError(`--gateway ${input.gateway} is not in ${intToIpv4(network)}/${prefix}, the subnet of --static ${input.static}`);
    st.gateway = input.gateway;
  }
  // The key writes iPXE's `dns` setting, an IPv4 address (iPXE src/net/udp/dns.c dns_setting): one resolver.
  if ((input.dns ?? []).length > 1) throw new UsbImageError(`--dns given ${(input.dns ?? []).length} times: iPXE takes one resolver; give the one the key should use`);
  for (const d of input.dns ?? []) {
    if (!ipv4Schema.safeParse(d).success) throw new UsbImageError(`--dns ${d}: expected an IPv4 address`);
    st.dns.push(d);
  }
  // A URL by name needs a resolver to reach it.
  const named = urls.find((u) => !ipv4Schema.safeParse(new URL(u).hostname).success);
  if (named && st.dns.length === 0) throw new UsbImageError(`--url ${named} names a host: a --static key needs --dns to resolve it (or give the URL by address)`);
  out.static = st;
  return out;
}

function netmaskOf(prefix: number): string {
  return intToIpv4(prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0);
}

/**
 * The key's iPXE script. Settings and commands from the iPXE documentation of `set`, `ifopen`,
 * `vcreate`, `dhcp` and `chain` (ipxe.org/cmd); `dns` is a global setting, the others are the
 * interface's (iPXE src/net/ipv4.c: ip, netmask, gateway).
 */
export function netbootScript(o: NetbootKeyOptions): string {
  const dev = o.vlan !== undefined ? `net0-${o.vlan}` : 'net0';
  const how = o.static ? `static ${o.static.ip}/${o.static.prefix}${o.static.gateway ? ` gateway ${o.static.gateway}` : ''}` : 'DHCP';
  const lines = [
    '#!ipxe',
    '# fleetboot netboot key (fleetboot usb-image): network, then the head node\'s stage-1 script',
    `# from the first URL that answers. Network: ${how}${o.vlan !== undefined ? ` on VLAN ${o.vlan}` : ''}.`,
    `echo fleetboot key: ${how} on ${dev}, head node ${o.urls.join(' then ')}`,
  ];
  // vcreate: iPXE src/hci/commands/vlan_cmd.c; the VLAN device is named <trunk>-<tag>.
  if (o.vlan !== undefined) lines.push(`vcreate --tag ${o.vlan} net0 || echo fleetboot key: could not make VLAN ${o.vlan} on net0`);
  lines.push(':net');
  if (o.static) {
    lines.push(
      `ifclose ${dev} ||`,
      `set ${dev}/ip ${o.static.ip}`,
      `set ${dev}/netmask ${netmaskOf(o.static.prefix)}`,
      o.static.gateway ? `set ${dev}/gateway ${o.static.gateway}` : `clear ${dev}/gateway`,
      ...(o.static.dns.length > 0 ? [`set dns ${o.static.dns[0]}`] : []),
      `ifopen ${dev} || goto nonet`,
    );
  } else {
    lines.push(`dhcp ${dev} || goto nonet`);
  }
  lines.push(':head');
  for (const url of o.urls) lines.push(`chain --autofree ${url}/boot/stage1.ipxe ||`);
  lines.push(
    `echo fleetboot key: no head node answered (${o.urls.join(', ')}); trying again in 10 s`,
    'sleep 10',
    'goto head',
    ':nonet',
    `echo fleetboot key: ${dev} did not come up (${how}); trying again in 10 s`,
    'sleep 10',
    'goto net',
    '',
  );
  return lines.join('\n');
}

// SYSLINUX config: syslinux.cfg(5) in the syslinux wiki (DEFAULT, LABEL, KERNEL, INITRD);
// SERIAL 0 115200 copies its screen to COM1 as the lab's SeaBIOS console does.
export const netbootSyslinuxCfg = `SERIAL 0 115200\nDEFAULT fleetboot\nLABEL fleetboot\n  KERNEL ipxe.lkrn\n  INITRD ${scriptName}\n`;

/**
 * An iPXE EFI binary that runs autoexec.ipxe: from 1.21 on, efi_autoexec.c names the file in the
 * binary; bookworm's 2019 build has no such string.
 */
export function checkIpxeEfi(file: string): void {
  if (!existsSync(file)) {
    throw new UsbImageError(`${file} is missing: run lab/fetch-ipxe-usb.sh (it downloads Debian's newer ipxe package once, no install) or pass --ipxe-efi FILE`);
  }
  const bin = readFileSync(file);
  if (bin.readUInt16LE(0) !== 0x5a4d) throw new UsbImageError(`${file} is not an EFI executable (no MZ header)`);
  if (!bin.includes('autoexec.ipxe')) {
    throw new UsbImageError(`${file} is an iPXE without autoexec.ipxe support (before 1.21, like Debian bookworm's): it would not run the key's script; use lab/fetch-ipxe-usb.sh's`);
  }
}

export interface NetbootKeyBuild extends NetbootKeyOptions {
  out: string;
  ipxeEfi?: string;
  ipxeLkrn?: string;
  sizeMiB?: number;
  progress?: (msg: string) => void;
}

/** The files of a netboot key: iPXE for UEFI and BIOS, and the one script both run. */
export function netbootKeyFiles(o: NetbootKeyBuild): { files: UsbFile[]; syslinuxCfg: string } {
  const efi = o.ipxeEfi ?? defaultIpxeEfi;
  checkIpxeEfi(efi);
  const lkrn = o.ipxeLkrn ?? defaultIpxeLkrn;
  if (!existsSync(lkrn)) throw new UsbImageError(`${lkrn} is missing: run lab/fetch-ipxe-usb.sh or pass --ipxe-lkrn FILE`);
  // Linux boot protocol (Documentation/x86/boot.rst): "HdrS" at 0x202 of a bzImage.
  const head = Buffer.alloc(0x206);
  const fd = openSync(lkrn, 'r');
  try {
    readSync(fd, head, 0, head.length, 0);
  } finally {
    closeSync(fd);
  }
  if (head.toString('latin1', 0x202, 0x206) !== 'HdrS') throw new UsbImageError(`${lkrn} is not an ipxe.lkrn (no Linux boot header)`);
  return {
    files: [
      // UEFI 2.x §3.5.1.1: the removable-media boot path for x64.
      { path: 'EFI/BOOT/BOOTX64.EFI', source: efi },
      { path: 'ipxe.lkrn', source: lkrn },
      { path: scriptName, content: netbootScript(o) },
    ],
    syslinuxCfg: netbootSyslinuxCfg,
  };
}

export async function buildNetbootKey(o: NetbootKeyBuild): Promise<{ out: string; sizeBytes: number }> {
  const { files, syslinuxCfg } = netbootKeyFiles(o);
  return buildUsbImage({ out: o.out, label: 'FLEETBOOT', files, syslinuxCfg, ...(o.sizeMiB !== undefined ? { sizeMiB: o.sizeMiB } : {}), ...(o.progress ? { progress: o.progress } : {}) });
}

export interface NetbootScriptSummary {
  urls: string[];
  dhcp: boolean;
  device: string | null;
  vlan: number | null;
  ip: string | null;
  netmask: string | null;
  gateway: string | null;
  dns: string | null;
}

/** What a key's script will do, read back from its text (for `usb-image --list`). */
export function describeNetbootScript(text: string): NetbootScriptSummary {
  const s: NetbootScriptSummary = { urls: [], dhcp: false, device: null, vlan: null, ip: null, netmask: null, gateway: null, dns: null };
  for (const line of text.split('\n').map((l) => l.trim())) {
    let m: RegExpExecArray | null;
    if ((m = /^chain (?:--\S+ )*(\S+)\/boot\/stage1\.ipxe/.exec(line))) s.urls.push(m[1]!);
    else if ((m = /^vcreate --tag (\d+)/.exec(line))) s.vlan = Number(m[1]);
    else if ((m = /^dhcp (\S+)/.exec(line))) {
      s.dhcp = true;
      s.device = m[1]!;
    } else if ((m = /^set (\S+)\/(ip|netmask|gateway) (\S+)/.exec(line))) {
      s.device = m[1]!;
      s[m[2] as 'ip' | 'netmask' | 'gateway'] = m[3]!;
    } else if ((m = /^set dns (\S+)/.exec(line))) s.dns = m[1]!;
  }
  return s;
}

/**
 * The iPXE binaries for the key: each given one, else lab/fetch-ipxe-usb.sh's, fetched first when
 * they are not there yet (one download of a Debian package, cached in lab-build/).
 */
export async function ensureIpxe(given: { efi?: string; lkrn?: string }, progress: (msg: string) => void): Promise<{ efi: string; lkrn: string }> {
  const need = (given.efi === undefined && !existsSync(defaultIpxeEfi)) || (given.lkrn === undefined && !existsSync(defaultIpxeLkrn));
  if (need) {
    const script = join(installDir, 'lab', 'fetch-ipxe-usb.sh');
    if (!existsSync(script)) throw new UsbImageError(`${ipxeUsbDir} is missing and so is ${script} to fetch it: pass --ipxe-efi FILE and --ipxe-lkrn FILE (iPXE 1.21 or later)`);
    progress(`usb: fetching iPXE 1.21 for the key (${script})`);
    const r = await execa('bash', [script, '--build-dir', join(installDir, 'lab-build')], { reject: false, stdin: 'ignore' });
    if (r.exitCode !== 0 || !existsSync(defaultIpxeEfi) || !existsSync(defaultIpxeLkrn)) {
      throw new UsbImageError(`fetching iPXE for the key failed (${script}, exit ${r.exitCode ?? r.signal ?? '?'}): ${r.stderr.trim().split('\n').slice(-2).join(' / ') || 'no output'}; or pass --ipxe-efi and --ipxe-lkrn`);
    }
  }
  return { efi: given.efi ?? defaultIpxeEfi, lkrn: given.lkrn ?? defaultIpxeLkrn };
}
