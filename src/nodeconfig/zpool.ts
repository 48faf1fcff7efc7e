// The zones pool a node builds on first boot. The operator's choice (a disklayout class
// plus width, spares, cache, log, exclusions) is kept in nodes.zpool_config; the vdev plan
// is computed from the disks the node reported, following the rules of SmartOS's
// disklayout (smartos-live src/node_modules/disklayout.js): few disks -> single / mirror /
// raidz, many disks -> wider redundancy with spares, solid-state disks beside spinning
// ones -> intent log (SLOG) and L2ARC cache rather than data.
import { z } from 'zod';
import { NodeConfigError } from './network.ts';

export const zpoolClasses = ['default', 'single', 'mirror', 'raidz1', 'raidz2', 'raidz3'] as const;
export type ZpoolClass = (typeof zpoolClasses)[number];

export const zpoolLayoutSchema = z.strictObject({
  class: z.enum(zpoolClasses).default('default'),
  /** Disks per data vdev (mirror: 2 = two-way; raidzN: data + parity disks). */
  width: z.number().int().min(1).max(32).optional(),
  spares: z.number().int().min(0).max(16).optional(),
  cache: z.number().int().min(0).max(16).optional(),
  log: z.number().int().min(0).max(4).optional(),
  exclude: z.array(z.string().min(1)).default([]),
});
export type ZpoolLayout = z.infer<typeof zpoolLayoutSchema>;

export const diskSchema = z.strictObject({
  name: z.string().min(1).max(64),
  sizeBytes: z.number().int().min(0),
  ssd: z.boolean(),
  removable: z.boolean().default(false),
});
export type Disk = z.infer<typeof diskSchema>;

export interface Vdev {
  type: 'single' | 'mirror' | 'raidz1' | 'raidz2' | 'raidz3';
  disks: string[];
}

export interface ZpoolPlan {
  /** The class answers.json asks for (never `default` once disks are known). */
  class: Exclude<ZpoolClass, 'default'>;
  vdevs: Vdev[];
  spares: string[];
  log: Vdev | null;
  cache: string[];
  /** Disks left out (excluded, removable, or not fitting a whole vdev). */
  unused: string[];
  /** Usable bytes, roughly: data disks minus parity / mirror copies. */
  usableBytes: number;
  reason: string;
}

const minWidth: Record<Vdev['type'], number> = { single: 1, mirror: 2, raidz1: 3, raidz2: 4, raidz3: 5 };
const parityOf: Record<Vdev['type'], number> = { single: 0, mirror: 0, raidz1: 1, raidz2: 2, raidz3: 3 };
/** Disks at or above this size go to mirrors rather than wide raidz: resilvering a big disk in a wide stripe takes days. */
const bigDiskBytes = 4e12;

/**
 * `raidz2 width=6 spares=1 cache=1 log=2 exclude=sda,sdb` (the CLI's `--zpool`), or a
 * bare class name.
 */
export function parseZpoolSpec(spec: string): ZpoolLayout {
  const [cls = '', ...rest] = spec.trim().split(/\s+/);
  const doc: Record<string, unknown> = { class: cls };
  for (const kv of rest) {
    const m = /^(width|spares|cache|log|exclude)=(.*)$/.exec(kv);
    if (!m) throw new NodeConfigError(`zpool: expected key=value (width, spares, cache, log, exclude), got ${JSON.stringify(kv)}`);
    const [, key = '', value = ''] = m;
    doc[key] = key === 'exclude' ? value.split(',').filter(Boolean) : /^\d+$/.test(value) ? Number(value) : value;
  }
  return parseZpoolLayout(doc);
}

export function parseZpoolLayout(input: unknown): ZpoolLayout {
  const r = zpoolLayoutSchema.safeParse(input);
  if (!r.success) {
    throw new NodeConfigError(r.error.issues.map((i) => `zpool.${i.path.map(String).join('.')}: ${i.message}`).join('; '));
  }
  return r.data;
}

function vdevUsable(v: Vdev, sizes: Map<string, number>): number {
  const smallest = Math.min(...v.disks.map((d) => sizes.get(d) ?? 0));
  if (v.type === 'single') return smallest;
  if (v.type === 'mirror') return smallest;
  return smallest * (v.disks.length - parityOf[v.type]);
}

/** Picks the raidz width (within [lo, hi]) that leaves the fewest disks over; ties go to the width nearest 8. */
function bestWidth(n: number, lo: number, hi: number): number {
  let best = Math.min(n, hi);
  let bestLeft = n - Math.floor(n / best) * best;
  for (let w = Math.min(n, hi); w >= lo; w--) {
    const left = n % w;
    if (left < bestLeft || (left === bestLeft && Math.abs(w - 8) < Math.abs(best - 8))) {
      best = w;
      bestLeft = left;
    }
  }
  return best;
}

/**
 * The vdev plan for a layout on a disk inventory. Throws NodeConfigError when the layout
 * cannot be built from those disks (too few for the class, an unknown excluded disk).
 */
