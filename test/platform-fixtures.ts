// Platform images for tests: real gzip'd ustar tarballs in the SmartOS layout (docs/design.md
// "Formats"), written by a small ustar encoder so tests can also craft hostile entries
// (`..` paths, links out of the folder) that a well-behaved tar refuses to create.
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

export interface TarEntry {
  path: string;
  type?: 'file' | 'dir' | 'symlink' | 'hardlink' | 'fifo';
  data?: Buffer | string;
  linkpath?: string;
}

// POSIX.1-1988 ustar header (pax spec, "ustar Interchange Format").
function header(e: TarEntry, size: number): Buffer {
  const h = Buffer.alloc(512, 0);
  const put = (off: number, len: number, text: string): void => {
    h.write(text, off, len, 'utf8');
  };
  const octal = (off: number, len: number, n: number): void => put(off, len - 1, n.toString(8).padStart(len - 1, '0'));
  let name = e.path;
  let prefix = '';
  if (Buffer.byteLength(name) > 100) {
    const cut = name.lastIndexOf('/', name.length - 1 - 0);
    prefix = name.slice(0, cut);
    name = name.slice(cut + 1);
  }
  put(0, 100, name);
  octal(100, 8, e.type === 'dir' ? 0o755 : 0o644);
  octal(108, 8, 0);
  octal(116, 8, 0);
  octal(124, 12, size);
  octal(136, 12, 1_700_000_000);
  h.fill(0x20, 148, 156); // checksum field counts as spaces while summing
  const typeflag = { file: '0', hardlink: '1', symlink: '2', dir: '5', fifo: '6' }[e.type ?? 'file'];
  put(156, 1, typeflag);
  if (e.linkpath) put(157, 100, e.linkpath);
  put(257, 6, 'ustar');
  put(263, 2, '00');
  put(345, 155, prefix);
  let sum = 0;
  for (const b of h) sum += b;
  put(148, 7, `${sum.toString(8).padStart(6, '0')}\0`);
  return h;
}

export function tarOf(entries: TarEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const data = e.type === undefined || e.type === 'file' ? Buffer.from(e.data ?? '') : Buffer.alloc(0);
    parts.push(header(e, data.length), data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

export const sha1Hex = (b: Buffer | string): string => createHash('sha1').update(b).digest('hex');
export const sha256Hex = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

export interface SmartosTarballOptions {
  stamp?: string;
  bootArchive?: Buffer;
  /** Override boot_archive.hash's content. */
  hash?: string;
  omit?: string[];
  extra?: TarEntry[];
}

/** The entries of a SmartOS platform tarball, relative paths as smartos-live writes them. */
export function smartosEntries(o: SmartosTarballOptions = {}): TarEntry[] {
  const stamp = o.stamp ?? '20240101T000000Z';
  const top = `platform-${stamp}`;
  const archive = o.bootArchive ?? Buffer.from(`boot archive of ${stamp}\n`.repeat(1000));
  const files: TarEntry[] = [
    { path: `${top}/`, type: 'dir' },
    { path: `${top}/i86pc/`, type: 'dir' },
    { path: `${top}/i86pc/kernel/`, type: 'dir' },
    { path: `${top}/i86pc/kernel/amd64/`, type: 'dir' },
    { path: `${top}/i86pc/kernel/amd64/unix`, data: Buffer.from(`unix kernel ${stamp}\n`.repeat(300)) },
    { path: `${top}/i86pc/amd64/`, type: 'dir' },
    { path: `${top}/i86pc/amd64/boot_archive`, data: archive },
    { path: `${top}/i86pc/amd64/boot_archive.hash`, data: o.hash ?? `${sha1Hex(archive)}\n` },
    { path: `${top}/i86pc/amd64/boot_archive.manifest`, data: 'f kernel/amd64/unix 0755 root sys\n' },
    { path: `${top}/i86pc/amd64/boot_archive.gitstatus`, data: '{"repo":"smartos-live","commit":"0000000"}\n' },
    { path: `${top}/etc/`, type: 'dir' },
    { path: `${top}/etc/version/`, type: 'dir' },
    { path: `${top}/etc/version/platform`, data: `${stamp}\n` },
  ];
  const omit = new Set((o.omit ?? []).map((p) => `${top}/${p}`));
  return [...files.filter((f) => !omit.has(f.path)), ...(o.extra ?? [])];
}

/** Writes `dir/platform-<STAMP>.tgz`; returns its path. */
export function writeSmartosTarball(dir: string, o: SmartosTarballOptions = {}, name?: string): string {
  const file = join(dir, name ?? `platform-${o.stamp ?? '20240101T000000Z'}.tgz`);
  writeFileSync(file, gzipSync(tarOf(smartosEntries(o))));
  return file;
}

/** A Linux platform folder with platform.json; returns the folder. */
export function writeLinuxPlatform(
  dir: string,
  o: { stamp?: string; cmdline?: string; sha256?: Record<string, string>; initrds?: string[] } = {},
): string {
  const stamp = o.stamp ?? 'linux-6.1-test';
  const folder = join(dir, stamp);
  mkdirSync(folder, { recursive: true });
  writeFileSync(join(folder, 'vmlinuz'), Buffer.from(`linux kernel ${stamp}\n`.repeat(500)));
  const initrds = o.initrds ?? ['initrd.img'];
  for (const i of initrds) writeFileSync(join(folder, i), Buffer.from(`initramfs ${i}\n`.repeat(700)));
  writeFileSync(
    join(folder, 'platform.json'),
    JSON.stringify({ os: 'linux', stamp, version: '6.1.0', kernel: 'vmlinuz', initrds, cmdline: o.cmdline ?? 'console=ttyS0 quiet', ...(o.sha256 ? { sha256: o.sha256 } : {}) }),
  );
  return folder;
}
