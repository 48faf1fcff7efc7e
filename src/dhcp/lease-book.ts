// The in-memory index of leases the allocator consults on every packet: address -> lease,
// client -> address, and a per-network cursor so picking a free address is amortised O(1)
// instead of a scan from the range start (the O(n²) the npm `dhcp` package showed).
// The `leases` table stays the durable copy; the server writes a row before it replies.
import { intToIpv4, ipv4ToInt, type NetworkConfig } from '../config/schema.ts';
import type { Lease } from '../store/leases.ts';

/**
 * How a client is named. RFC 2131 §4.2 names it by option 61 when it sends one, else by
 * chaddr; but one PXE boot (firmware, then iPXE, then the OS) sends a different option 61 at
 * each step from the same NIC, which would cost a machine one address per step. So unless
 * `dhcp.matchClientId` is set, fleetboot names clients by MAC (Kea's `match-client-id: false`).
 */
export function clientKey(mac: string, clientId: Buffer | undefined, matchClientId: boolean): string {
  return matchClientId && clientId ? `id:${clientId.toString('hex')}` : `mac:${mac}`;
}

export function leaseClientKey(l: Lease, matchClientId: boolean): string {
  return matchClientId && l.clientId ? `id:${l.clientId}` : `mac:${l.mac ?? ''}`;
}

export class LeaseBook {
  private readonly byIp = new Map<string, Lease>();
  private readonly byClient = new Map<string, Set<string>>();
  private readonly cursor = new Map<string, number>();
  /** Networks whose range has no never-leased address left (rows are never deleted). */
  private readonly noFresh = new Set<string>();
  /**
   * Per network, the offered and bound addresses held by a client that may lose them when the
   * pool runs out (docs/hardening.md "DHCP exhaustion"), least recently written first: a Map
   * keeps insertion order, and put() moves an address to the end.
   */
  private readonly provisional = new Map<string, Map<string, true>>();

  /** `provisional(l)`: whether a lease read from disk is held by such a client. */
  constructor(
    leases: Iterable<Lease>,
    private readonly matchClientId = false,
    provisional: (l: Lease) => boolean = () => false,
  ) {
    for (const l of leases) this.put(l, (l.state === 'offered' || l.state === 'bound') && provisional(l));
  }

  get(ip: string): Lease | undefined {
    return this.byIp.get(ip);
  }

  values(): IterableIterator<Lease> {
    return this.byIp.values();
  }

  get size(): number {
    return this.byIp.size;
  }

  /** Records a lease; `provisional`: its client's hold on it may be reclaimed (see reclaim). */
  put(l: Lease, provisional = false): void {
    const old = this.byIp.get(l.ip);
    if (old) {
      this.byClient.get(leaseClientKey(old, this.matchClientId))?.delete(old.ip);
      this.provisional.get(old.network)?.delete(old.ip);
    }
    if (provisional && (l.state === 'offered' || l.state === 'bound')) {
      let held = this.provisional.get(l.network);
      if (!held) this.provisional.set(l.network, (held = new Map()));
      held.set(l.ip, true);
    }
    this.byIp.set(l.ip, l);
    const key = leaseClientKey(l, this.matchClientId);
    let set = this.byClient.get(key);
    if (!set) this.byClient.set(key, (set = new Set()));
    set.add(l.ip);
  }

  /** Forgets the address (a write that would have created its only row failed). */
  delete(ip: string): void {
    const old = this.byIp.get(ip);
    if (!old) return;
    this.byClient.get(leaseClientKey(old, this.matchClientId))?.delete(ip);
    this.provisional.get(old.network)?.delete(ip);
    this.byIp.delete(ip);
  }

  /**
   * For a pool with no address left (allocate returned null): the live lease to take back,
   * the least recently written one held by a provisional client, or undefined. `still(l)`
   * confirms its client is still provisional (it may have booted since); one that is not
   * leaves the list for good. RFC 2131 §4.3.1 lets a server reuse an address only once its
   * client's lease is over; fleetboot ends it early for this class alone, and the client's
   * next REQUEST for it is NAKed (§4.3.2), as the address now belongs to another client.
   */
  reclaim(net: NetworkConfig, key: string, reserved: (ip: string) => boolean, still: (l: Lease) => boolean): Lease | undefined {
    const held = this.provisional.get(net.name);
    if (!held || !net.range) return undefined;
    const start = ipv4ToInt(net.range.start);
    const end = ipv4ToInt(net.range.end);
    for (const ip of held.keys()) {
      const l = this.byIp.get(ip);
      if (!l || (l.state !== 'offered' && l.state !== 'bound') || !still(l)) {
        held.delete(ip);
        continue;
      }
      const n = ipv4ToInt(ip);
      if (n < start || n > end || leaseClientKey(l, this.matchClientId) === key || reserved(ip)) continue;
      return l;
    }
    return undefined;
  }

  /** The client's lease in `network`, preferring a live one (RFC 2131 §4.3.1: current, then previous binding). */
  forClient(key: string, network: string): Lease | undefined {
    const ips = this.byClient.get(key);
    if (!ips) return undefined;
    let best: Lease | undefined;
    for (const ip of ips) {
      const l = this.byIp.get(ip);
      if (!l || l.network !== network || l.state === 'declined') continue;
      if (!best || rank(l) > rank(best) || (rank(l) === rank(best) && l.updatedAt > best.updatedAt)) best = l;
    }
    return best;
  }

  /** Whether `ip` may be given to client `key` now: unleased, already theirs, or lapsed. */
  availableTo(ip: string, key: string, now: number): boolean {
    const l = this.byIp.get(ip);
    if (!l) return true;
    if (l.state === 'declined') return l.expiresAt <= now;
    if (leaseClientKey(l, this.matchClientId) === key) return true;
    if (l.state === 'released' || l.state === 'expired') return true;
    return l.expiresAt <= now;
  }

  /**
   * A free address from the network's range, or null when the pool is exhausted.
   * `reserved(ip)` says whether an address is some NIC's static address.
   */
  allocate(net: NetworkConfig, key: string, now: number, reserved: (ip: string) => boolean): string | null {
    if (!net.range) return null;
    const start = ipv4ToInt(net.range.start);
    const end = ipv4ToInt(net.range.end);
    const size = end - start + 1;
    const from = this.cursor.get(net.name) ?? 0;
    // First pass: addresses nobody ever held; second: lapsed ones (RFC 2131 §4.3.1 prefers
    // not to hand out an address a client may still think it has).
    for (const pass of [0, 1] as const) {
      if (pass === 0 && this.noFresh.has(net.name)) continue;
      for (let i = 0; i < size; i++) {
        const off = (from + i) % size;
        const ip = intToIpv4(start + off);
        if (net.serverAddress === ip || net.gateway === ip) continue;
        const l = this.byIp.get(ip);
        const ok = pass === 0 ? l === undefined : this.availableTo(ip, key, now);
        if (!ok || reserved(ip)) continue;
        this.cursor.set(net.name, (off + 1) % size);
        return ip;
      }
      if (pass === 0) this.noFresh.add(net.name);
    }
    return null;
  }
}

function rank(l: Lease): number {
  return l.state === 'bound' ? 3 : l.state === 'offered' ? 2 : 1;
}
