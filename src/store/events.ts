// Boot events: every step a node takes on its way up (docs/design.md "The boot path" §7), kept
// per node so `node show` can print its boot timeline. Events are an append-only journal;
// the per-node index (boot_events_by_node) is built behind it by the store worker, in bulk
// (migration 004 says why), and a timeline reads the index plus the journal's unindexed tail.
import type { Mac } from '../mac.ts';
import type { Db } from './db.ts';

export const bootEventKinds = [
  'dhcp_discover',
  'dhcp_offer',
  'dhcp_request',
  'dhcp_ack',
  'dhcp_nak',
  'dhcp_release',
  'dhcp_decline',
  'dhcp_inform',
  'tftp_get',
  'script',
  'kernel',
  'initrd',
  'module',
  'file',
  'checkin',
  'state',
  'platform',
  'power',
  // A rollout step's outcome for the node (verified, rolling back, rolled back, reverted).
  'rollout',
] as const;
export type BootEventKind = (typeof bootEventKinds)[number];

export interface BootEvent {
  id: number;
  nodeId: number | null;
  mac: Mac | null;
  event: BootEventKind;
  detail: Record<string, unknown>;
  at: number;
}

interface EventRow {
  id: number;
  node_id: number | null;
  mac: string | null;
  event: BootEventKind;
  detail: string;
  at: number;
}

const fromRow = (r: EventRow): BootEvent => ({
  id: r.id,
  nodeId: r.node_id,
  mac: r.mac as Mac | null,
  event: r.event,
  detail: JSON.parse(r.detail) as Record<string, unknown>,
  at: r.at,
});

/** Rows per multi-row INSERT in recordAll. */
const CHUNK = 16;

export class BootEventRepo {
  private readonly insert;
  private readonly indexedUpto;
  private readonly tailOfNode;
  private readonly indexedOfNode;
  private readonly insertChunk;
  private readonly readTimeline;
  private readonly deleteIndexedOf;
  private readonly deleteTailOf;
  private readonly deleteEntriesOf;
  private readonly afterId;
  private readonly lastIdQuery;

  constructor(
    db: Db,
    private readonly now: () => number,
    /** The node holding a NIC (NodeRepo.nicByMac), for events recorded with only a MAC. */
    private readonly nodeOfMac: (mac: Mac) => number | null,
  ) {
    this.insert = db.prepare<[number | null, string | null, string, string, number]>(
      'INSERT INTO boot_events (node_id, mac, event, detail, at) VALUES (?, ?, ?, ?, ?)',
    );
    // Several rows per statement for batches (the DHCP server writes one per packet).
    this.insertChunk = db.prepare<(number | string | null)[]>(
      `INSERT INTO boot_events (node_id, mac, event, detail, at) VALUES ${Array(CHUNK).fill('(?, ?, ?, ?, ?)').join(', ')}`,
    );
    this.indexedUpto = db.prepare<[], number>('SELECT upto FROM boot_events_indexed').pluck();
    // Newest first. The tail is a rowid range scan from the journal's end; it holds what
    // the worker has not indexed yet, seconds' worth at most while the head node runs.
    this.tailOfNode = db.prepare<[number, number, number], EventRow>(
      'SELECT * FROM boot_events WHERE id > ? AND node_id = ? ORDER BY id DESC LIMIT ?',
    );
    // `i.id <= upto`: a batch the worker is still writing has entries past upto already;
    // those rows come from the tail scan.
    this.indexedOfNode = db.prepare<[number, number, number], EventRow>(
      `SELECT e.* FROM boot_events_by_node i JOIN boot_events e ON e.id = i.id
       WHERE i.node_id = ? AND i.id <= ? ORDER BY i.id DESC LIMIT ?`,
    );
    this.deleteIndexedOf = db.prepare<[number]>('DELETE FROM boot_events WHERE id IN (SELECT id FROM boot_events_by_node WHERE node_id = ?)');
    this.deleteTailOf = db.prepare<[number, number]>('DELETE FROM boot_events WHERE id > ? AND node_id = ?');
    this.deleteEntriesOf = db.prepare<[number]>('DELETE FROM boot_events_by_node WHERE node_id = ?');
    // The live feed's tail read: a rowid range scan from `id`, never the whole journal.
    this.afterId = db.prepare<[number, number], EventRow>('SELECT * FROM boot_events WHERE id > ? ORDER BY id LIMIT ?');
    this.lastIdQuery = db.prepare<[], number | null>('SELECT max(id) FROM boot_events').pluck();
    // One read transaction: both halves come from the same snapshot of upto and the journal.
    this.readTimeline = db.transaction((nodeId: number, limit: number): EventRow[] => {
      const upto = this.indexedUpto.get() ?? 0;
      const recent = this.tailOfNode.all(upto, nodeId, limit);
      const older = recent.length < limit ? this.indexedOfNode.all(nodeId, upto, limit - recent.length) : [];
      return recent.concat(older).reverse();
    });
  }

