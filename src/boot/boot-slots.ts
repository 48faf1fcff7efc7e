// Admission control for boot storms: at most `limit` nodes download their platform's large
// files (kernel, boot archive, initrds) at once. A node over the limit is not refused: its
// boot script tells iPXE to wait and ask again (boot-templates/wait.ipxe.hbs), which firmware
// PXE cannot do but iPXE can, so a storm queues instead of timing out downloads (the failure
// mode of a saturated link: a 250 MB ramdisk over a shared 1 GbE). docs/admission.md has the model.
//
// A slot is taken when a node is given its boot script and freed when it has fetched every
// platform file that script names, when it checks in, or when it has shown no activity for
// `holdSeconds` (it died or went elsewhere). Waiting nodes are served in the order they first
// asked: a slot that frees goes to the longest waiter even when another node's retry happens
// to land first, so no node keeps losing the race (the "capture effect" of plain retries).
import { readFileSync } from 'node:fs';
import type { Mac } from '../mac.ts';

export interface BootSlotOptions {
  /** Nodes downloading at once; 0 for no limit. */
  limit: number;
  /** A slot with no download activity this long is taken back. */
  holdSeconds: number;
  /**
   * A waiting node asks again after about the time its place in line should take to come up,
   * from the rate slots have been freeing, jittered, kept within [retryMinSeconds, retryMaxSeconds].
   */
  retryMinSeconds: number;
  retryMaxSeconds: number;
  now: () => number;
  random?: () => number;
}

export type SlotDecision =
  | { admitted: true; inFlight: number }
  | { admitted: false; waitSeconds: number; position: number; waiting: number; inFlight: number };

export interface BootSlotStats {
  limit: number;
  inFlight: number;
  waiting: number;
  /** Boot scripts handed out under the limit (a node asking again while it holds a slot counts once). */
  admitted: number;
  /** Wait scripts handed out. */
  deferred: number;
  /** Slots freed, by why. */
  freedDownloaded: number;
  freedCheckedIn: number;
  freedIdle: number;
}

interface Holder {
  nodeId: number | null;
  /** Platform file paths (`/os/STAMP/PATH`) still to be fetched whole. */
  pending: Set<string>;
  lastActivity: number;
}

interface Waiter {
  firstAt: number;
  lastSeen: number;
}

export class BootSlots {
  private readonly holders = new Map<Mac, Holder>();
  /** In the order they first asked (Map keeps insertion order). */
  private readonly waiters = new Map<Mac, Waiter>();
  private readonly counts = { admitted: 0, deferred: 0, freedDownloaded: 0, freedCheckedIn: 0, freedIdle: 0 };
  /** When the last slots were freed (ms), oldest first: the turnover a wait is sized from. */
  private readonly freedAt: number[] = [];
  private readonly random: () => number;

  constructor(private readonly options: BootSlotOptions) {
    if (!Number.isInteger(options.limit) || options.limit < 0) throw new Error(`boot slot limit must be a whole number >= 0, got ${options.limit}`);
    if (!(options.retryMinSeconds >= 1 && options.retryMaxSeconds >= options.retryMinSeconds)) {
      throw new Error(`boot slot retry window [${options.retryMinSeconds}, ${options.retryMaxSeconds}] s is not a range of at least 1 s`);
    }
    this.random = options.random ?? Math.random;
  }

  get limit(): number {
    return this.options.limit;
  }

  /**
   * A node asks for its boot script, which will fetch `files` (platform paths). Admitted: it
   * holds a slot until those are fetched. Else it should wait `waitSeconds` and ask again.
   */
  request(mac: Mac, nodeId: number | null, files: readonly string[]): SlotDecision {
    const now = this.options.now();
    this.expire(now);
    const held = this.holders.get(mac);
    if (this.options.limit === 0 || held) {
      if (this.options.limit !== 0) {
        // Asking again (a reboot, a retried chain): its files start over, the slot is kept.
        held!.pending = new Set(files);
        held!.lastActivity = now;
        held!.nodeId = nodeId;
      }
      this.counts.admitted++;
      return { admitted: true, inFlight: this.holders.size };
    }
    const free = this.options.limit - this.holders.size;
    const waiter = this.waiters.get(mac);
    // Its place among the waiters (those before it got here first); a new asker is last.
    let position = 0;
    for (const m of this.waiters.keys()) {
      if (m === mac) break;
      position++;
    }
    if (free > position && files.length > 0) {
      this.waiters.delete(mac);
      this.holders.set(mac, { nodeId, pending: new Set(files), lastActivity: now });
      this.counts.admitted++;
      return { admitted: true, inFlight: this.holders.size };
    }
    if (files.length === 0) {
      // Nothing large to fetch (an exit script, a node with no platform): no slot needed.
      this.waiters.delete(mac);
      this.counts.admitted++;
      return { admitted: true, inFlight: this.holders.size };
    }
    if (waiter) waiter.lastSeen = now;
    else this.waiters.set(mac, { firstAt: now, lastSeen: now });
    this.counts.deferred++;
    return { admitted: false, waitSeconds: this.waitFor(position + 1, now), position: position + 1, waiting: this.waiters.size, inFlight: this.holders.size };
  }

