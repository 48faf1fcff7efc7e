// The PXE decision: given what a client says about itself (options 60, 77, 93), what it
// should load next. Follows docs/netboot-notes.md's client table; the DHCP server only carries
// the answer.
import type { DhcpOptions } from './packet.ts';
import { encodeSubOptions } from './packet.ts';

/** What kind of network-boot client sent a packet. */
export type ClientKind =
  | { kind: 'ipxe'; arch: number | null }
  | { kind: 'pxe'; arch: number }
  | { kind: 'http'; arch: number }
  | { kind: 'os' };

/** RFC 4578 §2.1 / IANA "Processor Architecture Types" names we store as a node's arch. */
export function archName(arch: number): string {
  switch (arch) {
    case 0: return 'x86-bios';
    case 6: return 'efi-ia32';
    case 7:
    case 9: return 'efi-x64';
    case 10: return 'efi-arm32';
    case 11: return 'efi-arm64';
    case 15: return 'efi-ia32-http';
    case 16: return 'efi-x64-http';
    case 19: return 'efi-arm64-http';
    default: return `arch-${arch}`;
  }
}

/** iPXE identifies itself with option 77 = `iPXE` (raw bytes; some builds use RFC 3004 length-prefixed form). */
export function isIpxe(o: DhcpOptions): boolean {
  const uc = o.userClass;
  if (!uc) return false;
  const s = uc.toString('latin1');
  return s === 'iPXE' || (uc[0] === 4 && s.slice(1, 5) === 'iPXE');
}

export function classifyClient(o: DhcpOptions): ClientKind {
  const arch = o.clientArch?.[0] ?? null;
  if (isIpxe(o)) return { kind: 'ipxe', arch };
  const vci = o.vendorClassId ?? '';
  // UEFI HTTP boot (UEFI spec 2.x §24.7.2): vendor class `HTTPClient`, arch 15/16/19.
  if (vci.startsWith('HTTPClient')) return { kind: 'http', arch: arch ?? 16 };
  // PXE spec §2.2.1: firmware PXE clients send `PXEClient:Arch:xxxxx:...` and option 93.
  if (vci.startsWith('PXEClient')) return { kind: 'pxe', arch: arch ?? 0 };
  return { kind: 'os' };
}

export interface BootSettings {
  /** Base HTTP URL nodes use (config.http.publicUrl or http://<serverAddress>:<port>). */
  httpBase: string;
  /** Address of the TFTP/next server (siaddr, option 66). */
  serverAddress: string;
  bios: string;
  efiX64: string;
  efiArm64: string | undefined;
}

/** The boot fields a reply carries, or null when the client gets no boot information. */
export interface BootAnswer {
  /** BOOTP `file` and option 67. */
  bootfile: string;
  /** Whether the file is fetched over TFTP from siaddr (so siaddr and option 66 are set). */
  tftp: boolean;
  /** Option 60 to echo (HTTP boot needs `HTTPClient` back). */
  vendorClass: string | null;
  /** The decision in words, for logs and boot events. */
  reason: string;
}

export function bootAnswerFor(client: ClientKind, s: BootSettings): BootAnswer | null {
  switch (client.kind) {
    case 'os':
      return null;
    case 'ipxe':
      // A client already running iPXE never gets an iPXE binary again: it gets the stage-1 script.
      return { bootfile: `${s.httpBase}/boot/stage1.ipxe`, tftp: false, vendorClass: null, reason: 'ipxe stage1' };
    case 'http': {
      const file = client.arch === 19 ? s.efiArm64 : client.arch === 16 ? s.efiX64 : undefined;
      if (!file) return null;
      return { bootfile: `${s.httpBase}/ipxe/${file}`, tftp: false, vendorClass: 'HTTPClient', reason: `uefi http boot (${archName(client.arch)})` };
    }
    case 'pxe': {
      const file =
        client.arch === 0 ? s.bios : client.arch === 7 || client.arch === 9 ? s.efiX64 : client.arch === 11 ? s.efiArm64 : undefined;
      if (!file) return null;
      return { bootfile: file, tftp: true, vendorClass: null, reason: `pxe ${archName(client.arch)}` };
    }
  }
}

/**
 * Option 175 content `b0 01 01` (sub-option 176 = 1), so the option on the wire reads
 * `af 03 b0 01 01` (docs/netboot-notes.md pitfall 3): iPXE then skips its ~3 s ProxyDHCP wait.
 */
export const ipxeNoPxeDhcp = encodeSubOptions([[176, Buffer.from([1])]]);

/**
 * Option 43 for ProxyDHCP replies: PXE spec §2.4 tag 6 PXE_DISCOVERY_CONTROL = 8 (bit 3:
 * download the boot file named in this packet, skip boot server discovery).
 */
export const pxeDiscoveryControl = Buffer.from([6, 1, 8, 255]);
