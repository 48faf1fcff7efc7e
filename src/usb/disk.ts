// A bootable USB disk image built without root or loop mounts: an MBR with one active FAT32
// partition at LBA 2048, the FAT made in place with `mkfs.vfat --offset` and filled with mtools
// (`mcopy -i IMAGE@@OFFSET`), and, for BIOS, syslinux installed into it by its mtools-based
// installer (`syslinux --offset`) behind syslinux's own MBR code. The layout is the one measured
// booting under SeaBIOS and OVMF (docs/usb.md).
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdtempSync, openSync, readFileSync, readSync, realpathSync, renameSync, rmSync, statSync, writeFileSync, writeSync, ftruncateSync, readdirSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { execa } from 'execa';

/** A file on the key's FAT: `path` like `EFI/BOOT/BOOTX64.EFI`, from a file on disk or given bytes. */
export type UsbFile = { path: string; source: string } | { path: string; content: Buffer | string };

export interface UsbImageSpec {
  out: string;
  /** FAT volume label (at most 11 characters: letters, digits, `_`, `-`). */
  label: string;
  files: UsbFile[];
  /** When set, syslinux is installed for BIOS boot with this as `syslinux.cfg`. */
  syslinuxCfg?: string;
  /** Size of the whole image; default: what the files need plus slack, at least `minimumImageMiB`. */
  sizeMiB?: number;
  progress?: (msg: string) => void;
}

export interface UsbPartition {
  index: number;
  active: boolean;
  /** MBR partition type byte, e.g. 0x0c (FAT32 LBA). */
  type: number;
  startSector: number;
  sectors: number;
}

export interface UsbListedFile {
  path: string;
  size: number;
  /** The text of `*.cfg`, `*.ipxe`, `*.json` and `*.txt` files (what the key will do). */
  text?: string;
}

export interface UsbImageListing {
  file: string;
  sizeBytes: number;
  /** Syslinux's (or another) MBR boot code is present in the first 440 bytes. */
  mbrBootCode: boolean;
  partitions: UsbPartition[];
  label: string | null;
  files: UsbListedFile[];
}

export class UsbImageError extends Error {
  override readonly name = 'UsbImageError';
}

const sectorSize = 512;
/** LBA 2048 (1 MiB): the partition start every partitioning tool has used since 2009. */
export const partitionStartSector = 2048;
const partitionOffsetBytes = partitionStartSector * sectorSize;
/** FAT32 needs 65525 clusters; with mkfs.vfat's default cluster size 64 MiB leaves room for that. */
export const minimumImageMiB = 64;
export const syslinuxMbr = '/usr/lib/syslinux/mbr/mbr.bin';

/** Each external tool this module runs, with the Debian package that gives it (lab/debian-packages.txt). */
const tools = {
  'mkfs.vfat': 'dosfstools',
  mcopy: 'mtools',
  mmd: 'mtools',
  mdir: 'mtools',
  syslinux: 'syslinux',
  [syslinuxMbr]: 'syslinux-common',
} as const;
type Tool = keyof typeof tools;

const searchPath = [...(process.env['PATH'] ?? '').split(':'), '/usr/local/sbin', '/usr/sbin', '/sbin'].filter(Boolean);

/** The full path of `tool`, or a UsbImageError naming the Debian package to install. */
function locate(tool: Tool): string {
  if (tool.startsWith('/')) {
    if (existsSync(tool)) return tool;
  } else {
    for (const dir of searchPath) {
      const p = join(dir, tool);
      if (existsSync(p)) return p;
    }
  }
  throw new UsbImageError(`${tool} is missing: install the Debian package ${tools[tool]} (apt-get install ${tools[tool]}; lab/install-deps.sh installs it)`);
}

// mtools refuses an image whose FAT geometry it cannot check against a real drive; an image
// file at an offset has none (mtools(1), MTOOLS_SKIP_CHECK).
const mtoolsEnv = { MTOOLS_SKIP_CHECK: '1', MTOOLS_NO_VFAT: '0', LC_ALL: 'C' };

async function run(tool: Tool, args: string[], what: string): Promise<string> {
  const r = await execa(locate(tool), args, { reject: false, env: mtoolsEnv, stdin: 'ignore' });
  if (r.exitCode !== 0) {
    const detail = `${r.stderr}\n${r.stdout}`.trim().split('\n').slice(-3).join(' / ');
    if (/disk full|no free clusters|not enough space/i.test(detail)) throw new UsbImageError(`${what}: the image is too small (${detail})`);
    throw new UsbImageError(`${what} failed (${tool} exit ${r.exitCode ?? r.signal ?? '?'}): ${detail || 'no output'}`);
  }
  return r.stdout;
}

