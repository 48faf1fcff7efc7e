// What the dashboard's routers are built from: the head node's registry, config, token and feed.
import type { FleetbootConfig } from '../../config/schema.ts';
import type { Logger } from '../../log.ts';
import type { DriverFactory } from '../../rollout/node-power.ts';
import type { Store } from '../../store/store.ts';
import type { HeadNodeCounters } from '../admin-api.ts';
import type { LiveFeed } from './live.ts';
import type { SessionStore } from './session.ts';

export interface DashboardDeps {
  config: FleetbootConfig;
  store: Store;
  log: Logger;
  /** The API token as it is now: it logs in, and a rotation ends the sessions made under the old one. */
  apiToken: () => string;
  counters?: () => HeadNodeCounters;
  /** Told after a rollout verb wrote the journal, so the rollout service acts on it now. */
  onRolloutChange?: () => void;
  /** Builds a node's power driver (rollout/power-drivers.ts powerDriverFor by default). */
  powerDriverFor?: DriverFactory;
  live: LiveFeed;
  /** The session table; one per head node (the admin API's login links write into it too). */
  sessions?: SessionStore;
}
