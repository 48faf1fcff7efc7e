// Imported platform files held in memory for serving. A fleet boots the same few files
// (one boot_archive to hundreds of nodes at once); Node has no sendfile for HTTP, so
// streaming from disk costs a read copy per client per MiB. Writing slices of one shared
// Buffer costs only the socket copy, as nginx's sendfile does. Imported files never change
// in place (a re-import gets a new digest), so an entry keyed by path + SHA-256 stays valid.
import { readFile } from 'node:fs/promises';
import { totalmem } from 'node:os';

interface Entry {
  size: number;
  buffer: Promise<Buffer>;
}

export class PlatformFileCache {
  private readonly entries = new Map<string, Entry>(); // Map order = least recently used first
  private used = 0;

  /** `budget` bytes in total; a file larger than the budget is streamed from disk instead. */
  constructor(readonly budget: number = Math.min(Math.floor(totalmem() / 4), 4 << 30)) {}

  /** The file's bytes, loading it once; null when it does not fit (stream it instead). */
  get(path: string, sha256: string, size: number): Promise<Buffer> | null {
    const key = `${sha256}:${path}`;
    const hit = this.entries.get(key);
    if (hit) {
      this.entries.delete(key);
      this.entries.set(key, hit);
      return hit.buffer;
    }
    if (size > this.budget) return null;
    for (const [k, e] of this.entries) {
      if (this.used + size <= this.budget) break;
      this.entries.delete(k);
      this.used -= e.size;
    }
    const buffer = readFile(path).then((b) => {
      if (b.length !== size) throw new Error(`${path} is ${b.length} bytes, the registry says ${size}`);
      return b;
    });
    const entry = { size, buffer };
    this.entries.set(key, entry);
    this.used += size;
    // A failed load is not kept: the next request tries again.
    buffer.catch(() => {
      if (this.entries.get(key) === entry) {
        this.entries.delete(key);
        this.used -= size;
      }
    });
    return buffer;
  }

  get bytesCached(): number {
    return this.used;
  }
}
