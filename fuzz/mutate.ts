// Mutations of kept inputs, after libFuzzer's (llvm-project compiler-rt/lib/fuzzer/
// FuzzerMutate.cpp: EraseBytes, InsertByte, ChangeBit, ChangeByte, CopyPart, CrossOver,
// interesting integers, dictionary words) and AFL's (a run of one byte), stacked a few at a time, plus a structure-aware
// mutation for JSON targets that edits one value of the parsed document, so most mutants
// still reach the schema instead of stopping at JSON.parse.
import type { FuzzTarget } from './target.ts';

export type Random = () => number;

/** mulberry32: a small seeded PRNG, so a campaign can be repeated with --seed. */
export function seededRandom(seed: number): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// FuzzerMutate.cpp's interesting values: the edges of each integer width.
const interesting8 = [0, 1, 0x7f, 0x80, 0xff, 0x10, 0x20, 0x40, 0x64];
const interesting16 = [0, 1, 0x7fff, 0x8000, 0xffff, 0x100, 0x200, 0x240, 0x400, 0x1000];
const interesting32 = [0, 1, 0x7fffffff, 0x80000000, 0xffffffff, 0x10000, 0x63825363];
const jsonValues: unknown[] = [0, -1, 1, 2, 8, 24, 32, 33, 64, 65, 255, 256, 576, 1500, 9000, 9001, 4096, 65535, 2 ** 31, 2 ** 53, -0.5, 1.5, 1e21, '', ' ', 'a', '0', '..', '/', null, true, false, [], {}];

export class Mutator {
  private readonly words: Buffer[];

  constructor(
    private readonly target: FuzzTarget,
    private readonly random: Random,
  ) {
    this.words = target.dictionary.map((w) => Buffer.from(w, 'latin1'));
  }

  private int(n: number): number {
    return Math.floor(this.random() * n);
  }

