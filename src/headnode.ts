// One head node: the registry plus every server, started and stopped together. The CLI's
// `serve` runs one; tests run one in-process on ephemeral ports.
import { mkdirSync } from 'node:fs';
import { BootTemplates } from './boot/templates.ts';
import type { FleetbootConfig } from './config/schema.ts';
import { ensureTokenFile } from './config/token.ts';
import { HttpServer } from './http/server.ts';
import type { Logger } from './log.ts';
import { Store } from './store/store.ts';

/** Something the head node starts and stops (DHCP, TFTP, HTTP, background jobs). */
export interface Service {
  readonly name: string;
  start(): Promise<unknown>;
  stop(): Promise<void>;
}

export interface HeadNodeOptions {
  log: Logger;
  now?: () => number;
}

export class HeadNode {
  readonly store: Store;
  readonly templates: BootTemplates;
  readonly http: HttpServer;
  readonly apiToken: string;
  private readonly services: Service[] = [];
  private started: Service[] = [];

  constructor(
    readonly config: FleetbootConfig,
    private readonly options: HeadNodeOptions,
  ) {
    mkdirSync(config.dataDir, { recursive: true });
    mkdirSync(config.platformImagesDir, { recursive: true });
    this.apiToken = ensureTokenFile(config.apiTokenFile);
    this.store = Store.open(Store.fileIn(config.dataDir), options.now ? { now: options.now } : {});
    this.templates = new BootTemplates(config.templatesDir ?? 'boot-templates');
    this.http = new HttpServer({ config, store: this.store, templates: this.templates, log: options.log, apiToken: this.apiToken });
    this.services.push({ name: 'http', start: () => this.http.start(), stop: () => this.http.stop() });
  }

  get log(): Logger {
    return this.options.log;
  }

  /** Starts every service in order; if one fails, the ones already started are stopped. */
  async start(): Promise<void> {
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
