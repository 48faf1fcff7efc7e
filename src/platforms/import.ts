// Importing platform images: SmartOS platform tarballs (docs/design.md "Formats") and Linux
// ramdisk platforms (kernel + initrds + command line from a small manifest). Every import
// is staged in a work folder beside the stamps, verified, then renamed to a folder of its own
// in the same transaction that inserts its registry row naming that folder, so nothing is
// ever half-imported. A forced re-import never touches the folder the old row names until
// the new row is committed (docs/platforms.md, "Staging an import").
import { createHash, type Hash } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream, createWriteStream, existsSync, linkSync, lstatSync, mkdirSync, readFileSync, realpathSync, renameSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, posix, relative, resolve, sep } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { Parser, type ReadEntry } from 'tar';
import { z } from 'zod';
import type { Store } from '../store/store.ts';
import type { PlatformFile, PlatformFileRole, PlatformOs, PlatformRecord } from '../store/platforms.ts';
import { IMPORT_HEARTBEAT_MS, PlatformExistsError } from '../store/platforms.ts';
import { newPlatformFolder, newWorkFolder, platformsRoot, sweepPlatformFolders } from './layout.ts';

/** An import refused for a reason the operator can fix; nothing was left behind. */
export class ImportError extends Error {
  override readonly name = 'ImportError';
}

/** Bytes done out of bytes total (the source's size), for a progress bar. */
export type ImportProgress = (done: number, total: number) => void;

export interface ImportOptions {
  store: Store;
  platformImagesDir: string;
  /** Replace a stamp that is already imported. */
  force?: boolean;
  /** Make it the default platform (the first platform imported always is). */
  makeDefault?: boolean;
  onProgress?: ImportProgress;
}

/** SmartOS build stamps look like 20240101T000000Z (smartos-live's `date -u +%Y%m%dT%H%M%SZ`). */
export const smartosStamp = /^\d{8}T\d{6}Z$/;
/** A Linux platform's stamp names a folder and appears in URLs: keep it to a safe alphabet. */
export const linuxStamp = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

// smartos-live's platform tarball layout: the loader wants `.../platform/i86pc/...`, and
// boot_archive.hash is the SHA-1 hex of boot_archive (the kernel checks the `type=hash` module).
export const smartosFiles = {
  kernel: 'platform/i86pc/kernel/amd64/unix',
  bootArchive: 'platform/i86pc/amd64/boot_archive',
  bootArchiveHash: 'platform/i86pc/amd64/boot_archive.hash',
  version: 'platform/etc/version/platform',
} as const;

function smartosRole(path: string): PlatformFileRole {
  if (path === smartosFiles.kernel) return 'kernel';
  if (path === smartosFiles.bootArchive) return 'boot_archive';
  if (path === smartosFiles.bootArchiveHash) return 'boot_archive_hash';
  return 'other';
}

interface Digests {
  size: number;
  sha1: string;
  sha256: string;
}

/** Hashes bytes as they pass on their way to a file. */
class DigestingSink {
  private readonly sha1: Hash = createHash('sha1');
  private readonly sha256: Hash = createHash('sha256');
  size = 0;
  update(chunk: Buffer): void {
    this.sha1.update(chunk);
    this.sha256.update(chunk);
    this.size += chunk.length;
  }
  digests(): Digests {
    return { size: this.size, sha1: this.sha1.digest('hex'), sha256: this.sha256.digest('hex') };
  }
}

function within(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel) && rel.split(sep)[0] !== '..');
}

/** Progress rows are written at most this often while bytes stream (plus the heartbeat). */
const REPORT_EVERY_MS = 200;

/**
 * The import's progress row in the registry (store platform_imports), which the head node's
 * dashboard reads while the import runs in another process: the stage, the bytes, a heartbeat
 * every IMPORT_HEARTBEAT_MS so a live import that waits on a slow pipe is not taken for dead,
 * and the error that ended it. `done` is written by the commit itself (store insert). Progress
 * is best effort: a report the registry cannot take right now is skipped, the import goes on.
 */
class ImportTracker {
  readonly id: number;
  private lastReport: number;
  private readonly heartbeat: NodeJS.Timeout;
  /** The newest byte count not written yet, and the timer that will write it. */
  private latest: { bytesDone: number; bytesTotal: number | null } | null = null;
  private trailing: NodeJS.Timeout | null = null;

