// What clients send, kept for the fuzzers' seed corpora (fuzz/corpus/<target>/): with
// FLEETBOOT_CAPTURE_DIR set (tests only; docs/hardening.md "Fuzzing"), every DHCP datagram,
// TFTP request, check-in body and network file that reaches a parser is also written to
// <dir>/<target>/<sha1 of the bytes>. Unset, each call is one comparison.
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.env['FLEETBOOT_CAPTURE_DIR'] || null;

export type CaptureTarget = 'dhcp-packet' | 'tftp-request' | 'checkin' | 'node-network';

export function capture(target: CaptureTarget, data: Buffer | string): void {
  if (dir === null) return;
  try {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    const folder = join(dir, target);
    mkdirSync(folder, { recursive: true });
    writeFileSync(join(folder, createHash('sha1').update(bytes).digest('hex')), bytes);
  } catch {
    // A capture that cannot be written is lost; the request it copies is served as ever.
  }
}
