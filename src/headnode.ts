// One head node: the registry plus every server, started and stopped together. The CLI's
// `serve` runs one; tests run one in-process on ephemeral ports.
import type { BootSlots } from './boot/boot-slots.ts';
import { bootSlotsFor } from './http/app.ts';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { installDir } from './config/load.ts';
import { BootTemplates } from './boot/templates.ts';
import type { FleetbootConfig } from './config/schema.ts';
import { followTokenFile } from './config/token.ts';
import { DhcpServer } from './dhcp/server.ts';
import type { HeadNodeCounters } from './http/admin-api.ts';
import { HttpServer } from './http/server.ts';
import { LiveFeed } from './http/dashboard/live.ts';
import { nodeConfigProvider } from './nodeconfig/boot-modules.ts';
import { nodeKeysIn, rootPassword, settleNodeKey } from './nodeconfig/secrets.ts';
import { sweepPlatformFolders } from './platforms/layout.ts';
import { UnknownNodeSweeper } from './nodeconfig/lifecycle.ts';
import { defaultNtpHost } from './nodeconfig/render.ts';
import type { Logger } from './log.ts';
import type { DriverFactory } from './rollout/node-power.ts';
import { storeRolloutPorts } from './rollout/ports.ts';
import { RolloutService } from './rollout/service.ts';
import { StoreWorker } from './store/store-worker.ts';
import { Store } from './store/store.ts';
import { TftpServer } from './tftp/server.ts';

/** Something the head node starts and stops (DHCP, TFTP, HTTP, background jobs). */
export interface Service {
  readonly name: string;
  start(): Promise<unknown>;
  stop(): Promise<void>;
}

export interface HeadNodeOptions {
  log: Logger;
  now?: () => number;
  /** Builds a node's power driver from its stored spec (tests: fakes); default rollout/power-drivers.ts. */
  powerDriverFor?: DriverFactory;
  /** How often the rollout service reads the journal for operator changes (ms). */
  rolloutPollMs?: number;
}

export class HeadNode {
  readonly store: Store;
  readonly templates: BootTemplates;
  readonly http: HttpServer;
  /** The dashboard's live feed (SSE), started and stopped with HTTP. */
  readonly live: LiveFeed;
  /** Always built so modules can register TFTP providers; started only when config.tftp.enabled. */
  readonly tftp: TftpServer;
  /** The API token file as it is now (`fleetboot token rotate` replaces it). */
  private readonly apiTokenOf: () => string;
  /** WAL checkpoints and the boot-event index, on a worker thread (store/store-worker.ts). */
  readonly storeWorker: StoreWorker;
  /** The DHCP server (full or ProxyDHCP); null when config.dhcp.mode is "off". */
  readonly dhcp: DhcpServer | null;
  /** Marks nodes that missed their check-ins `unknown` (nodeconfig). */
  readonly nodeSweeper: UnknownNodeSweeper;
  /** Carries rollouts forward (rollout/service.ts). */
  readonly rollouts: RolloutService;
  private readonly services: Service[] = [];
  private startedAt = Date.now();
  private started: Service[] = [];
  /** Boot storm admission (boot/boot-slots.ts), shared by the script and file routes. */
  readonly bootSlots: BootSlots;
  /** Platform file bytes sent by HTTP, by stamp (written by platforms/file-routes.ts). */
  private readonly platformSentBytes = new Map<string, number>();