  constructor(
    private readonly store: Store,
    begin: { source: string; os: PlatformOs; bytesTotal: number | null; stage: 'unpacking' | 'hashing' },
  ) {
    this.id = store.platforms.beginImport(begin);
    this.lastReport = Date.now();
    this.heartbeat = setInterval(() => {
      if (Date.now() - this.lastReport >= IMPORT_HEARTBEAT_MS / 2) this.report({});
    }, IMPORT_HEARTBEAT_MS / 2);
    this.heartbeat.unref();
  }

  /**
   * Bytes done out of `total` (0: unknown), written at most every REPORT_EVERY_MS; the last
   * count of a burst is written when the interval is up, so a stream that pauses (a pipe
   * waiting for its writer) still shows how far it got.
   */
  bytes(done: number, total: number): void {
    this.latest = { bytesDone: done, bytesTotal: total > 0 ? total : null };
    if (this.trailing) return;
    const wait = REPORT_EVERY_MS - (Date.now() - this.lastReport);
    if (wait <= 0) {
      this.flush();
      return;
    }
    this.trailing = setTimeout(() => this.flush(), wait);
    this.trailing.unref();
  }

  private flush(): void {
    this.trailing = null;
    if (this.latest) this.report(this.latest);
  }

  report(p: Parameters<Store['platforms']['reportImport']>[1]): void {
    this.lastReport = Date.now();
    if (p.bytesDone !== undefined) this.latest = null;
    try {
      this.store.platforms.reportImport(this.id, p);
    } catch {
      // The registry is busy past its busy_timeout: the next report or the heartbeat catches up.
    }
  }

  /** The import did not commit: the row says why (a no-op once the commit marked it done). */
  fail(err: unknown): void {
    const message = err instanceof Error ? err.message : String(err);
    try {
      this.store.platforms.failImport(this.id, message);
    } catch {
      // Nothing more to do: the row stays active and goes stale once the heartbeat stops.
    }
  }

  end(): void {
    clearInterval(this.heartbeat);
    if (this.trailing) clearTimeout(this.trailing);
  }
}

/** Runs one import with its progress row: failed with the error when it throws. */
async function tracked<T>(store: Store, begin: ConstructorParameters<typeof ImportTracker>[1], run: (tracker: ImportTracker) => Promise<T>): Promise<T> {
  const tracker = new ImportTracker(store, begin);
  try {
    return await run(tracker);
  } catch (err) {
    tracker.fail(err);
    throw err;
  } finally {
    tracker.end();
  }
}