  /**
   * Deletes a node's events (call inside a transaction): through its index entries, then the
   * journal's unindexed tail by a rowid range scan. Never a scan of the whole journal, which
   * a cascade from nodes would be (migration 004). Returns how many went.
   */
  deleteOfNode(nodeId: number): number {
    const upto = this.indexedUpto.get() ?? 0;
    const n = this.deleteIndexedOf.run(nodeId).changes + this.deleteTailOf.run(upto, nodeId).changes;
    this.deleteEntriesOf.run(nodeId);
    return n;
  }

  /**
   * Records an event; with only a MAC, the node holding that NIC (if any) gets it. `at` is the
   * event's time when it is not now: an HTTP step is appended when its response ends but dated
   * at its request's arrival (its `detail.ms` gives the end), so ids stay in append order and
   * a reader that wants time order sorts by `at`.
   */
  record(e: { event: BootEventKind; nodeId?: number | null; mac?: Mac | null; detail?: Record<string, unknown>; at?: number }): void {
    this.insert.run(this.nodeFor(e), e.mac ?? null, e.event, JSON.stringify(e.detail ?? {}), e.at ?? this.now());
  }

  /** Records several events (call inside a transaction); same rules as `record`. */
  recordAll(events: readonly { event: BootEventKind; nodeId?: number | null; mac?: Mac | null; detail?: Record<string, unknown> }[]): void {
    const at = this.now();
    let i = 0;
    const params: (number | string | null)[] = new Array<number | string | null>(CHUNK * 5);
    for (; i + CHUNK <= events.length; i += CHUNK) {
      for (let j = 0; j < CHUNK; j++) {
        const e = events[i + j]!;
        const k = j * 5;
        params[k] = this.nodeFor(e);
        params[k + 1] = e.mac ?? null;
        params[k + 2] = e.event;
        params[k + 3] = JSON.stringify(e.detail ?? {});
        params[k + 4] = at;
      }
      this.insertChunk.run(...params);
    }
    for (; i < events.length; i++) this.record(events[i]!);
  }

  private nodeFor(e: { nodeId?: number | null; mac?: Mac | null }): number | null {
    return e.nodeId ?? (e.mac ? this.nodeOfMac(e.mac) : null);
  }

  /** Up to `limit` events recorded after event `id`, oldest first (the dashboard's live feed). */
  after(id: number, limit: number): BootEvent[] {
    return this.afterId.all(id, limit).map(fromRow);
  }

  /** The newest event's id, 0 for an empty journal. */
  lastId(): number {
    return this.lastIdQuery.get() ?? 0;
  }

  /** The node's most recent `limit` events, oldest first. */
  timeline(nodeId: number, limit = 200): BootEvent[] {
    return this.readTimeline(nodeId, limit).map(fromRow);
  }
}
