// The registry: one SQLite database, one repository per table family. Nothing outside
// src/store/ writes SQL (docs/design.md "Layout").
import { join } from 'node:path';
import { openDatabase, writeTransaction, type Db, type Migration, loadMigrations } from './db.ts';
import { BootEventRepo } from './events.ts';
import { LeaseRepo } from './leases.ts';
import { NodeRepo, type NodeRecord } from './nodes.ts';
import { PlatformRepo } from './platforms.ts';
import { RolloutRepo } from './rollouts.ts';

export interface StoreOptions {
  /** Injected clock (ms since epoch) so tests can move time. */
  now?: () => number;
  migrations?: Migration[];
}

export class NodeMissingError extends Error {
  override readonly name = 'NodeMissingError';
}

export class Store {
  readonly nodes: NodeRepo;
  readonly events: BootEventRepo;
  readonly leases: LeaseRepo;
  readonly platforms: PlatformRepo;
  /** The rollout journal (rollout/journal.ts) the orchestrator and the rollout verbs share. */
  readonly rollouts: RolloutRepo;

  private constructor(
    readonly db: Db,
    readonly now: () => number,
  ) {
    this.nodes = new NodeRepo(db, now);
    this.events = new BootEventRepo(db, now, (mac) => this.nodes.nicByMac(mac)?.nodeId ?? null);
    this.leases = new LeaseRepo(db);
    this.platforms = new PlatformRepo(db, now);
    this.rollouts = new RolloutRepo(db);
  }

  /** Opens `file` (or `:memory:`) and migrates it to the newest schema. */
  static open(file: string, options: StoreOptions = {}): Store {
    const db = openDatabase(file, options.migrations ?? loadMigrations());
    return new Store(db, options.now ?? Date.now);
  }

  /** The registry file inside a data dir. */
  static fileIn(dataDir: string): string {
    return join(dataDir, 'fleetboot.db');
  }

  /**
   * Deletes a node with its NICs and boot events, and releases its leases, in one write
   * transaction; `refuse` runs first inside it and throws to keep the node (a rollout holds
   * it). The events go through the per-node index (BootEventRepo.deleteOfNode): the foreign
   * key's cascade would scan the whole journal, so foreign keys are off on this connection
   * for the transaction (PRAGMA foreign_keys is a no-op inside one,
   * https://sqlite.org/foreignkeys.html §2), and every table that names nodes.id is handled
   * here: nics, boot_events, boot_events_by_node (rollout_steps keeps its history, no key).
   * A `state` event naming the node and its MACs is recorded first, with no node, so the
   * journal's last row is never one deleted (store-worker.mjs, "Retention").
   */
  removeNode(nodeId: number, refuse: (node: NodeRecord) => void = () => undefined): { node: NodeRecord; events: number; leases: number } {
    if (this.db.inTransaction) throw new Error('removeNode runs its own transaction');
    const keys = this.db.pragma('foreign_keys', { simple: true }) === 1;
    if (keys) this.db.pragma('foreign_keys = OFF');
    try {
      return writeTransaction(this.db, () => {
        const node = this.nodes.get(nodeId);
        if (!node) throw new NodeMissingError(`no node ${nodeId}`);
        refuse(node);
        const macs = node.nics.map((n) => n.mac);
        this.events.record({ event: 'state', nodeId: null, mac: null, detail: { node: node.id, from: node.state, to: 'removed', macs } });
        const events = this.events.deleteOfNode(node.id);
        let leases = 0;
        for (const mac of macs) leases += this.leases.releaseOfMac(mac, this.now());
        this.nodes.deleteRow(node.id);
        return { node, events, leases };
      })();
    } finally {
      if (keys) this.db.pragma('foreign_keys = ON');
    }
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
