// The express app: boot routes for nodes, the admin API for operators. `http/` only
// parses, calls and formats; decisions live in the modules it calls.
import express, { type Express } from 'express';
import { noContribution, type NodeContributionProvider } from '../boot/plan.ts';
import { BootSlots, configuredSlotLimit } from '../boot/boot-slots.ts';
import { nodeScriptRoutes } from '../boot/script-route.ts';
import type { BootTemplates } from '../boot/templates.ts';
import { platformFileRoutes } from '../platforms/file-routes.ts';
import type { FleetbootConfig } from '../config/schema.ts';
import type { Logger } from '../log.ts';
import type { Mac } from '../mac.ts';
import type { Store } from '../store/store.ts';
import { adminApi, type HeadNodeCounters } from './admin-api.ts';
import { requireBearer } from './auth.ts';
import { bootRoutes } from './boot-routes.ts';
import { ipxeRoutes } from './ipxe-routes.ts';
import { BootDurations, metricsRoutes } from './metrics.ts';
import type { DhcpPacketCounts } from '../dhcp/server.ts';
import { errorHandler, sendError } from './errors.ts';
import { nodeAdminRoutes, nodeRoutes } from './node-api.ts';
import { rateLimit } from './rate-limit.ts';
import { rolloutRoutes } from './rollout-api.ts';
import { nodeKeysIn } from '../nodeconfig/secrets.ts';
import type { DriverFactory } from '../rollout/node-power.ts';
import { dashboardRoutes } from './dashboard/index.ts';
import type { LiveFeed } from './dashboard/live.ts';
import { defaultSessionLimits, SessionStore } from './dashboard/session.ts';
import { openApiDocument } from './openapi.ts';

export interface HttpDeps {
  config: FleetbootConfig;
  store: Store;
  templates: BootTemplates;
  log: Logger;
  /** The admin API's bearer token, or a function giving the current one (it follows `token rotate`). */
  apiToken: string | (() => string);
  /** Per-node boot args and modules for the boot plan (nodeconfig); none when absent. */
  nodeContribution?: NodeContributionProvider;
  /** The head node's service counters, for GET /api/v1/counters. */
  counters?: () => HeadNodeCounters;
  /** Told after every accepted check-in (the rollout service judges boots then). */
  onCheckin?: (nodeId: number) => void;
  /** The DHCP server's packets by type and outcome, for GET /metrics; null when DHCP is off. */
  dhcpPackets?: () => DhcpPacketCounts | null;
  /** Told after a rollout verb wrote the journal, so the rollout service acts on it now. */
  onRolloutChange?: () => void;
  /** The dashboard's live feed; the dashboard is served at `/` when given. */
  live?: LiveFeed;
  /** Builds a node's power driver for dashboard actions (tests: fakes). */
  powerDriverFor?: DriverFactory;
  /**
   * Under ProxyDHCP: the MAC the proxy exchange saw claim an address (dhcp/proxy-addresses.ts).
   * HTTP boot steps attributed by source address ask it after static addresses and leases.
   */
  proxyMacOf?: (ip: string) => Mac | undefined;
  /** Boot storm admission (boot/boot-slots.ts); made from `boot.admission` when not given. */
  bootSlots?: BootSlots;
  /** Bytes of /os responses sent whole, by platform stamp; the head node's counters read it too. */
  platformSentBytes?: Map<string, number>;
}

/** The boot slots `boot.admission` asks for, the `auto` limit read from the DHCP interfaces' link speed. */
export function bootSlotsFor(config: FleetbootConfig, now: () => number): BootSlots {
  const a = config.boot.admission;
  return new BootSlots({ limit: configuredSlotLimit(config), holdSeconds: a.holdSeconds, retryMinSeconds: a.retryMinSeconds, retryMaxSeconds: a.retryMaxSeconds, now });
}