const labelPattern = /^[A-Z0-9_-]{1,11}$/;
// FAT long names: no control characters or \ / : * ? " < > | (Microsoft FAT32 specification §7).
const fatComponent = /^[^\x00-\x1f\\/:*?"<>|]{1,255}$/;

function checkFatPath(path: string): string[] {
  const parts = path.split('/');
  if (parts.some((p) => !fatComponent.test(p) || p === '.' || p === '..')) {
    throw new UsbImageError(`file path '${path}' on the key: use '/'-separated names without \\ : * ? " < > | or control characters`);
  }
  return parts;
}

/** The device number of a block device `path` is, or is backed by a loop device of, if any. */
function devicesOf(path: string): Set<string> {
  const found = new Set<string>();
  const st = statSync(path);
  if (st.isBlockDevice()) found.add(`${Math.floor(st.rdev / 256)}:${st.rdev % 256}`);
  // A regular file may be the backing file of a loop device (/sys/block/loopN/loop/backing_file).
  if (st.isFile() && existsSync('/sys/block')) {
    const real = realpathSync(path);
    for (const dev of readdirSync('/sys/block').filter((d) => d.startsWith('loop'))) {
      try {
        if (readFileSync(`/sys/block/${dev}/loop/backing_file`, 'utf8').trim() === real) found.add(readFileSync(`/sys/block/${dev}/dev`, 'utf8').trim());
      } catch {
        // not attached
      }
    }
  }
  return found;
}

/**
 * Refuses an output path that is a block device, a mounted device, or the backing file of a loop
 * device: a key is written as a file and copied to the stick with dd, never built on a device.
 * Mounts from /proc/self/mountinfo (proc(5): field 3 is major:minor, field 5 the mount point).
 */
export function checkOutputPath(out: string, mountinfo = '/proc/self/mountinfo'): void {
  const abs = resolve(out);
  if (!existsSync(dirname(abs))) throw new UsbImageError(`--out ${out}: folder ${dirname(abs)} does not exist`);
  if (!existsSync(abs)) return;
  const st = statSync(abs);
  const devices = devicesOf(abs);
  const mounted: string[] = [];
  if (existsSync(mountinfo)) {
    for (const line of readFileSync(mountinfo, 'utf8').split('\n')) {
      const f = line.split(' ');
      if (f.length > 4 && devices.has(f[2]!)) mounted.push(f[4]!.replace(/\\040/g, ' '));
      // Also a mount whose source names this path (fuse mounts of image files).
      const dash = f.indexOf('-');
      if (dash > 0 && f[dash + 2] === abs) mounted.push(f[4]!);
    }
  }
  if (mounted.length > 0) throw new UsbImageError(`--out ${out} is a mounted device (mounted on ${[...new Set(mounted)].join(', ')}): unmount it, or write the key to a file and dd that`);
  if (st.isBlockDevice()) throw new UsbImageError(`--out ${out} is a block device: write the key to a file, check it with --list, then dd it to the stick`);
  if (devices.size > 0) throw new UsbImageError(`--out ${out} backs a loop device (${[...devices].join(', ')}): detach it first (losetup -d)`);
  if (!st.isFile()) throw new UsbImageError(`--out ${out} exists and is not a regular file`);
}

function fileSize(f: UsbFile): number {
  if ('source' in f) {
    if (!existsSync(f.source)) throw new UsbImageError(`file for ${f.path} on the key: ${f.source} does not exist`);
    return statSync(f.source).size;
  }
  return Buffer.byteLength(f.content);
}

/** What the files need on FAT32 (4 KiB clusters at most), syslinux's files, FAT tables and slack. */
export function neededMiB(files: UsbFile[], withSyslinux: boolean): number {
  const cluster = 4096;
  let bytes = 0;
  for (const f of files) bytes += Math.ceil(Math.max(fileSize(f), 1) / cluster) * cluster + cluster;
  if (withSyslinux) bytes += 256 * 1024; // ldlinux.sys + ldlinux.c32
  const fat = Math.ceil(bytes / cluster) * 4 * 2; // two FATs, 4 bytes a cluster
  const total = partitionOffsetBytes + bytes + fat;
  return Math.ceil((total * 1.1) / (1024 * 1024)) + 2;
}

/** An MBR partition table entry (CHS fields set to the LBA-only marker, as for disks over 8 GiB). */
function partitionEntry(active: boolean, type: number, start: number, sectors: number): Buffer {
  const e = Buffer.alloc(16);
  e[0] = active ? 0x80 : 0x00;
  e.writeUIntBE(0xfeffff, 1, 3);
  e[4] = type;
  e.writeUIntBE(0xfeffff, 5, 3);
  e.writeUInt32LE(start, 8);
  e.writeUInt32LE(sectors, 12);
  return e;
}

/**
 * Builds the image in a temporary file beside `out` and renames it over `out` only when it is
 * complete, so a failure or a kill never leaves a half-built key at `out`.
 */
export async function buildUsbImage(spec: UsbImageSpec): Promise<{ out: string; sizeBytes: number }> {
  const progress = spec.progress ?? (() => undefined);
  const out = resolve(spec.out);
  if (!labelPattern.test(spec.label)) throw new UsbImageError(`volume label '${spec.label}': use 1-11 of A-Z 0-9 _ -`);
  const seen = new Set<string>();
  for (const f of spec.files) {
    checkFatPath(f.path);
    const key = f.path.toLowerCase(); // FAT names are case-insensitive
    if (seen.has(key) || (spec.syslinuxCfg !== undefined && key === 'syslinux.cfg')) throw new UsbImageError(`file ${f.path} is given twice for the key`);
    seen.add(key);
  }
  checkOutputPath(out);
  // Every tool before anything is written, so a missing package is named first.
  for (const t of ['mkfs.vfat', 'mcopy', 'mmd'] as const) locate(t);
  if (spec.syslinuxCfg !== undefined) {
    locate('syslinux');
    locate(syslinuxMbr);
  }

  const files: UsbFile[] = spec.syslinuxCfg !== undefined ? [...spec.files, { path: 'syslinux.cfg', content: spec.syslinuxCfg }] : spec.files;
  const need = Math.max(minimumImageMiB, neededMiB(files, spec.syslinuxCfg !== undefined));
  const sizeMiB = spec.sizeMiB ?? need;
  if (!Number.isInteger(sizeMiB) || sizeMiB < minimumImageMiB) throw new UsbImageError(`--size ${sizeMiB} MiB: a key needs a whole number of at least ${minimumImageMiB} MiB (FAT32)`);
  if (sizeMiB < need) throw new UsbImageError(`the key's files do not fit in --size ${sizeMiB} MiB: they need ${need} MiB`);
  const sizeBytes = sizeMiB * 1024 * 1024;
  const partSectors = sizeBytes / sectorSize - partitionStartSector;

  const tmp = join(dirname(out), `.${basename(out)}.partial-${process.pid}`);
  const staging = mkdtempSync(join(dirname(out), `.${basename(out)}.files-`));
  try {
    progress(`usb: ${sizeMiB} MiB image, FAT32 partition at LBA ${partitionStartSector}`);
    const fd = openSync(tmp, 'w');
    try {
      ftruncateSync(fd, sizeBytes);
      const mbr = Buffer.alloc(sectorSize);
      randomBytes(4).copy(mbr, 440); // disk signature
      // Type 0x0c: FAT32 with LBA addressing; active, so syslinux's mbr.bin boots it.
      partitionEntry(true, 0x0c, partitionStartSector, partSectors).copy(mbr, 446);
      mbr.writeUInt16LE(0xaa55, 510);
      writeSync(fd, mbr, 0, sectorSize, 0);
    } finally {
      closeSync(fd);
    }
    // -h: hidden sectors = the partition's start, which syslinux's boot sector adds to every read.
    await run('mkfs.vfat', ['-F', '32', '-n', spec.label, '-h', String(partitionStartSector), '--offset', String(partitionStartSector), tmp, String(partSectors / 2)], 'making the FAT file system');
    const image = `${tmp}@@${partitionOffsetBytes}`;
    const dirs = new Set<string>();
    for (const f of files) {
      const parts = f.path.split('/');
      for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
    }
    const sortedDirs = [...dirs].sort((a, b) => a.split('/').length - b.split('/').length);
    if (sortedDirs.length > 0) await run('mmd', ['-i', image, ...sortedDirs.map((d) => `::/${d}`)], 'making folders on the key');
    for (const [i, f] of files.entries()) {
      let source: string;
      if ('source' in f) {
        source = f.source;
      } else {
        source = join(staging, String(i));
        writeFileSync(source, f.content);
      }
      progress(`usb: ${f.path} (${fileSize(f)} bytes)`);
      await run('mcopy', ['-o', '-i', image, source, `::/${f.path}`], `copying ${f.path} onto the key`);
    }
    if (spec.syslinuxCfg !== undefined) {
      progress('usb: syslinux for BIOS boot');
      // syslinux(1): --offset installs into a FAT at that byte offset of a file, through mtools.
      await run('syslinux', ['--offset', String(partitionOffsetBytes), '--install', tmp], 'installing syslinux');
      // mbr.bin is boot code only (440 bytes): it loads the active partition's boot sector.
      const code = readFileSync(locate(syslinuxMbr));
      if (code.length > 440) throw new UsbImageError(`${syslinuxMbr} is ${code.length} bytes, more than the 440 of an MBR's code area`);
      const wfd = openSync(tmp, 'r+');
      try {
        writeSync(wfd, code, 0, code.length, 0);
      } finally {
        closeSync(wfd);
      }
    }
    const sfd = openSync(tmp, 'r+');
    try {
      fsyncSync(sfd);
    } finally {
      closeSync(sfd);
    }
    renameSync(tmp, out);
    progress(`usb: wrote ${out}`);
    return { out, sizeBytes };
  } finally {
    rmSync(tmp, { force: true });
    rmSync(staging, { recursive: true, force: true });
  }
}

/** MBR partitions of an image (empty entries left out); [] without the 0x55AA signature. */
export function readPartitions(file: string): { partitions: UsbPartition[]; mbrBootCode: boolean } {
  const fd = openSync(file, 'r');
  const mbr = Buffer.alloc(sectorSize);
  try {
    readSync(fd, mbr, 0, sectorSize, 0);
  } finally {
    closeSync(fd);
  }
  if (mbr.readUInt16LE(510) !== 0xaa55) return { partitions: [], mbrBootCode: false };
  const partitions: UsbPartition[] = [];
  for (let i = 0; i < 4; i++) {
    const e = mbr.subarray(446 + i * 16, 462 + i * 16);
    if (e[4] === 0) continue;
    partitions.push({ index: i + 1, active: e[0] === 0x80, type: e[4]!, startSector: e.readUInt32LE(8), sectors: e.readUInt32LE(12) });
  }
  return { partitions, mbrBootCode: mbr.subarray(0, 440).some((b) => b !== 0) };
}

const textFile = /\.(cfg|ipxe|json|txt|conf)$/i;
// FAT partition types (0x01 FAT12, 0x04/0x06/0x0e FAT16, 0x0b/0x0c FAT32, 0xef EFI system).
const fatTypes = new Set([0x01, 0x04, 0x06, 0x0b, 0x0c, 0x0e, 0xef]);

/** Parses `mdir -/ -a` output into path -> size (directories left out). */
export function parseMdir(output: string): Map<string, number> {
  const sizes = new Map<string, number>();
  let dir = '';
  for (const line of output.split('\n')) {
    const d = /^Directory for ::(\/.*)$/.exec(line);
    if (d) {
      dir = d[1]!.replace(/\/$/, '');
      continue;
    }
    // NAME(8) EXT(3) SIZE DATE TIME [LONG NAME]
    const m = /^(.{8}) (.{3}) +(\d+) +\S+ +\S+ *(.*)$/.exec(line);
    if (!m) continue;
    const short = m[2]!.trim() ? `${m[1]!.trim()}.${m[2]!.trim()}` : m[1]!.trim();
    const name = m[4]?.trim() || short;
    sizes.set(`${dir}/${name}`.replace(/^\//, ''), Number(m[3]));
  }
  return sizes;
}

/** What a key holds: its partitions, its FAT label, every file with its size, and the text of its boot scripts. */
export async function listUsbImage(file: string): Promise<UsbImageListing> {
  if (!existsSync(file)) throw new UsbImageError(`${file} does not exist`);
  const st = statSync(file);
  const { partitions, mbrBootCode } = readPartitions(file);
  const fatPart = partitions.find((p) => fatTypes.has(p.type));
  const listing: UsbImageListing = { file: resolve(file), sizeBytes: st.size, mbrBootCode, partitions, label: null, files: [] };
  if (!fatPart) {
    if (partitions.length === 0) throw new UsbImageError(`${file} has no MBR partition table: not a key fleetboot made`);
    return listing;
  }
  const image = `${file}@@${fatPart.startSector * sectorSize}`;
  const bare = await run('mdir', ['-i', image, '-/', '-a', '-b', '::/'], `reading the FAT of ${file}`);
  const sizes = parseMdir(await run('mdir', ['-i', image, '-/', '-a', '::/'], `reading the FAT of ${file}`));
  const label = /Volume in drive : is (.+)$/m.exec(await run('mdir', ['-i', image, '::/'], `reading the FAT of ${file}`));
  listing.label = label ? label[1]!.trim() : null;
  for (const line of bare.split('\n')) {
    const path = line.trim().replace(/^::\//, '');
    if (!path || path.endsWith('/')) continue;
    const entry: UsbListedFile = { path, size: sizes.get(path) ?? 0 };
    if (textFile.test(path) && entry.size < 256 * 1024) {
      const r = await execa(locate('mcopy'), ['-n', '-i', image, `::/${path}`, '-'], { reject: false, env: mtoolsEnv, stdin: 'ignore', encoding: 'utf8', stripFinalNewline: false });
      if (r.exitCode === 0) entry.text = r.stdout;
    }
    listing.files.push(entry);
  }
  return listing;
}