export function planZpool(layoutInput: ZpoolLayout, inventory: Disk[]): ZpoolPlan {
  const layout = zpoolLayoutSchema.parse(layoutInput);
  const names = new Set(inventory.map((d) => d.name));
  for (const x of layout.exclude) if (!names.has(x)) throw new NodeConfigError(`zpool.exclude: the node has no disk "${x}" (it has ${[...names].join(', ') || 'none'})`);
  const sizes = new Map(inventory.map((d) => [d.name, d.sizeBytes]));
  const unused: string[] = [];
  const eligible: Disk[] = [];
  for (const d of [...inventory].sort((a, b) => a.name.localeCompare(b.name, 'en', { numeric: true }))) {
    // disklayout leaves removable media (the USB boot key) and empty devices alone.
    if (layout.exclude.includes(d.name) || d.removable || d.sizeBytes === 0) unused.push(d.name);
    else eligible.push(d);
  }
  const hdds = eligible.filter((d) => !d.ssd);
  const ssds = eligible.filter((d) => d.ssd);
  // With spinning disks present, SSDs accelerate them (log first, then cache); an all-SSD node stores data on them.
  let dataDisks = hdds.length > 0 ? hdds : ssds;
  let fast = hdds.length > 0 ? ssds : [];
  const autoLog = fast.length >= 2 ? 2 : fast.length;
  const logCount = Math.min(layout.log ?? autoLog, fast.length);
  const logDisks = fast.slice(0, logCount).map((d) => d.name);
  fast = fast.slice(logCount);
  const cacheCount = Math.min(layout.cache ?? fast.length, fast.length);
  const cache = fast.slice(0, cacheCount).map((d) => d.name);
  unused.push(...fast.slice(cacheCount).map((d) => d.name));
  if (hdds.length === 0 && (layout.log ?? 0) + (layout.cache ?? 0) > 0) {
    // All-flash: the operator asked for log/cache devices, take them from the flash.
    const take = Math.min((layout.log ?? 0) + (layout.cache ?? 0), Math.max(0, dataDisks.length - 1));
    const taken = dataDisks.slice(dataDisks.length - take);
    dataDisks = dataDisks.slice(0, dataDisks.length - take);
    logDisks.push(...taken.slice(0, layout.log ?? 0).map((d) => d.name));
    cache.push(...taken.slice(layout.log ?? 0).map((d) => d.name));
  }
  const log: Vdev | null = logDisks.length === 0 ? null : logDisks.length === 1 ? { type: 'single', disks: logDisks } : { type: 'mirror', disks: logDisks };

  const n = dataDisks.length;
  if (n === 0) throw new NodeConfigError(`zpool: no disk is left for data (${inventory.length} reported, ${unused.length} excluded or removable)`);
  const names0 = dataDisks.map((d) => d.name);
  let cls: Exclude<ZpoolClass, 'default'>;
  let width: number;
  let spareCount: number;
  let reason: string;
  if (layout.class === 'default') {
    const big = Math.min(...dataDisks.map((d) => d.sizeBytes)) >= bigDiskBytes;
    if (n === 1) [cls, width, spareCount, reason] = ['single', 1, 0, '1 data disk: no redundancy possible'];
    else if (n === 2) [cls, width, spareCount, reason] = ['mirror', 2, 0, '2 data disks: one mirror'];
    else if (n <= 4) [cls, width, spareCount, reason] = ['raidz1', n, 0, `${n} data disks: one raidz1`];
    else if (n <= 6) [cls, width, spareCount, reason] = ['raidz2', n, 0, `${n} data disks: one raidz2`];
    else if (big) {
      spareCount = n % 2 === 1 ? 1 : n >= 12 ? 2 : 0;
      [cls, width, reason] = ['mirror', 2, `${n} data disks of ${(dataDisks[0]!.sizeBytes / 1e12).toFixed(1)} TB or more: mirrors resilver fastest`];
    } else {
      spareCount = n >= 16 ? 2 : 1;
      width = bestWidth(n - spareCount, 5, 10);
      [cls, reason] = ['raidz2', `${n} data disks: raidz2 vdevs of ${width} with spares`];
    }
    if (layout.spares !== undefined) spareCount = layout.spares;
    if (layout.width !== undefined) width = layout.width;
  } else {
    cls = layout.class;
    spareCount = layout.spares ?? 0;
    const avail = n - spareCount;
    width = layout.width ?? (cls === 'single' ? 1 : cls === 'mirror' ? 2 : Math.min(avail, cls === 'raidz1' ? 6 : 10));
    if (layout.width === undefined && cls.startsWith('raidz') && avail > width) width = bestWidth(avail, minWidth[cls], width);
    reason = `operator chose ${cls}`;
  }
  if (cls === 'single') width = 1;
  if (width < minWidth[cls]) throw new NodeConfigError(`zpool.width: ${cls} needs vdevs of at least ${minWidth[cls]} disks, got ${width}`);
  if (n - spareCount < width) {
    throw new NodeConfigError(`zpool: ${cls} of width ${width}${spareCount ? ` plus ${spareCount} spare(s)` : ''} needs ${width + spareCount} data disks, the node has ${n}`);
  }
  const vdevCount = Math.floor((n - spareCount) / width);
  const vdevs: Vdev[] = [];
  for (let i = 0; i < vdevCount; i++) vdevs.push({ type: cls, disks: names0.slice(i * width, (i + 1) * width) });
  const rest = names0.slice(vdevCount * width);
  // Disks that do not fill another vdev become spares (never silently unused when a spare can use them).
  const spares = layout.spares !== undefined ? rest.slice(0, layout.spares) : rest;
  unused.push(...rest.slice(spares.length));
  const usableBytes = vdevs.reduce((sum, v) => sum + vdevUsable(v, sizes), 0);
  return { class: cls, vdevs, spares, log, cache, unused, usableBytes, reason };
}

/** One line for tables: `raidz2 2x6 +1 spare, log mirror(2), cache 1`. */
export function describePlan(p: ZpoolPlan): string {
  const width = p.vdevs[0]?.disks.length ?? 0;
  const parts = [`${p.class} ${p.vdevs.length}x${width}`];
  if (p.spares.length) parts.push(`${p.spares.length} spare${p.spares.length > 1 ? 's' : ''}`);
  if (p.log) parts.push(`log ${p.log.type}(${p.log.disks.length})`);
  if (p.cache.length) parts.push(`cache ${p.cache.length}`);
  return parts.join(', ');
}
