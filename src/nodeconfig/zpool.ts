// The zones pool a node builds on first boot, and the plan `node show` prints for it.
//
// SmartOS first-boot setup (smartos-live src/smartdc/lib/smartos_prompt_config.sh,
// promptpool) lists the disks with `diskinfo -Hp`, drops the USB ones and the disk labelled
// SMARTOSBOOT, and runs `disklayout -f <that list>` with no layout, no -s spares, no -w
// width and no -c (cache on); with `zpool_confirm_layout=yes` it builds exactly that. The
// `zpool_layout` answer only labels the prompt, and an answer of "mirror" or "raidz2" there
// re-runs the prompt with the same answer forever. So the plan here is disklayout's default,
// computed with disklayout's own rules (smartos-live src/node_modules/disklayout.js), and an
// operator's explicit layout is refused: first boot has no way to build it (create_zpool
// skips a pool that already exists, but fs-joyent imports such a pool before setup and fails
// on its missing swap zvol, and nothing runs fleetboot's agent before setup).
import { z } from 'zod';
import { NodeConfigError } from './network.ts';

export const zpoolClasses = ['default', 'single', 'mirror', 'raidz1', 'raidz2', 'raidz3'] as const;
export type ZpoolClass = (typeof zpoolClasses)[number];

/** The stored shape (nodes.zpool_config): rows written before explicit layouts were refused still parse. */
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
  /** diskinfo's TYPE column said USB: setup's promptpool leaves such disks out. */
  usb: z.boolean().optional(),
});
export type Disk = z.infer<typeof diskSchema>;

export interface Vdev {
  type: 'single' | 'mirror' | 'raidz1' | 'raidz2' | 'raidz3';
  disks: string[];
}

export interface ZpoolPlan {
  /** disklayout's choice for the data vdevs. */
  class: Exclude<ZpoolClass, 'default'>;
  vdevs: Vdev[];
  spares: string[];
  /**
   * The intent-log devices, each its own vdev (type `single`, never a mirror): disklayout's
   * slog role, which mkzpool adds as plain `log` devices.
   */
  log: Vdev | null;
  cache: string[];
  /** Disks setup leaves out: USB, removable, or too small for round_capacity to size. */
  unused: string[];
  /** disklayout's capacity: per vdev, its first (smallest) disk times its data disks. */
  usableBytes: number;
  reason: string;
}

/**
 * The one layout first boot builds is the default: any other class, or width / spares /
 * cache / log / exclude, is refused naming the field (smartos_prompt_config.sh promptpool
 * passes none of them to disklayout).
 */
export function unbuildableLayoutIssue(layout: ZpoolLayout): string | null {
  const why = "SmartOS first-boot setup builds only disklayout's default pool (smartos_prompt_config.sh promptpool runs disklayout with no layout, spares, width or exclusions)";
  if (layout.class !== 'default') return `zpool.class: ${why}; "${layout.class}" would not be built, use "default"`;
  for (const key of ['width', 'spares', 'cache', 'log'] as const) {
    if (layout[key] !== undefined) return `zpool.${key}: ${why}; ${key}=${layout[key]} would not be honoured`;
  }
  if (layout.exclude.length > 0) return `zpool.exclude: ${why}; every non-USB disk is used (${layout.exclude.join(', ')} would not be left out)`;
  return null;
}

/**
 * `default` (the CLI's `--zpool`): the class and `width=N spares=N cache=N log=N
 * exclude=d1,d2` still parse, so a mistyped spec says what is wrong with it, and then any
 * layout but the default is refused (unbuildableLayoutIssue).
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

/** An operator's layout (node setup): parsed, then refused unless first boot can build it. */
export function parseZpoolLayout(input: unknown): ZpoolLayout {
  const r = zpoolLayoutSchema.safeParse(input);
  if (!r.success) {
    throw new NodeConfigError(r.error.issues.map((i) => `zpool.${i.path.map(String).join('.')}: ${i.message}`).join('; '));
  }
  const issue = unbuildableLayoutIssue(r.data);
  if (issue) throw new NodeConfigError(issue);
  return r.data;
}

