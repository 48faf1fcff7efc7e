// The one virtual root TFTP serves: files other modules generate (registered providers,
// e.g. per-node files that never touch the disk) first, then the iPXE binaries folder.
// Every path is checked here before anything is opened; a refused path names its reason
// so the server can log and count it.
import { constants, readSync, type Stats } from 'node:fs';
import { open, readFile, realpath, stat, type FileHandle } from 'node:fs/promises';
import { posix, sep } from 'node:path';
import type { Mac } from '../mac.ts';
import type { NodeRecord } from '../store/nodes.ts';

/** Who asks for a file: providers use it to answer per node. */
export interface TftpRequestContext {
  /** The normalised relative path, e.g. `nodes/52:54:00:12:34:56/boot.ipxe`. */
  path: string;
  clientAddress: string;
  node: NodeRecord | null;
  mac: Mac | null;
}

/** What a provider returns: bytes, text (UTF-8), or a stream of chunks read to the end. */
export type TftpContent = Uint8Array | string | AsyncIterable<Uint8Array | string>;

/** Answers a path (or every path under a prefix); `undefined` means "no such file". */
export type TftpProvider = (ctx: TftpRequestContext) => TftpContent | undefined | Promise<TftpContent | undefined>;

/**
 * Bytes being served. `read` copies `length` bytes at `position` into `target` and returns
 * how many it copied; it is synchronous so the hot path has no promise per packet.
 */
export interface TftpSource {
  readonly size: number;
  read(target: Buffer, targetOffset: number, position: number, length: number): number;
  close(): void;
  /** What the native data path (native.ts) reads: the bytes in memory, or the open file's descriptor. */
  backing?(): { data: Buffer } | { fd: number };
}

export type PathCheck = { ok: true; path: string } | { ok: false; reason: PathRefusal };
export type PathRefusal = 'empty' | 'nul' | 'absolute' | 'dotdot' | 'backslash' | 'control' | 'outside-root';

export type Resolution =
  | { kind: 'found'; source: TftpSource; origin: 'provider' | 'file' }
  | { kind: 'missing' }
  | { kind: 'refused'; reason: PathRefusal };

/**
 * The path policy: a relative path of plain segments. `..` anywhere, a leading `/`, NUL,
 * backslashes (DOS separators some firmware sends) and control characters are refused
 * outright rather than "cleaned", so a probe is visible in the log.
 */
export function checkPath(name: string): PathCheck {
  if (name.length === 0) return { ok: false, reason: 'empty' };
  if (name.includes('\0')) return { ok: false, reason: 'nul' };
  if (name.startsWith('/')) return { ok: false, reason: 'absolute' };
  if (name.includes('\\')) return { ok: false, reason: 'backslash' };
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(name)) return { ok: false, reason: 'control' };
  const segments = name.split('/');
  if (segments.includes('..')) return { ok: false, reason: 'dotdot' };
  const path = segments.filter((s) => s !== '' && s !== '.').join('/');
  if (path === '') return { ok: false, reason: 'empty' };
  return { ok: true, path };
}

/** Bytes held in memory (provider output, cached small files). */
export class MemorySource implements TftpSource {
  constructor(private readonly data: Buffer) {}
  get size(): number {
    return this.data.length;
  }
  read(target: Buffer, targetOffset: number, position: number, length: number): number {
    return this.data.copy(target, targetOffset, position, position + length);
  }
  close(): void {}
  backing(): { data: Buffer } {
    return { data: this.data };
  }
}

/** A large file read through one descriptor held for the transfer (page-cache reads). */
class FileSource implements TftpSource {
  constructor(
    private readonly handle: FileHandle,
    readonly size: number,
  ) {}
  read(target: Buffer, targetOffset: number, position: number, length: number): number {
    if (length === 0) return 0;
    let done = 0;
    while (done < length) {
      const n = readSync(this.handle.fd, target, targetOffset + done, length - done, position + done);
      if (n === 0) break; // file shrank under us: short block ends the transfer early
      done += n;
    }
    return done;
  }
  close(): void {
    void this.handle.close().catch(() => undefined);
  }
  backing(): { fd: number } {
    return { fd: this.handle.fd };
  }
}

interface CachedFile {
  mtimeMs: number;
  size: number;
  ino: number;
  data: Buffer;
}

export interface VirtualRootOptions {
  /** The folder of iPXE binaries (config.ipxeDir). */
  dir: string;
  /** Files up to this size are kept in memory between requests (iPXE binaries are < 2 MiB). */
  cacheFileMaxBytes?: number;
  /** Total bytes the file cache may hold. */
  cacheMaxBytes?: number;
  /** Largest provider output accepted (streams are collected to know tsize and to resend windows). */
  providerMaxBytes?: number;
}

export class VirtualRoot {
  private readonly providers = new Map<string, TftpProvider>();
  private readonly prefixes: Array<[string, TftpProvider]> = [];
  private readonly cache = new Map<string, CachedFile>();
  private cacheBytes = 0;
  private rootReal: string | undefined;
  private readonly cacheFileMaxBytes: number;
  private readonly cacheMaxBytes: number;
  private readonly providerMaxBytes: number;

