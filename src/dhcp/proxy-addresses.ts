// Under ProxyDHCP another server hands out the addresses, so fleetboot has no lease naming
// which MAC holds which address; yet the PXE client tells it: its DHCPREQUEST broadcast on 67
// names the address being confirmed (option 50, RFC 2131 §4.3.2 / §4.4.1 SELECTING and
// INIT-REBOOT; ciaddr when RENEWING), and its request to port 4011 carries the address it now
// has in ciaddr (PXE spec §2.2.5). This bounded, expiring map keeps address -> MAC from those,
// so the TFTP and HTTP steps that follow (which only see a source address) land on the node.
import type { Mac } from '../mac.ts';

/** Kept this long when the REQUEST names no lease time (option 51, RFC 2132 §9.2). */
export const PROXY_ADDRESS_DEFAULT_SECONDS = 300;
/** Most addresses remembered; the oldest go first beyond this. */
export const PROXY_ADDRESS_CAP = 4096;

export interface ProxyAddressOptions {
  cap?: number;
  defaultSeconds?: number;
  /** ms since the epoch (tests pass a fake clock). */
  now?: () => number;
}

export class ProxyAddresses {
  /** Insertion order is learn order (learn() re-inserts), so the first key is the oldest. */
  private readonly byIp = new Map<string, { mac: Mac; expiresAt: number }>();
  private readonly cap: number;
  private readonly defaultSeconds: number;
  private readonly now: () => number;

  constructor(options: ProxyAddressOptions = {}) {
    this.cap = options.cap ?? PROXY_ADDRESS_CAP;
    this.defaultSeconds = options.defaultSeconds ?? PROXY_ADDRESS_DEFAULT_SECONDS;
    this.now = options.now ?? Date.now;
    if (!Number.isInteger(this.cap) || this.cap < 1) throw new Error(`proxy address cap must be a positive integer, got ${this.cap}`);
    if (!(this.defaultSeconds > 0)) throw new Error(`proxy address lifetime must be positive, got ${this.defaultSeconds}`);
  }

  /** Remembers that `mac` holds `ip`, for `leaseSeconds` (the client's option 51) or the default. */
  learn(ip: string, mac: Mac, leaseSeconds?: number): void {
    const seconds = leaseSeconds !== undefined && leaseSeconds > 0 ? leaseSeconds : this.defaultSeconds;
    this.byIp.delete(ip);
    this.byIp.set(ip, { mac, expiresAt: this.now() + seconds * 1000 });
    while (this.byIp.size > this.cap) {
      const oldest = this.byIp.keys().next().value;
      if (oldest === undefined) break;
      this.byIp.delete(oldest);
    }
  }

  /** The MAC that last claimed `ip`, unless that claim has lapsed. */
  macOf(ip: string): Mac | undefined {
    const hit = this.byIp.get(ip);
    if (!hit) return undefined;
    if (hit.expiresAt <= this.now()) {
      this.byIp.delete(ip);
      return undefined;
    }
    return hit.mac;
  }

  get size(): number {
    return this.byIp.size;
  }
}