export const defaultZpoolLayout: ZpoolLayout = { class: 'default', exclude: [] };

// disklayout.js's stripe limits for raidz1 and raidz2 (Z1_MIN..Z1_MAX, Z2_MIN..Z2_MAX).
const raidz1Widths = { min: 3, max: 6 };
const raidz2Widths = { min: 7, max: 12 };

/**
 * disklayout.js round_capacity: the marketed size in GB a device most likely is, so disks of
 * one model whose byte counts differ a little land in one group. 0 for devices under ~0.5 GB.
 */
export function roundedCapacityGb(bytes: number): number {
  const mb = bytes / 1e6;
  let bestFit: number | undefined;
  let bestDiff = 0;
  for (const step of [500000, 150000, 80000, 20000, 4500, 1000]) {
    const rounded = Math.floor((mb + Math.floor(step / 2)) / step) * step;
    if (Math.abs(mb - rounded) / mb > 0.05) continue;
    // Squared error, weighted so a coarse step only wins when it is much closer.
    const diff = (mb - rounded) ** 2 * (rounded / step) ** 4;
    // disklayout compares against 0 as "no candidate yet", so an exact fit can be replaced by a later one.
    if (diff < bestDiff || bestDiff === 0) {
      bestFit = rounded;
      bestDiff = diff;
    }
  }
  if (bestFit !== undefined && Math.abs(bestFit - mb) / mb < 0.05) return bestFit / 1000;
  return Math.round(mb / 1000);
}

interface Bucket {
  ssd: boolean;
  sizeGb: number;
  disks: Disk[];
}

/** disklayout.js xform_bucket: a role's disks, smallest first, then by name (plain string order). */
function roleOrder(disks: Disk[]): Disk[] {
  return [...disks].sort((a, b) => a.sizeBytes - b.sizeBytes || (a.name > b.name ? 1 : a.name < b.name ? -1 : 0));
}

const smallestOf = (b: Bucket): number => Math.min(...b.disks.map((d) => d.sizeBytes));

/**
 * disklayout.js compute_layout's grouping and assign_roles with cache enabled: devices of
 * one rounded size and kind form a group, groups of one kind within 5% of each other merge
 * (into the larger group), the largest spinning group stores data and any other spinning
 * groups become cache; with no spinning disks the largest SSD group stores data; then the
 * smallest remaining SSD group is the intent log when it has fewer than 5 devices, and every
 * other SSD group is cache.
 */