  constructor(private readonly options: VirtualRootOptions) {
    this.cacheFileMaxBytes = options.cacheFileMaxBytes ?? 16 * 1024 * 1024;
    this.cacheMaxBytes = options.cacheMaxBytes ?? 128 * 1024 * 1024;
    this.providerMaxBytes = options.providerMaxBytes ?? 64 * 1024 * 1024;
  }

  /**
   * Serves `path` from `provider`. A path ending in `/` registers a prefix: every path under
   * it goes to the provider (longest prefix wins). Returns a function that unregisters.
   */
  register(path: string, provider: TftpProvider): () => void {
    const isPrefix = path.endsWith('/');
    const checked = checkPath(isPrefix ? path.slice(0, -1) : path);
    if (!checked.ok) throw new Error(`tftp: cannot register "${path}": ${checked.reason} path`);
    if (isPrefix) {
      const entry: [string, TftpProvider] = [`${checked.path}/`, provider];
      this.prefixes.push(entry);
      this.prefixes.sort((a, b) => b[0].length - a[0].length);
      return () => {
        const i = this.prefixes.indexOf(entry);
        if (i >= 0) this.prefixes.splice(i, 1);
      };
    }
    if (this.providers.has(checked.path)) throw new Error(`tftp: "${checked.path}" already has a provider`);
    this.providers.set(checked.path, provider);
    return () => {
      if (this.providers.get(checked.path) === provider) this.providers.delete(checked.path);
    };
  }

  /** Finds what `ctx.path` (already passed through checkPath) names. */
  async resolve(ctx: TftpRequestContext): Promise<Resolution> {
    const provider = this.providers.get(ctx.path) ?? this.prefixes.find(([p]) => ctx.path.startsWith(p))?.[1];
    if (provider) {
      const content = await provider(ctx);
      if (content === undefined) return { kind: 'missing' };
      return { kind: 'found', source: new MemorySource(await this.collect(content)), origin: 'provider' };
    }
    return this.resolveFile(ctx.path);
  }

  private async collect(content: TftpContent): Promise<Buffer> {
    if (typeof content === 'string') return Buffer.from(content, 'utf8');
    if (content instanceof Uint8Array) return Buffer.isBuffer(content) ? content : Buffer.from(content.buffer, content.byteOffset, content.byteLength);
    const chunks: Buffer[] = [];
    let total = 0;
    for await (const chunk of content) {
      const b = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : Buffer.from(chunk);
      total += b.length;
      if (total > this.providerMaxBytes) throw new Error(`provider output exceeds ${this.providerMaxBytes} bytes`);
      chunks.push(b);
    }
    return Buffer.concat(chunks, total);
  }

  private async resolveFile(path: string): Promise<Resolution> {
    const root = await this.root();
    if (root === undefined) return { kind: 'missing' };
    let real: string;
    try {
      real = await realpath(posix.join(root, path));
    } catch {
      return { kind: 'missing' };
    }
    // A symlink may point anywhere; only what resolves inside the root is served.
    if (real !== root && !real.startsWith(root.endsWith(sep) ? root : root + sep)) return { kind: 'refused', reason: 'outside-root' };
    let st: Stats;
    try {
      st = await stat(real);
    } catch {
      return { kind: 'missing' };
    }
    if (!st.isFile()) return { kind: 'missing' };
    if (st.size <= this.cacheFileMaxBytes) {
      const hit = this.cache.get(real);
      if (hit && hit.mtimeMs === st.mtimeMs && hit.size === st.size && hit.ino === st.ino) {
        // Map order is the LRU order: move the hit to the end.
        this.cache.delete(real);
        this.cache.set(real, hit);
        return { kind: 'found', source: new MemorySource(hit.data), origin: 'file' };
      }
      let data: Buffer;
      try {
        data = await readFile(real);
      } catch {
        return { kind: 'missing' };
      }
      this.remember(real, { mtimeMs: st.mtimeMs, size: data.length, ino: st.ino, data });
      return { kind: 'found', source: new MemorySource(data), origin: 'file' };
    }
    let handle: FileHandle;
    try {
      handle = await open(real, constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch {
      return { kind: 'missing' };
    }
    const size = (await handle.stat()).size;
    return { kind: 'found', source: new FileSource(handle, size), origin: 'file' };
  }

  private remember(key: string, entry: CachedFile): void {
    const old = this.cache.get(key);
    if (old) {
      this.cacheBytes -= old.data.length;
      this.cache.delete(key);
    }
    this.cache.set(key, entry);
    this.cacheBytes += entry.data.length;
    for (const [k, v] of this.cache) {
      if (this.cacheBytes <= this.cacheMaxBytes) break;
      this.cache.delete(k);
      this.cacheBytes -= v.data.length;
    }
  }

  private async root(): Promise<string | undefined> {
    if (this.rootReal === undefined) {
      try {
        this.rootReal = await realpath(this.options.dir);
      } catch {
        return undefined; // folder missing (ipxe not installed): only providers answer
      }
    }
    return this.rootReal;
  }
}
