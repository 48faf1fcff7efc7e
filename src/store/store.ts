// The registry: one SQLite database, one repository per table family. Nothing outside
// src/store/ writes SQL (docs/design.md "Layout").
import { join } from 'node:path';
import { openDatabase, type Db, type Migration, loadMigrations } from './db.ts';
import { BootEventRepo } from './events.ts';
import { LeaseRepo } from './leases.ts';
import { NodeRepo } from './nodes.ts';
import { PlatformRepo } from './platforms.ts';
import { RolloutRepo } from './rollouts.ts';

export interface StoreOptions {
  /** Injected clock (ms since epoch) so tests can move time. */
  now?: () => number;
  migrations?: Migration[];
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

  close(): void {
    if (this.db.open) this.db.close();
  }
}