function assignRoles(disks: Disk[]): { storage: Disk[]; logs: Disk[]; cache: Disk[] } {
  const groups = new Map<string, Bucket>();
  for (const d of disks) {
    const gb = roundedCapacityGb(d.sizeBytes);
    const key = `${gb},${d.ssd}`;
    const g = groups.get(key) ?? { ssd: d.ssd, sizeGb: gb, disks: [] };
    g.disks.push(d);
    groups.set(key, g);
  }
  // merge_types: every ordered pair once, in insertion order, skipping groups already merged away.
  const keys = [...groups.keys()];
  for (const k0 of keys) {
    for (const k1 of keys) {
      const g0 = groups.get(k0);
      const g1 = groups.get(k1);
      if (k0 === k1 || !g0 || !g1 || g0.ssd !== g1.ssd) continue;
      if (Math.abs(g0.sizeGb - g1.sizeGb) / g1.sizeGb > 0.05) continue;
      if (g0.disks.length > g1.disks.length) {
        g0.disks = g0.disks.concat(g1.disks);
        groups.delete(k1);
      } else {
        g1.disks = g1.disks.concat(g0.disks);
        groups.delete(k0);
      }
    }
  }
  const all = [...groups.values()];
  if (all.length === 0) return { storage: [], logs: [], cache: [] };
  if (all.length === 1) return { storage: roleOrder(all[0]!.disks), logs: [], cache: [] };
  const bySmallest = (a: Bucket, b: Bucket): number => smallestOf(a) - smallestOf(b);
  const ssdGroups = all.filter((g) => g.ssd).sort(bySmallest);
  const hddGroups = all.filter((g) => !g.ssd).sort(bySmallest);
  let storage: Disk[] = [];
  const cache: Disk[] = [];
  let logs: Disk[] = [];
  const largestHdd = hddGroups.pop();
  if (largestHdd) storage = roleOrder(largestHdd.disks);
  for (const g of hddGroups) cache.push(...roleOrder(g.disks));
  if (ssdGroups.length === 0) return { storage, logs, cache };
  if (!largestHdd) storage = roleOrder(ssdGroups.pop()!.disks);
  if (ssdGroups.length === 0) return { storage, logs, cache };
  if (ssdGroups[0]!.disks.length < 5) logs = roleOrder(ssdGroups.shift()!.disks);
  for (const g of ssdGroups) cache.push(...roleOrder(g.disks));
  return { storage, logs, cache };
}

/** disklayout.js compute_layout (no layout, no spares given) and complex_layout: the class for `n` data disks. */
function defaultClass(storage: Disk[]): { cls: 'single' | 'mirror' | 'raidz1' | 'raidz2'; why: string } {
  const n = storage.length;
  const smallest = storage[0]!;
  if (n === 1) return { cls: 'single', why: '1 data disk' };
  if (n === 2) return { cls: 'mirror', why: '2 data disks' };
  if (n <= 4) return { cls: 'raidz1', why: `${n} data disks` };
  if (n <= 6) return smallest.ssd ? { cls: 'raidz1', why: `${n} solid-state data disks` } : { cls: 'raidz2', why: `${n} data disks` };
  if (n > 16) return { cls: 'raidz2', why: `${n} data disks (more than 16)` };
  if (n > raidz2Widths.min && smallest.sizeBytes > 1500e9) return { cls: 'raidz2', why: `${n} data disks larger than 1.5 TB` };
  if (n < raidz2Widths.max && smallest.ssd) return { cls: 'raidz2', why: `${n} solid-state data disks` };
  return { cls: 'mirror', why: `${n} data disks of 1.5 TB or less` };
}

/** Takes disklayout's spares from the end of the role (its largest disks can stand in for any other). */
function takeSpares(storage: Disk[], count: number): { data: Disk[]; spares: Disk[] } {
  return { data: storage.slice(0, storage.length - count), spares: storage.slice(storage.length - count) };
}

/**
 * The pool first boot builds from these disks: disklayout's default over the disks setup
 * hands it. Throws NodeConfigError for a layout first boot cannot build, or when disklayout
 * would find no storage.
 */
