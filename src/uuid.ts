// A machine's SMBIOS UUID, as the several parties that report it spell it.
//
// SMBIOS 2.6 (DSP0134 §7.2.1) changed the System UUID's first three fields to little-endian.
// Firmware and OSes disagree on which encoding a table uses: PXE option 97 (RFC 4578 §2.3) and
// iPXE's ${uuid} can carry the bytes in one order while /sys/class/dmi/id/product_uuid, SmartOS
// `sysinfo` and the BMC print the other. The same machine then shows up under two UUIDs that
// differ only in the byte order of time_low, time_mid and time_hi. fleetboot treats both
// spellings as one identity: `uuidKey` is the smaller of the two, and is what the registry
// matches on.

/** Who reported a UUID: DHCP option 97, iPXE's ${uuid} in the boot script request, or the OS at check-in. */
export const uuidSources = ['dhcp', 'ipxe', 'os'] as const;
export type UuidSource = (typeof uuidSources)[number];

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A lower-case UUID, or null for none: firmware without one sends all zeros (or all ones). */
export function meaningfulUuid(uuid: string | null | undefined): string | null {
  if (!uuid) return null;
  const u = uuid.toLowerCase();
  if (!uuidPattern.test(u)) return null;
  if (/^[0-]+$/.test(u) || /^[f-]+$/.test(u)) return null;
  return u;
}

/** The same UUID with its first three fields byte-swapped (the other SMBIOS encoding). */
export function swapUuidFields(u: string): string {
  const rev = (hex: string): string => hex.match(/../g)!.reverse().join('');
  return `${rev(u.slice(0, 8))}-${rev(u.slice(9, 13))}-${rev(u.slice(14, 18))}${u.slice(18)}`;
}

/**
 * The identity of a UUID whichever byte order it arrived in: the smaller of the two spellings.
 * Migration 005 computes the same value in SQL (nodes.uuid_key); keep the two in step.
 */
export function uuidKey(uuid: string): string {
  const swapped = swapUuidFields(uuid);
  return swapped < uuid ? swapped : uuid;
}

/** True when `a` and `b` name the same machine (equal, or equal but for the SMBIOS byte order). */
export function sameMachineUuid(a: string, b: string): boolean {
  return uuidKey(a) === uuidKey(b);
}