  private pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }

  /** A new input from the corpus: one to four stacked mutations of a kept input. */
  mutate(corpus: readonly Buffer[]): Buffer {
    // Half the time one of the newest inputs: the code they just reached is where the next
    // new code most likely is (libFuzzer weighs its corpus the same way, FuzzerCorpus.h).
    const base = this.random() < 0.5 ? corpus[corpus.length - 1 - this.int(Math.min(4, corpus.length))]! : this.pick(corpus);
    if (this.target.format === 'json' && this.random() < 0.6) {
      const j = this.mutateJson(base, corpus);
      if (j) return j;
    }
    let b: Buffer = Buffer.from(base);
    for (let i = 0, n = 1 + this.int(4); i < n; i++) b = this.mutateBytes(b, corpus);
    return b.length > this.target.maxLen ? b.subarray(0, this.target.maxLen) : b;
  }

  private mutateBytes(b: Buffer, corpus: readonly Buffer[]): Buffer {
    const len = b.length;
    const at = (): number => this.int(len);
    switch (len === 0 ? 2 : this.int(13)) {
      case 0: {
        // ChangeBit
        const i = at();
        b[i] = b[i]! ^ (1 << this.int(8));
        return b;
      }
      case 1: {
        // ChangeByte
        b[at()] = this.random() < 0.5 ? this.int(256) : this.pick(interesting8);
        return b;
      }
      case 2: {
        // InsertByte(s)
        const i = this.int(len + 1);
        const ins = Buffer.alloc(1 + this.int(4), this.random() < 0.5 ? this.int(256) : this.pick(interesting8));
        return Buffer.concat([b.subarray(0, i), ins, b.subarray(i)]);
      }
      case 3: {
        // EraseBytes
        const i = at();
        const n = 1 + this.int(Math.min(16, len - i));
        return Buffer.concat([b.subarray(0, i), b.subarray(i + n)]);
      }
      case 4: {
        // CopyPart: a run of the input over another place of it
        const from = at();
        const n = 1 + this.int(Math.min(32, len - from));
        b.copy(b, at(), from, from + n);
        return b;
      }
      case 5: {
        // InsertPart: a run of the input inserted elsewhere
        const from = at();
        const n = 1 + this.int(Math.min(32, len - from));
        const i = this.int(len + 1);
        return Buffer.concat([b.subarray(0, i), Buffer.from(b.subarray(from, from + n)), b.subarray(i)]);
      }
      case 6: {
        // ChangeBinaryInteger: an interesting 16- or 32-bit value, either byte order
        const wide = this.random() < 0.5;
        const size = wide ? 4 : 2;
        if (len < size) return b;
        const i = this.int(len - size + 1);
        const v = wide ? this.pick(interesting32) : this.pick(interesting16);
        if (wide) this.random() < 0.5 ? b.writeUInt32BE(v >>> 0, i) : b.writeUInt32LE(v >>> 0, i);
        else this.random() < 0.5 ? b.writeUInt16BE(v, i) : b.writeUInt16LE(v, i);
        return b;
      }
      case 7: {
        // Arithmetic on one byte
        const i = at();
        b[i] = (b[i]! + (this.int(35) + 1) * (this.random() < 0.5 ? 1 : -1)) & 0xff;
        return b;
      }
      case 8:
      case 9: {
        // A dictionary word, inserted or written over
        if (this.words.length === 0) return b;
        const w = this.pick(this.words);
        const i = this.int(len + 1);
        if (this.random() < 0.5) return Buffer.concat([b.subarray(0, i), w, b.subarray(i)]);
        const out = Buffer.from(b);
        w.copy(out, Math.min(i, Math.max(0, len - w.length)));
        return out;
      }
      case 10: {
        // CrossOver: the head of this input and the tail of another
        const other = this.pick(corpus);
        return Buffer.concat([b.subarray(0, this.int(len + 1)), other.subarray(this.int(other.length + 1))]);
      }
      case 11: {
        // A run of one byte over up to 128 bytes (AFL's havoc "memset" stage, afl-fuzz.c):
        // fills a fixed-size field end to end, which byte-wise edits rarely do
        const i = at();
        b.fill(this.random() < 0.5 ? this.int(256) : this.pick(interesting8), i, i + 1 + this.int(Math.min(128, len - i)));
        return b;
      }
      default: {
        // Shrink: cut the tail
        return b.subarray(0, this.int(len + 1));
      }
    }
  }

  /** Edits one value of a JSON document; null when the input is not JSON. */
  private mutateJson(base: Buffer, corpus: readonly Buffer[]): Buffer | null {
    let doc: unknown;
    try {
      doc = JSON.parse(base.toString('utf8'));
    } catch {
      return null;
    }
    const slots: { parent: Record<string, unknown> | unknown[]; key: string | number }[] = [];
    const walk = (v: unknown): void => {
      if (Array.isArray(v)) v.forEach((x, i) => (slots.push({ parent: v, key: i }), walk(x)));
      else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) slots.push({ parent: v as Record<string, unknown>, key: k }), walk(x);
    };
    const root = { doc };
    slots.push({ parent: root as Record<string, unknown>, key: 'doc' });
    walk(doc);
    const slot = this.pick(slots);
    const parent = slot.parent as Record<string | number, unknown>;
    const current = parent[slot.key];
    switch (this.int(7)) {
      case 0: // another value of another type
        parent[slot.key] = structuredClone(this.pick(jsonValues));
        break;
      case 1: // drop it
        if (Array.isArray(slot.parent)) slot.parent.splice(slot.key as number, 1);
        else delete parent[slot.key];
        break;
      case 2: // a new key or element beside it
        if (Array.isArray(slot.parent)) slot.parent.splice(slot.key as number, 0, structuredClone(current));
        else parent[this.words.length > 0 && this.random() < 0.7 ? this.pick(this.words).toString('latin1') : `k${this.int(10)}`] = structuredClone(this.pick(jsonValues));
        break;
      case 3: // a string edited byte-wise, or a dictionary word
        parent[slot.key] =
          typeof current === 'string' && this.random() < 0.5
            ? this.mutateBytes(Buffer.from(current, 'utf8'), corpus).toString('utf8')
            : this.words.length > 0
              ? this.pick(this.words).toString('latin1')
              : '';
        break;
      case 4: // a number nudged
        parent[slot.key] = typeof current === 'number' ? current + this.pick([-1, 1, -256, 256, 0.5]) : this.int(70000);
        break;
      case 5: {
        // a value from another kept document
        const other = this.pick(corpus);
        try {
          const o = JSON.parse(other.toString('utf8')) as unknown;
          const values: unknown[] = [];
          const gather = (v: unknown): void => {
            values.push(v);
            if (Array.isArray(v)) v.forEach(gather);
            else if (v !== null && typeof v === 'object') Object.values(v).forEach(gather);
          };
          gather(o);
          parent[slot.key] = structuredClone(this.pick(values));
        } catch {
          parent[slot.key] = null;
        }
        break;
      }
      default: // an array made long (the schemas' list bounds)
        if (Array.isArray(current) && current.length > 0) parent[slot.key] = Array.from({ length: 1 + this.int(300) }, () => structuredClone(current[0]));
        else parent[slot.key] = [structuredClone(current)];
    }
    const out = Buffer.from(JSON.stringify(root.doc) ?? 'null', 'utf8');
    return out.length > this.target.maxLen ? null : out;
  }
}