  constructor(
    readonly config: FleetbootConfig,
    private readonly options: HeadNodeOptions,
  ) {
    mkdirSync(config.dataDir, { recursive: true });
    mkdirSync(config.platformImagesDir, { recursive: true });
    this.apiTokenOf = followTokenFile(config.apiTokenFile);
    this.store = Store.open(Store.fileIn(config.dataDir), options.now ? { now: options.now } : {});
    // A template an operator's folder lacks comes from the install's own.
    this.templates = new BootTemplates(config.templatesDir ?? join(installDir, 'boot-templates'), join(installDir, 'boot-templates'));
    // Leftovers of an interrupted platform import (kill -9) go before anything serves them.
    sweepPlatformFolders(this.store, config.platformImagesDir, options.log);
    // A `token rotate node-key` cut short is finished or undone before any token is derived.
    const settled = settleNodeKey(this.store, config.dataDir);
    if (settled !== 'none') options.log.warn({ event: 'node_key_settled', outcome: settled }, 'an interrupted node-key rotation was settled');
    const keys = nodeKeysIn(config.dataDir);
    const ports = storeRolloutPorts(this.store, {
      moduleSecrets: (node) => ({ rootPassword: rootPassword(keys, node), ntpHost: defaultNtpHost(config) }),
      ...(options.powerDriverFor ? { driverFor: options.powerDriverFor } : {}),
      log: options.log,
    });
    this.rollouts = new RolloutService(this.store, options.log, { ports, ...(options.rolloutPollMs !== undefined ? { pollMs: options.rolloutPollMs } : {}) });
    this.bootSlots = bootSlotsFor(config, this.store.now);
    this.live = new LiveFeed({ store: this.store, log: options.log, counters: () => this.counters() });
    this.http = new HttpServer({
      config,
      live: this.live,
      ...(options.powerDriverFor ? { powerDriverFor: options.powerDriverFor } : {}),
      store: this.store,
      templates: this.templates,
      log: options.log,
      apiToken: this.apiTokenOf,
      nodeContribution: nodeConfigProvider(keys),
      counters: () => this.counters(),
      dhcpPackets: () => this.dhcp?.packets ?? null,
      // A check-in may be the boot a rollout waits for: judge it now rather than at the next poll.
      onCheckin: () => this.rollouts.kick(),
      onRolloutChange: () => this.rollouts.kick(),
      // Built below: under ProxyDHCP it knows which MAC claimed an address, as TFTP asks too.
      proxyMacOf: (ip) => this.dhcp?.proxyAddresses.macOf(ip),
      bootSlots: this.bootSlots,
      platformSentBytes: this.platformSentBytes,
    });
    // First in, last out: checkpoints and the boot-event index run off the event loop while the servers write.
    this.storeWorker = new StoreWorker(this.store.db, options.log, { bootEventDays: config.store.bootEventDays, bootEventsPerNode: config.store.bootEventsPerNode });
    this.services.push(this.storeWorker);
    this.services.push({
      name: 'http',
      start: async () => {
        const addr = await this.http.start();
        this.live.start();
        return addr;
      },
      // The live streams end first: an open SSE response would hold the HTTP stop to its grace.
      stop: async () => {
        this.live.stop();
        await this.http.stop();
      },
    });
    this.tftp = new TftpServer({
      listen: config.tftp.listen,
      port: config.tftp.port,
      dir: config.ipxeDir,
      log: options.log,
      store: this.store,
      busyPollMicros: config.tftp.busyPollMicros,
      maxTransfersPerAddress: config.tftp.maxTransfersPerAddress,
      maxTimeoutSeconds: config.tftp.maxTimeoutSeconds,
      maxTransferSeconds: config.tftp.maxTransferSeconds,
      proxyMacOf: (ip) => this.dhcp?.proxyAddresses.macOf(ip),
    });
    if (config.tftp.enabled) this.services.push(this.tftp);
    this.dhcp =
      config.dhcp.mode === 'off'
        ? null
        : new DhcpServer({ config, store: this.store, log: options.log, httpPort: () => this.http.address()?.port ?? config.http.port });
    if (this.dhcp) this.services.push(this.dhcp);
    this.nodeSweeper = new UnknownNodeSweeper(this.store, config.nodes.unknownAfterSeconds, options.log);
    this.services.push(this.nodeSweeper);
    // Last in, first out: a power cycle in progress finishes before HTTP and the store go.
    this.services.push(this.rollouts);
  }

  /** The admin API's bearer token now. */
  get apiToken(): string {
    return this.apiTokenOf();
  }

  /** What each service has counted since the head node started (DHCP malformed packets and all). */
  counters(): HeadNodeCounters {
    return {
      startedAt: new Date(this.startedAt).toISOString(),
      dhcp: this.dhcp ? { ...this.dhcp.stats } : null,
      tftp: this.config.tftp.enabled ? { ...this.tftp.stats, refused: { ...this.tftp.stats.refused } } : null,
      store: this.storeWorker.counters,
      bootSlots: this.bootSlots.stats(),
      http: { platformBytesSent: [...this.platformSentBytes.values()].reduce((a, b) => a + b, 0) },
    };
  }

  get log(): Logger {
    return this.options.log;
  }

  /** Starts every service in order; if one fails, the ones already started are stopped. */
  async start(): Promise<void> {
    this.startedAt = Date.now();
    for (const s of this.services) {
      try {
        await s.start();
      } catch (err) {
        await this.stop();
        throw err;
      }
      this.started.push(s);
    }
    this.log.info({ event: 'headnode_started', services: this.started.map((s) => s.name) }, 'head node started');
  }

  /** Stops services in reverse order, then closes the registry. Safe to call twice. */
  async stop(): Promise<void> {
    const started = this.started.reverse();
    this.started = [];
    for (const s of started) {
      try {
        await s.stop();
      } catch (err) {
        this.log.error({ err, service: s.name }, 'service did not stop cleanly');
      }
    }
    this.store.close();
  }
}