export function createApp(deps: HttpDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', 'strong');
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  // Boot scripts and check-ins cost a registry lookup (and a write) per request, with no
  // credential to refuse a flood by: a per-address token bucket (rate-limit.ts) goes first.
  app.use(
    rateLimit(
      deps.config.http.rateLimit,
      (req) => (req.method === 'GET' && /^\/boot\/[^/]+\.ipxe$/.test(req.path)) || (req.method === 'POST' && req.path === '/api/v1/nodes/checkin'),
      (req, retryAfter) => deps.log.warn({ event: 'http_rate_limited', address: req.socket.remoteAddress, path: req.path, retryAfter }, 'request over the per-address rate limit'),
    ),
  );
  app.use(bootRoutes(deps));
  const bootSlots = deps.bootSlots ?? bootSlotsFor(deps.config, deps.store.now);
  app.use(nodeScriptRoutes({ ...deps, bootSlots, nodeContribution: deps.nodeContribution ?? noContribution }));
  // Counted once per response, read by GET /metrics.
  const platformSentBytes = deps.platformSentBytes ?? new Map<string, number>();
  app.use(platformFileRoutes({ ...deps, bootSlots, sentBytes: platformSentBytes }));
  app.use(ipxeRoutes(deps));
  // Observed at each check-in from the node's timeline, exposed by GET /metrics.
  const bootDurations = new BootDurations(deps.store);
  app.use(
    metricsRoutes({
      store: deps.store,
      platformSentBytes,
      apiToken: deps.apiToken,
      networks: deps.config.networks.map((n) => n.name),
      bootDurations,
      ...(deps.counters ? { counters: deps.counters } : {}),
      ...(deps.dhcpPackets ? { dhcpPackets: deps.dhcpPackets } : {}),
    }),
  );
  // Node-facing routes (agent, config modules, check-in) before the bearer-token admin API.
  const nodeKeys = nodeKeysIn(deps.config.dataDir);
  const onCheckin = (nodeId: number): void => {
    try {
      bootDurations.checkedIn(nodeId);
    } catch (err) {
      // A metric never fails a check-in that is already recorded.
      deps.log.warn({ err, event: 'boot_duration', node: nodeId }, 'could not time the boot this check-in ended');
    }
    bootSlots.checkedIn(nodeId);
    deps.onCheckin?.(nodeId);
  };
  app.use(nodeRoutes({ ...deps, onCheckin }, nodeKeys));
  // The API description is no secret and tooling fetches it before it has a token: no bearer.
  const apiDocument = openApiDocument('1');
  app.get('/api/v1/openapi.json', (_req, res) => {
    res.json(apiDocument);
  });
  app.use(
    '/api/v1',
    express.json({ limit: '1mb' }),
    requireBearer(deps.apiToken),
    adminApi(deps.store, deps.counters),
    nodeAdminRoutes(deps, nodeKeys),
    rolloutRoutes({ store: deps.store, log: deps.log, bootSlotLimit: bootSlots.limit, ...(deps.onRolloutChange ? { onChange: deps.onRolloutChange } : {}) }),
  );
  if (deps.live) {
    const apiToken = typeof deps.apiToken === 'string' ? ((t: string) => () => t)(deps.apiToken) : deps.apiToken;
    const sessions = new SessionStore(apiToken, defaultSessionLimits, deps.store.now);
    // `fleetboot dashboard-url`: a one-time login link, asked for with the bearer token.
    app.post('/api/v1/dashboard/login-links', requireBearer(deps.apiToken), (_req, res) => {
      const link = sessions.createLoginLink();
      deps.log.info({ event: 'dashboard_login_link' }, 'one-time dashboard login link issued');
      res.status(201).json({ path: `/ui/login/${link.token}`, expiresAt: new Date(link.expiresAt).toISOString() });
    });
    app.use(
      dashboardRoutes({
        config: deps.config,
        store: deps.store,
        log: deps.log,
        apiToken,
        live: deps.live,
        sessions,
        ...(deps.counters ? { counters: deps.counters } : {}),
        ...(deps.onRolloutChange ? { onRolloutChange: deps.onRolloutChange } : {}),
        ...(deps.powerDriverFor ? { powerDriverFor: deps.powerDriverFor } : {}),
      }),
    );
  }
  app.use((req, res) => sendError(res, 404, 'not_found', `no route for ${req.method} ${req.path}`));
  app.use(errorHandler(deps.log));
  return app;
}