export function planZpool(layoutInput: ZpoolLayout, inventory: Disk[]): ZpoolPlan {
  const issue = unbuildableLayoutIssue(zpoolLayoutSchema.parse(layoutInput));
  if (issue) throw new NodeConfigError(issue);
  const unused: string[] = [];
  const candidates: Disk[] = [];
  for (const d of inventory) {
    // promptpool drops diskinfo's USB disks; compute_layout then drops removable ones and
    // those round_capacity sizes at 0 GB.
    if (d.usb || d.removable || roundedCapacityGb(d.sizeBytes) === 0) unused.push(d.name);
    else candidates.push(d);
  }
  const roles = assignRoles(candidates);
  if (roles.storage.length === 0) throw new NodeConfigError(`zpool: no primary storage disks available (${inventory.length} reported, ${unused.length} USB, removable or too small)`);
  const { cls, why } = defaultClass(roles.storage);
  const n = roles.storage.length;
  let vdevs: Vdev[];
  let spares: Disk[] = [];
  let usableBytes: number;
  let shape: string;
  if (cls === 'single') {
    // do_single: one disk, no redundancy.
    vdevs = [{ type: 'single', disks: [roles.storage[0]!.name] }];
    usableBytes = roles.storage[0]!.sizeBytes;
    shape = 'one disk';
  } else if (cls === 'mirror') {
    // do_mirror: two-way mirrors; no spare for 2 or 4 disks, else one per 16 disks plus one
    // more when that leaves an odd count.
    let spareCount = 0;
    if (n !== 2 && n !== 4) {
      spareCount = Math.ceil(n / 16);
      spareCount += (n - spareCount) % 2;
    }
    const split = takeSpares(roles.storage, spareCount);
    spares = split.spares;
    vdevs = [];
    usableBytes = 0;
    for (let i = 0; i < split.data.length; i += 2) {
      const pair = split.data.slice(i, i + 2);
      vdevs.push({ type: 'mirror', disks: pair.map((d) => d.name) });
      usableBytes += pair[0]!.sizeBytes;
    }
    shape = `two-way mirrors, ${spareCount} spare${spareCount === 1 ? '' : 's'}`;
  } else {
    // do_raidz1 / do_raidz2 and raidz_common: start with min(2, n / 7) (raidz1) or
    // min(2, n / 12) (raidz2) spares and add spares until the narrowest allowed width
    // divides the rest; raidz2 over 5 or 6 disks is one vdev of all of them.
    const parity = cls === 'raidz1' ? 1 : 2;
    let { min, max } = cls === 'raidz1' ? raidz1Widths : raidz2Widths;
    if (cls === 'raidz2' && (n === 5 || n === 6)) min = max = n;
    let spareCount = Math.min(2, Math.floor(n / (cls === 'raidz1' ? 7 : raidz2Widths.max)));
    let width = 0;
    while (n - spareCount >= min) {
      const fit = Array.from({ length: max - min + 1 }, (_, i) => min + i).find((w) => (n - spareCount) % w === 0);
      if (fit !== undefined) {
        width = fit;
        break;
      }
      spareCount++;
    }
    if (width === 0) throw new NodeConfigError(`zpool: no acceptable ${cls} layout is possible with ${n} disks`);
    const split = takeSpares(roles.storage, spareCount);
    spares = split.spares;
    vdevs = [];
    usableBytes = 0;
    for (let i = 0; i < split.data.length; i += width) {
      const stripe = split.data.slice(i, i + width);
      vdevs.push({ type: cls, disks: stripe.map((d) => d.name) });
      usableBytes += (width - parity) * stripe[0]!.sizeBytes;
    }
    shape = `${vdevs.length} vdev${vdevs.length === 1 ? '' : 's'} of ${width}, ${spareCount} spare${spareCount === 1 ? '' : 's'}`;
  }
  return {
    class: cls,
    vdevs,
    spares: spares.map((d) => d.name),
    log: roles.logs.length ? { type: 'single', disks: roles.logs.map((d) => d.name) } : null,
    cache: roles.cache.map((d) => d.name),
    unused,
    usableBytes,
    reason: `disklayout's default for ${why}: ${cls}, ${shape}`,
  };
}

/** One line for tables: `raidz2 1x11, 1 spare, 2 logs, cache 1`. */
export function describePlan(p: ZpoolPlan): string {
  const width = p.vdevs[0]?.disks.length ?? 0;
  const parts = [`${p.class} ${p.vdevs.length}x${width}`];
  if (p.spares.length) parts.push(`${p.spares.length} spare${p.spares.length > 1 ? 's' : ''}`);
  if (p.log) parts.push(`${p.log.disks.length} log${p.log.disks.length > 1 ? 's' : ''}`);
  if (p.cache.length) parts.push(`cache ${p.cache.length}`);
  return parts.join(', ');
}