/** A regular file's size; null for a pipe or what cannot be read (the import says why). */
function sizeOf(file: string): number | null {
  try {
    const st = statSync(file);
    return st.isFile() ? st.size : null;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------- SmartOS tarballs

interface Extracted {
  stamp: string;
  files: Map<string, Digests>;
}

/**
 * The path rules of one platform tarball, entry by entry: every entry lies under one
 * `platform-<STAMP>/` top folder (smartos-live's tools/build_platform layout), never absolute,
 * never through `..` or through a symlink the archive made earlier, and a symlink's target
 * stays inside the platform folder. Pure (no file system), so they can be checked alone.
 */
export class TarballPaths {
  /** The stamp of the top folder, once the first entry named it. */
  stamp: string | null = null;
  /** Symlinks accepted so far, relative to the platform folder. */
  readonly links = new Set<string>();

  /** `platform-<STAMP>/a/b` -> `a/b` (null for the top folder itself); refuses paths outside the top folder. */
  relPathOf(raw: string): string | null {
    if (raw.startsWith('/') || /^[A-Za-z]:/.test(raw)) throw new ImportError(`tar entry ${JSON.stringify(raw)} is an absolute path`);
    const parts = raw.split('/').filter((p) => p !== '' && p !== '.');
    if (parts.includes('..')) throw new ImportError(`tar entry ${JSON.stringify(raw)} escapes the platform folder`);
    const top = parts[0];
    const m = top === undefined ? null : /^platform-(.+)$/.exec(top);
    if (!m) throw new ImportError(`tar entry ${JSON.stringify(raw)} is not under a platform-<STAMP>/ folder`);
    if (this.stamp === null) {
      if (!smartosStamp.test(m[1]!)) throw new ImportError(`top folder ${top} does not hold a stamp like 20240101T000000Z`);
      this.stamp = m[1]!;
    } else if (m[1] !== this.stamp) {
      throw new ImportError(`tar entry ${JSON.stringify(raw)} is outside the top folder platform-${this.stamp}/`);
    }
    const rest = parts.slice(1);
    for (let i = 1; i <= rest.length - 1; i++) {
      const prefix = rest.slice(0, i).join('/');
      if (this.links.has(prefix)) throw new ImportError(`tar entry ${JSON.stringify(raw)} goes through the link ${prefix}`);
    }
    return rest.length === 0 ? null : rest.join('/');
  }

  /** Refuses a symlink at `rel` whose `target` is empty, absolute or leads out of the platform folder. */
  checkLink(rel: string, target: string): void {
    if (target === '' || posix.isAbsolute(target)) throw new ImportError(`link ${rel} -> ${target} points out of the platform folder`);
    const resolved = posix.normalize(posix.join(posix.dirname(rel), target));
    if (resolved === '..' || resolved.startsWith('../')) throw new ImportError(`link ${rel} -> ${target} points out of the platform folder`);
  }

  /** Notes a symlink made at `rel`: later entries may not go through it. */
  addLink(rel: string): void {
    this.links.add(rel);
  }
}

/**
 * Streams a platform tarball through gunzip and tar into `staging/platform/...`, refusing
 * any entry that would land outside it. Returns the stamp (from the top folder) and each
 * regular file's digests.
 */
async function extractPlatformTarball(file: string, staging: string, onProgress?: ImportProgress): Promise<Extracted> {
  const total = statSync(file).isFile() ? statSync(file).size : 0; // 0: unknown (a pipe)
  let read = 0;
  const paths = new TarballPaths();
  const files = new Map<string, Digests>();
  const writes: Promise<void>[] = [];
  const platformDir = join(staging, 'platform');
  mkdirSync(platformDir, { recursive: true });

  const parser = new Parser({ strict: true });
  let failure: Error | null = null;
  const fail = (err: Error): void => {
    if (!failure) failure = err;
    parser.abort(err);
  };

  const onEntry = (entry: ReadEntry): void => {
    try {
      const rel = paths.relPathOf(entry.path);
      if (rel === null) {
        entry.resume();
        return;
      }
      const dest = join(platformDir, ...rel.split('/'));
      switch (entry.type) {
        case 'Directory':
          mkdirSync(dest, { recursive: true });
          entry.resume();
          return;
        case 'File':
        case 'OldFile':
        case 'ContiguousFile': {
          mkdirSync(dirname(dest), { recursive: true });
          const written = writeEntry(entry, dest, `platform/${rel}`, files);
          written.catch((err: Error) => fail(err));
          writes.push(written);
          return;
        }
        case 'SymbolicLink': {
          const target = entry.linkpath ?? '';
          paths.checkLink(rel, target);
          mkdirSync(dirname(dest), { recursive: true });
          symlinkSync(target, dest);
          paths.addLink(rel);
          entry.resume();
          return;
        }
        case 'Link': {
          // Hard link: linkpath names another entry of the archive (POSIX ustar "linkname").
          const target = paths.relPathOf(entry.linkpath ?? '');
          const known = target === null ? undefined : files.get(`platform/${target}`);
          if (target === null || !known) throw new ImportError(`hard link ${rel} -> ${entry.linkpath ?? ''} does not name a file of this platform`);
          mkdirSync(dirname(dest), { recursive: true });
          linkSync(join(platformDir, ...target.split('/')), dest);
          files.set(`platform/${rel}`, known);
          entry.resume();
          return;
        }
        default:
          throw new ImportError(`tar entry ${JSON.stringify(entry.path)} is a ${entry.type}, which a platform image cannot hold`);
      }
    } catch (err) {
      entry.resume();
      fail(err instanceof Error ? err : new Error(String(err)));
    }
  };
  parser.on('entry', onEntry);

  const parsed = new Promise<void>((resolveParsed, rejectParsed) => {
    parser.on('end', () => resolveParsed());
    parser.on('abort', (err: Error) => rejectParsed(failure ?? err));
    parser.on('error', (err: Error) => rejectParsed(failure ?? new ImportError(`not a valid tar archive: ${err.message}`)));
  });
  parsed.catch(() => undefined); // observed below; avoid an unhandled rejection while streaming

  const intoParser = new Writable({
    highWaterMark: 1 << 20,
    write(chunk: Buffer, _enc, cb) {
      if (failure) return cb(failure);
      if (parser.write(chunk)) return cb();
      // Wait for the parser (which waits for the file being written), unless it gives up.
      const onDrain = (): void => {
        parser.off('abort', onAbort);
        cb();
      };
      const onAbort = (err: Error): void => {
        parser.off('drain', onDrain);
        cb(failure ?? err);
      };
      parser.once('drain', onDrain);
      parser.once('abort', onAbort);
    },
    final(cb) {
      parser.end();
      parsed.then(() => cb(), cb);
    },
  });

  const source = createReadStream(file, { highWaterMark: 1 << 20 });
  source.on('data', (chunk) => {
    read += chunk.length;
    onProgress?.(read, total);
  });
  try {
    await pipeline(source, createGunzip(), intoParser);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (failure) throw failure;
    if (e.code === 'Z_BUF_ERROR' || /unexpected end of file/i.test(e.message)) {
      throw new ImportError(`${basename(file)} is truncated (the gzip stream ends early); download it again`);
    }
    if (e.code === 'Z_DATA_ERROR') throw new ImportError(`${basename(file)} is not a gzip file (${e.message})`);
    if (e instanceof ImportError) throw e;
    throw new ImportError(`${basename(file)}: ${e.message}`);
  }
  await parsed;
  await Promise.all(writes);
  if (failure) throw failure;
  const stamp = paths.stamp;
  if (stamp === null) throw new ImportError(`${basename(file)} holds no platform-<STAMP>/ folder`);

  // Every link must resolve, through the real folders, to something inside the platform.
  const realRoot = realpathSync(platformDir);
  for (const link of paths.links) {
    let real: string;
    try {
      real = realpathSync(join(platformDir, ...link.split('/')));
    } catch {
      throw new ImportError(`link ${link} points to nothing inside the platform`);
    }
    if (!within(realRoot, real)) throw new ImportError(`link ${link} points out of the platform folder`);
  }
  return { stamp, files };
}

function writeEntry(entry: ReadEntry, dest: string, key: string, files: Map<string, Digests>): Promise<void> {
  // 'wx': a path seen twice in one archive is refused rather than silently overwritten.
  const out = createWriteStream(dest, { flags: 'wx', mode: 0o644 });
  const sink = new DigestingSink();
  return new Promise<void>((resolveWrite, rejectWrite) => {
    out.on('error', (err: NodeJS.ErrnoException) => {
      entry.resume();
      rejectWrite(err.code === 'EEXIST' ? new ImportError(`tar entry ${key} appears twice`) : err);
    });
    out.on('finish', () => {
      files.set(key, sink.digests());
      resolveWrite();
    });
    entry.on('data', (chunk: Buffer) => {
      sink.update(chunk);
      if (!out.write(chunk)) {
        entry.pause();
        out.once('drain', () => entry.resume());
      }
    });
    entry.on('end', () => out.end());
  });
}

/** Imports `platform-<STAMP>.tgz`; returns the registry row. Stages: unpacking (bytes of the tarball read), hashing, writing. */
export async function importSmartosTarball(file: string, options: ImportOptions): Promise<PlatformRecord> {
  sweepPlatformFolders(options.store, options.platformImagesDir);
  return tracked(options.store, { source: file, os: 'smartos', bytesTotal: sizeOf(file), stage: 'unpacking' }, (tracker) => smartosImport(file, options, tracker));
}

async function smartosImport(file: string, options: ImportOptions, tracker: ImportTracker): Promise<PlatformRecord> {
  const root = platformsRoot(options.platformImagesDir);
  // A FIFO is fine too: `curl -s URL | fleetboot platform import /dev/stdin` streams straight in.
  if (!existsSync(file) || !(statSync(file).isFile() || statSync(file).isFIFO())) throw new ImportError(`${file} is not a file`);
  const named = /^platform-(.+)\.t(?:ar\.)?gz$/.exec(basename(file))?.[1] ?? null;
  if (named !== null && smartosStamp.test(named)) refuseIfImported(options, named);

  const staging = newWorkFolder(root, 'import');
  mkdirSync(staging);
  try {
    const { stamp, files } = await extractPlatformTarball(file, staging, (done, total) => {
      tracker.bytes(done, total);
      options.onProgress?.(done, total);
    });
    tracker.report({ stage: 'hashing', stamp });
    if (named !== null && named !== stamp) throw new ImportError(`${basename(file)} holds platform-${stamp}/, not platform-${named}/`);
    refuseIfImported(options, stamp);
    for (const required of [smartosFiles.kernel, smartosFiles.bootArchive, smartosFiles.bootArchiveHash]) {
      if (!files.has(required)) throw new ImportError(`${basename(file)} has no platform-${stamp}/${required.replace(/^platform\//, '')}`);
    }
    const archive = files.get(smartosFiles.bootArchive)!;
    const hashText = readFileSync(join(staging, smartosFiles.bootArchiveHash), 'utf8').trim().toLowerCase();
    if (!/^[0-9a-f]{40}$/.test(hashText)) throw new ImportError(`boot_archive.hash does not hold a SHA-1 hex digest`);
    if (hashText !== archive.sha1) {
      throw new ImportError(`boot_archive does not match boot_archive.hash (SHA-1 ${archive.sha1}, expected ${hashText}): the tarball is damaged`);
    }
    const versionFile = join(staging, smartosFiles.version);
    const version = files.has(smartosFiles.version) ? readFileSync(versionFile, 'utf8').split('\n')[0]!.trim() || stamp : stamp;
    const platformFiles: PlatformFile[] = [...files.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([path, d]) => ({ path, size: d.size, role: smartosRole(path), sha1: d.sha1, sha256: d.sha256 }));
    tracker.report({ stage: 'writing' });
    return commit(options, tracker.id, staging, {
      stamp,
      os: 'smartos',
      version,
      files: platformFiles,
      size: platformFiles.reduce((n, f) => n + f.size, 0),
      kernelArgs: null,
    });
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

function refuseIfImported(options: ImportOptions, stamp: string): void {
  if (!options.force && options.store.platforms.get(stamp)) {
    throw new ImportError(`platform ${stamp} is already imported (use --force to replace it)`);
  }
}

/**
 * Renames `staging` to a new folder of its own and inserts the row naming it, in one
 * transaction. Whatever instant a crash hits, the committed row names a complete folder: the
 * old row and its untouched folder until the commit, the new ones after it. The replaced
 * folder is deleted only after the commit; a crash first leaves it for the sweep, since no
 * row names it any more.
 */
function commit(options: ImportOptions, importId: number, staging: string, record: Omit<PlatformRecord, 'importedAt' | 'isDefault'>): PlatformRecord {
  const root = platformsRoot(options.platformImagesDir);
  let folder: string | null = null;
  let replaced: string | null = null;
  let stored: PlatformRecord;
  try {
    stored = options.store.platforms.insert(
      { ...record, ...(options.makeDefault ? { makeDefault: true } : {}) },
      (old) => {
        // Under the write lock: no other import picks the same name meanwhile.
        const name = newPlatformFolder(root, record.stamp);
        replaced = old?.folder ?? null;
        renameSync(staging, join(root, name));
        folder = name;
        return name;
      },
      () => {
        if (folder !== null && existsSync(join(root, folder))) renameSync(join(root, folder), staging);
        folder = null;
        replaced = null;
      },
      { replace: options.force === true, importId },
    );
  } catch (err) {
    if (err instanceof PlatformExistsError) throw new ImportError(err.message);
    throw err;
  }
  if (replaced !== null && replaced !== folder && existsSync(join(root, replaced))) {
    // Renamed aside first, so a crash mid-delete leaves a work folder the sweep knows.
    const aside = newWorkFolder(root, 'remove');
    renameSync(join(root, replaced), aside);
    rmSync(aside, { recursive: true, force: true });
  }
  return stored;
}

// ---------------------------------------------------------------- Linux platforms

const relFile = z
  .string()
  .min(1)
  .refine((p) => !isAbsolute(p) && !p.split(/[\\/]/).includes('..'), { message: 'must be a path inside the platform folder' });

/** `platform.json` beside a Linux platform's files. */
export const linuxManifestSchema = z.object({
  os: z.literal('linux'),
  stamp: z.string().regex(linuxStamp, 'letters, digits, ".", "_" and "-" only (at most 64)'),
  version: z.string().min(1).max(200).optional(),
  kernel: relFile,
  initrds: z.array(relFile).default([]),
  // iPXE expands ${...} in a command line, and a newline would end the kernel line.
  cmdline: z
    .string()
    .max(4096)
    .refine((s) => !/[\r\n]/.test(s) && !s.includes('${'), { message: 'must be one line without ${...}' })
    .default(''),
  /** Optional SHA-256 hex digest of each file (by the path given above); checked on import. */
  sha256: z.record(z.string(), z.string().regex(/^[0-9a-fA-F]{64}$/, 'expected a SHA-256 hex digest')).default({}),
});
export type LinuxManifest = z.infer<typeof linuxManifestSchema>;
export type LinuxManifestInput = z.input<typeof linuxManifestSchema>;

/** Reads and checks `DIR/platform.json` (or the manifest file itself). */
export function readLinuxManifest(path: string): { manifest: LinuxManifest; dir: string } {
  const file = statSync(path).isDirectory() ? join(path, 'platform.json') : path;
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ImportError(`${file}: ${(err as Error).message}`);
  }
  return { manifest: parseLinuxManifest(raw, file), dir: dirname(file) };
}

export function parseLinuxManifest(raw: unknown, source: string): LinuxManifest {
  const parsed = linuxManifestSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ImportError(`${source}: ${issue ? `${issue.path.map(String).join('.') || '(top level)'}: ${issue.message}` : 'invalid manifest'}`);
  }
  return parsed.data;
}

/** Imports a Linux platform: the manifest's files are copied (and hashed) from `dir`. Stages: hashing (bytes copied), writing. */
export async function importLinuxPlatform(manifest: LinuxManifest, dir: string, options: ImportOptions): Promise<PlatformRecord> {
  sweepPlatformFolders(options.store, options.platformImagesDir);
  return tracked(options.store, { source: dir, os: 'linux', bytesTotal: null, stage: 'hashing' }, (tracker) => linuxImport(manifest, dir, options, tracker));
}

async function linuxImport(manifest: LinuxManifest, dir: string, options: ImportOptions, tracker: ImportTracker): Promise<PlatformRecord> {
  const root = platformsRoot(options.platformImagesDir);
  refuseIfImported(options, manifest.stamp);
  const wanted: { path: string; role: PlatformFileRole }[] = [
    { path: manifest.kernel, role: 'kernel' },
    ...manifest.initrds.map((path) => ({ path, role: 'initrd' as const })),
  ];
  const seen = new Set<string>();
  const realDir = realpathSync(dir);
  const sources = wanted.map((w) => {
    const norm = posix.normalize(w.path.replace(/\\/g, '/'));
    if (seen.has(norm)) throw new ImportError(`${w.path} is listed twice in the manifest`);
    seen.add(norm);
    const src = resolve(dir, norm);
    if (!existsSync(src)) throw new ImportError(`${w.path} (the ${w.role}) does not exist in ${dir}`);
    const real = realpathSync(src);
    if (!within(realDir, real)) throw new ImportError(`${w.path} links out of ${dir}`);
    if (!statSync(real).isFile()) throw new ImportError(`${w.path} is not a regular file`);
    return { ...w, path: norm, src: real, size: statSync(real).size };
  });
  for (const key of Object.keys(manifest.sha256)) {
    if (!seen.has(posix.normalize(key))) throw new ImportError(`sha256 names ${key}, which is neither the kernel nor an initrd`);
  }
  const total = sources.reduce((n, s) => n + s.size, 0);
  tracker.report({ stamp: manifest.stamp, bytesTotal: total });
  let done = 0;
  const staging = newWorkFolder(root, 'import');
  mkdirSync(staging);
  try {
    const files: PlatformFile[] = [];
    for (const s of sources) {
      const dest = join(staging, ...s.path.split('/'));
      mkdirSync(dirname(dest), { recursive: true });
      const sink = new DigestingSink();
      const source = createReadStream(s.src, { highWaterMark: 1 << 20 });
      source.on('data', (chunk) => {
        sink.update(chunk as Buffer);
        done += chunk.length;
        tracker.bytes(done, total);
        options.onProgress?.(done, total);
      });
      await pipeline(source, createWriteStream(dest, { flags: 'wx', mode: 0o644 }));
      const d = sink.digests();
      const expected = Object.entries(manifest.sha256).find(([k]) => posix.normalize(k) === s.path)?.[1]?.toLowerCase();
      if (expected !== undefined && expected !== d.sha256) {
        throw new ImportError(`${s.path} does not match its SHA-256 in the manifest (got ${d.sha256}, expected ${expected})`);
      }
      files.push({ path: s.path, size: d.size, role: s.role, sha256: d.sha256 });
    }
    tracker.report({ stage: 'writing' });
    return commit(options, tracker.id, staging, {
      stamp: manifest.stamp,
      os: 'linux',
      version: manifest.version ?? manifest.stamp,
      files,
      size: files.reduce((n, f) => n + f.size, 0),
      kernelArgs: manifest.cmdline,
    });
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

/** True when `path` looks like a Linux platform (a platform.json, or a folder holding one). */
export function isLinuxPlatformSource(path: string): boolean {
  const st = lstatSync(path);
  if (st.isDirectory()) return existsSync(join(path, 'platform.json'));
  return basename(path).endsWith('.json');
}
