// DHCP leases (table `leases`, 001_registry.sql). The DHCP server keeps an in-memory index
// of these rows for allocation speed; this table is the durable copy, written before a
// reply leaves (RFC 2131 §4.3.1: the server must not reuse an address it has promised).
import type { Mac } from '../mac.ts';
import { writeTransaction, type Db } from './db.ts';

export const leaseStates = ['offered', 'bound', 'released', 'expired', 'declined'] as const;
export type LeaseState = (typeof leaseStates)[number];

export interface Lease {
  ip: string;
  network: string;
  mac: Mac | null;
  /** Option 61 client identifier as lowercase hex, when the client sent one (RFC 2131 §4.2). */
  clientId: string | null;
  hostname: string | null;
  state: LeaseState;
  expiresAt: number;
  /** Option 82 as received from the relay agent (RFC 3046), echoed back in replies. */
  relayInfo: Buffer | null;
  updatedAt: number;
}

interface LeaseRow {
  ip: string;
  network: string;
  mac: string | null;
  client_id: string | null;
  hostname: string | null;
  state: LeaseState;
  expires_at: number;
  relay_info: Buffer | null;
  updated_at: number;
}

const fromRow = (r: LeaseRow): Lease => ({
  ip: r.ip,
  network: r.network,
  mac: r.mac as Mac | null,
  clientId: r.client_id,
  hostname: r.hostname,
  state: r.state,
  expiresAt: r.expires_at,
  relayInfo: r.relay_info,
  updatedAt: r.updated_at,
});

/** Rows per multi-row upsert in saveMany (addresses must be distinct within one statement). */
const CHUNK = 16;

export class LeaseRepo {
  private readonly allStmt;
  private readonly byIp;
  private readonly upsert;
  private readonly upsertChunk;
  private readonly releaseStmt;

  constructor(private readonly db: Db) {
    // The table has no index on mac (migration 003): a scan of the leases, done only by node rm.
    this.releaseStmt = db.prepare<[number, string]>("UPDATE leases SET state = 'released', updated_at = ? WHERE mac = ? AND state IN ('offered', 'bound')");
    this.allStmt = db.prepare<[], LeaseRow>('SELECT * FROM leases ORDER BY ip');
    this.byIp = db.prepare<[string], LeaseRow>('SELECT * FROM leases WHERE ip = ?');
    this.upsert = db.prepare<[string, string, string | null, string | null, string | null, LeaseState, number, Buffer | null, number]>(
      `INSERT INTO leases (ip, network, mac, client_id, hostname, state, expires_at, relay_info, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (ip) DO UPDATE SET network = excluded.network, mac = excluded.mac, client_id = excluded.client_id,
         hostname = excluded.hostname, state = excluded.state, expires_at = excluded.expires_at,
         relay_info = excluded.relay_info, updated_at = excluded.updated_at`,
    );
    // Several rows per statement for the DHCP server's per-turn batch.
    this.upsertChunk = db.prepare<(string | number | Buffer | null)[]>(
      `INSERT INTO leases (ip, network, mac, client_id, hostname, state, expires_at, relay_info, updated_at)
       VALUES ${Array(CHUNK).fill('(?, ?, ?, ?, ?, ?, ?, ?, ?)').join(', ')}
       ON CONFLICT (ip) DO UPDATE SET network = excluded.network, mac = excluded.mac, client_id = excluded.client_id,
         hostname = excluded.hostname, state = excluded.state, expires_at = excluded.expires_at,
         relay_info = excluded.relay_info, updated_at = excluded.updated_at`,
    );
  }

  list(): Lease[] {
    return this.allStmt.all().map(fromRow);
  }

  get(ip: string): Lease | undefined {
    const r = this.byIp.get(ip);
    return r && fromRow(r);
  }

  /**
   * Marks the MAC's offered and bound leases released, as a DHCPRELEASE would
   * (RFC 2131 §4.3.4); the rows stay. Returns how many. Call inside a transaction.
   */
  releaseOfMac(mac: Mac, now: number): number {
    return this.releaseStmt.run(now, mac).changes;
  }

  /** Writes leases (insert or replace by ip) in one transaction. */
  saveAll(leases: Iterable<Lease>): void {
    writeTransaction(this.db, () => {
      for (const l of leases) this.save(l);
    })();
  }

  /** Writes leases with distinct addresses; call inside a transaction. */
  saveMany(leases: readonly Lease[]): void {
    let i = 0;
    const params = new Array<string | number | Buffer | null>(CHUNK * 9);
    for (; i + CHUNK <= leases.length; i += CHUNK) {
      for (let j = 0; j < CHUNK; j++) {
        const l = leases[i + j]!;
        const k = j * 9;
        params[k] = l.ip;
        params[k + 1] = l.network;
        params[k + 2] = l.mac;
        params[k + 3] = l.clientId;
        params[k + 4] = l.hostname;
        params[k + 5] = l.state;
        params[k + 6] = l.expiresAt;
        params[k + 7] = l.relayInfo;
        params[k + 8] = l.updatedAt;
      }
      this.upsertChunk.run(...params);
    }
    for (; i < leases.length; i++) this.save(leases[i]!);
  }

  /** Writes one lease; call inside a transaction when writing several. */
  save(l: Lease): void {
    // Positional parameters: binding by name costs a property lookup per column per row.
    this.upsert.run(l.ip, l.network, l.mac, l.clientId, l.hostname, l.state, l.expiresAt, l.relayInfo, l.updatedAt);
  }
}