  /**
   * Seconds until a node `position` in line should ask again: its place divided by the rate at
   * which slots have been freeing (a small platform turns slots over many times a second, a
   * 250 MB ramdisk every few seconds), so neither does a freed slot wait long for its waiter nor
   * does every waiter ask every second. With no turnover seen yet (a storm's first seconds):
   * the shortest wait, since the first downloads may end at once. Jitter (x0.75 to x1.25)
   * spreads the asks so a freed slot is not met by a burst (RFC 2131 §4.1 randomizes DHCP
   * retransmissions for the same reason).
   */
  private waitFor(position: number, now: number): number {
    const { retryMinSeconds: lo, retryMaxSeconds: hi } = this.options;
    const recent = this.freedAt.filter((t) => now - t <= 60_000);
    let base = lo;
    if (recent.length >= 2) {
      // Frees after the first, over the time since it: a turnover that stopped decays to slow.
      const spanS = Math.max(0.001, (now - recent[0]!) / 1000);
      const perSecond = (recent.length - 1) / spanS;
      base = position / perSecond;
    }
    const jittered = base * (0.75 + 0.5 * this.random());
    return Math.min(hi, Math.max(lo, Math.round(jittered)));
  }

  private freed(now: number): void {
    this.freedAt.push(now);
    if (this.freedAt.length > 256) this.freedAt.shift();
  }

  /** A platform file (`/os/STAMP/PATH`) was sent to `mac`: whole (`complete`) or cut short. */
  fetched(mac: Mac, path: string, complete: boolean): void {
    const h = this.holders.get(mac);
    if (!h) return;
    h.lastActivity = this.options.now();
    if (!complete) return;
    h.pending.delete(path);
    if (h.pending.size === 0) {
      this.holders.delete(mac);
      this.counts.freedDownloaded++;
      this.freed(h.lastActivity);
    }
  }

  /** The node checked in: it is booted, whatever it still holds is free. */
  checkedIn(nodeId: number): void {
    for (const [mac, h] of this.holders) {
      if (h.nodeId !== nodeId) continue;
      this.holders.delete(mac);
      this.counts.freedCheckedIn++;
      this.freed(this.options.now());
    }
  }

  stats(): BootSlotStats {
    this.expire(this.options.now());
    return { limit: this.options.limit, inFlight: this.holders.size, waiting: this.waiters.size, ...this.counts };
  }

  private expire(now: number): void {
    const idleMs = this.options.holdSeconds * 1000;
    for (const [mac, h] of this.holders) {
      if (now - h.lastActivity < idleMs) continue;
      this.holders.delete(mac);
      this.counts.freedIdle++;
    }
    // A waiter that stopped asking (booted elsewhere, powered off) gives up its place.
    const goneMs = (this.options.retryMaxSeconds * 2 + 10) * 1000;
    for (const [mac, w] of this.waiters) if (now - w.lastSeen > goneMs) this.waiters.delete(mac);
  }
}

/** The platform files a boot plan's first entry fetches from `/os/`, as URL paths. */
export function largeFilesOf(entry: { kernelPath: string; initrds?: readonly { path: string }[]; modules?: readonly { path: string }[] }): string[] {
  const paths = [entry.kernelPath, ...(entry.initrds ?? []).map((i) => i.path), ...(entry.modules ?? []).map((m) => m.path)];
  return [...new Set(paths.filter((p) => p.startsWith('/os/')))];
}

/** Mb/s of a network interface from sysfs (net/core/net-sysfs.c `speed`), or null when it has none (-1, lo, a relay-only network). */
export function linkSpeedMbps(iface: string, read: (path: string) => string): number | null {
  try {
    const n = Number(read(`/sys/class/net/${iface}/speed`).trim());
    return Number.isInteger(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}

/** A link fleetboot cannot measure is taken as 10 GbE, the common head-node NIC. */
const unknownLinkMbps = 10_000;

/**
 * The slot limit from `boot.admission`: a number as given, or for `auto` the summed link
 * speed of the interfaces DHCP serves (the path booting nodes download over) divided by the
 * share one boot should get, at least 4.
 */
export function resolveSlotLimit(
  admission: { maxConcurrentBoots: number | 'auto'; perBootMbps: number },
  interfaces: readonly string[],
  read: (path: string) => string,
): { limit: number; linkMbps: number | null } {
  if (admission.maxConcurrentBoots !== 'auto') return { limit: admission.maxConcurrentBoots, linkMbps: null };
  const speeds = [...new Set(interfaces)].map((i) => linkSpeedMbps(i, read) ?? unknownLinkMbps);
  const linkMbps = speeds.length > 0 ? speeds.reduce((a, b) => a + b, 0) : unknownLinkMbps;
  return { limit: Math.max(4, Math.floor(linkMbps / admission.perBootMbps)), linkMbps };
}

/** The limit a head node with this config uses: `auto` reads the DHCP interfaces' link speed from sysfs. */
export function configuredSlotLimit(config: {
  boot: { admission: { maxConcurrentBoots: number | 'auto'; perBootMbps: number } };
  networks: readonly { interface?: string | undefined }[];
}): number {
  const interfaces = config.networks.flatMap((n) => (n.interface ? [n.interface] : []));
  return resolveSlotLimit(config.boot.admission, interfaces, (path) => readFileSync(path, 'utf8')).limit;
}
