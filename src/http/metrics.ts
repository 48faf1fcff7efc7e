// GET /metrics: the head node's counters in the Prometheus text exposition format, version
// 0.0.4 (prometheus/docs content/docs/instrumenting/exposition_formats.md). Every value is
// read at scrape time from what the services already keep (HeadNodeCounters, the DHCP
// server's packet counts, the registry): nothing is counted twice, and a packet costs one
// array increment (DhcpPacketCounts). The one metric fed as things happen is the boot-duration
// histogram (BootDurations), observed at each check-in. Names follow the Prometheus naming
// guide (content/docs/practices/naming.md): a `fleetboot_` prefix, base units in the name,
// `_total` on counters. Labels are bounded: per network, state, outcome or reason, never per MAC.
// docs/metrics.md lists every metric and where it comes from.
import { statSync } from 'node:fs';
import { Router } from 'express';
import { Counter, Gauge, Histogram, Registry, Summary } from 'prom-client';
import { waterfalls } from '../boot/waterfall.ts';
import { finishedStepStates, stepStates, type RolloutState } from '../rollout/journal.ts';
import { nodeStates } from '../store/nodes.ts';
import type { Store } from '../store/store.ts';
import type { HeadNodeCounters } from './admin-api.ts';
import { dhcpPacketOutcomes, dhcpPacketTypes, type DhcpPacketCounts, type DhcpPacketOutcome, type DhcpPacketType, type DhcpStats } from '../dhcp/server.ts';
import type { TftpStats } from '../tftp/server.ts';
import { requireBearer } from './auth.ts';

export interface MetricsDeps {
  store: Store;
  counters?: () => HeadNodeCounters;
  /** The API token (or a function giving the current one): scrapers send it as a bearer token. */
  apiToken: string | (() => string);
  /** Bytes of /os responses sent whole, by platform stamp (platforms/file-routes.ts). */
  platformSentBytes?: ReadonlyMap<string, number>;
  /** The configured networks' names: each gets a lease gauge, zero when it holds no lease. */
  networks: readonly string[];
  /** The DHCP server's packets by type and outcome; null (or absent) when DHCP is off. */
  dhcpPackets?: () => DhcpPacketCounts | null;
  /** Boot durations observed at check-ins; absent, the histogram is exposed empty. */
  bootDurations?: BootDurations;
  now?: () => number;
}

/** DHCP counters that are monotonic, by the `outcome` label they get (DhcpStats). */
const dhcpOutcomes: readonly (readonly [Exclude<keyof DhcpStats, 'sendQueued' | 'received' | 'replies' | 'reclaimed'>, string])[] = [
  ['malformed', 'malformed'],
  ['ignored', 'ignored'],
  ['kernelDrops', 'kernel_dropped'],
  ['unknownCapped', 'unknown_capped'],
  ['poolExhausted', 'pool_exhausted'],
];

/** TFTP transfer outcomes (TftpStats). */
const tftpOutcomes: readonly (readonly [keyof TftpStats, string])[] = [
  ['served', 'served'],
  ['aborted', 'aborted'],
  ['timedOut', 'timed_out'],
  ['failed', 'failed'],
  ['lifetimeExceeded', 'lifetime_exceeded'],
];

/** TFTP requests answered with an error before any transfer (TftpStats), besides `refused` by reason. */
const tftpRejections: readonly (readonly [keyof TftpStats, string])[] = [
  ['notFound', 'not_found'],
  ['busy', 'busy'],
  ['addressLimited', 'address_limited'],
  ['malformed', 'malformed'],
];

/** Rollouts not over yet: their steps are the progress an operator watches. */
const activeRolloutStates: ReadonlySet<RolloutState> = new Set(['running', 'waiting_promote', 'paused']);

/** Bucket bounds (seconds) for reboot-to-verified: a ramdisk boot takes seconds to minutes. */
const bootBuckets = [5, 10, 20, 30, 60, 90, 120, 180, 300, 600, 1200];

/**
 * Bucket bounds (seconds) for a whole boot from the timeline, power-on or first DISCOVER to
 * check-in: a ramdisk boot takes from seconds (a VM) to tens of minutes (a server's firmware
 * and memory test, a slow image over a busy link).
 */
const wholeBootBuckets = [10, 20, 30, 45, 60, 90, 120, 180, 240, 300, 450, 600, 900, 1200, 1800, 2700, 3600];

/** Events of a node's timeline read at check-in: a boot's DHCP, fetches and modules fit many times over. */
const BOOT_TIMELINE_EVENTS = 200;

/**
 * The (type, outcome) pairs the DHCP server can produce (dhcp/server.ts), exposed at 0 before
 * they happen (Prometheus instrumentation practices, "Avoid missing metrics"); a pair not
 * listed here still shows once counted.
 */
const dhcpPacketPairs: Readonly<Record<DhcpPacketType, readonly DhcpPacketOutcome[]>> = {
  discover: ['offered', 'ignored', 'capped', 'exhausted', 'failed'],
  request: ['acked', 'naked', 'recorded', 'ignored', 'capped', 'failed'],
  decline: ['recorded', 'ignored', 'failed'],
  release: ['recorded', 'ignored', 'failed'],
  inform: ['acked', 'ignored', 'capped', 'failed'],
  other: ['ignored', 'failed'],
  malformed: ['dropped'],
  unknown: ['dropped'],
};

/**
 * `fleetboot_boot_duration_seconds`: how long each boot took, from the node's timeline
 * (boot/waterfall.ts, docs/timeline.md), observed when the check-in that ends it arrives. The
 * check-in route calls checkedIn; GET /metrics exposes the histogram.
 */
export class BootDurations {
  readonly histogram = new Histogram({
    name: 'fleetboot_boot_duration_seconds',
    help: 'Boots from the timeline, power-on or first DHCP DISCOVER to the check-in that ends them, observed at that check-in.',
    buckets: wholeBootBuckets,
    registers: [],
  });

  constructor(private readonly store: Store) {}

  /** Observes the boot the node's newest check-in (already recorded) ended; returns its seconds, or null when it ended none. */
  checkedIn(nodeId: number): number | null {
    const events = this.store.events.timeline(nodeId, BOOT_TIMELINE_EVENTS);
    const checkin = events.findLast((e) => e.event === 'checkin');
    const boot = waterfalls(events).at(-1);
    // A segment holds its event's own detail object (waterfall.ts toWaterfall): the newest boot
    // ends at this check-in only if its last segment is that event. A check-in with no boot
    // since the last one (the agent reporting again) ends none.
    if (!checkin || !boot?.complete || boot.totalMs === null || boot.segments.at(-1)?.detail !== checkin.detail) return null;
    const seconds = boot.totalMs / 1000;
    this.histogram.observe(seconds);
    return seconds;
  }
}

/**
 * A summary without quantiles (`_sum` and `_count` only, exposition_formats.md "Histograms and
 * summaries") whose figures are read at scrape time: prom-client's Summary counts only its own
 * observe calls, and these come from another thread's reports.
 */
class SummaryOf extends Summary<'mode'> {
  constructor(
    private readonly metricName: string,
    help: string,
    registry: Registry,
    private readonly read: () => readonly { mode: string; sum: number; count: number }[],
  ) {
    super({ name: metricName, help, labelNames: ['mode'], percentiles: [], registers: [registry] });
  }

  override async get(): ReturnType<Summary<'mode'>['get']> {
    const base = await super.get();
    return {
      ...base,
      values: this.read().flatMap(({ mode, sum, count }) => [
        { metricName: `${this.metricName}_sum`, labels: { mode }, value: sum },
        { metricName: `${this.metricName}_count`, labels: { mode }, value: count },
      ]),
    };
  }
}

/** A Registry (not prom-client's global one) whose values come from the head node at collect time. */
export function metricsRegistry(deps: MetricsDeps): Registry {
  const registry = new Registry();
  const now = deps.now ?? Date.now;
  const counters = (): HeadNodeCounters | null => (deps.counters ? deps.counters() : null);
  // One unlabelled counter or gauge holding a value the head node keeps; 0 when the service is off.
  const counterOf = (name: string, help: string, read: (c: HeadNodeCounters) => number | undefined): void => {
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        const c = counters();
        this.inc((c && read(c)) ?? 0);
      },
    });
  };
  // One counter with one label, a value per label value (each read as 0 when the service is off).
  const countsOf = (name: string, help: string, label: string, read: (c: HeadNodeCounters) => [string, number][]): void => {
    new Counter({
      name,
      help,
      labelNames: [label],
      registers: [registry],
      collect() {
        this.reset();
        const c = counters();
        if (c) for (const [value, n] of read(c)) this.inc({ [label]: value }, n);
      },
    });
  };
  const gaugeOf = (name: string, help: string, read: (c: HeadNodeCounters) => number | undefined): void => {
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        const c = counters();
        this.set((c && read(c)) ?? 0);
      },
    });
  };

  counterOf('fleetboot_dhcp_received_packets_total', 'DHCP datagrams received, including malformed ones and those the kernel dropped.', (c) => c.dhcp?.received);
  new Counter({
    name: 'fleetboot_dhcp_packets_total',
    help: 'DHCP datagrams received, by message type and what the server decided (offered, acked, naked, recorded, ignored, capped, exhausted, dropped, failed).',
    labelNames: ['type', 'outcome'] as const,
    registers: [registry],
    collect() {
      this.reset();
      const counts = deps.dhcpPackets?.() ?? null;
      for (const type of dhcpPacketTypes) {
        const expected = dhcpPacketPairs[type];
        for (const outcome of dhcpPacketOutcomes) {
          const n = counts?.get(type, outcome) ?? 0;
          if (n > 0 || expected.includes(outcome)) this.inc({ type, outcome }, n);
        }
      }
    },
  });
  countsOf('fleetboot_dhcp_unanswered_packets_total', 'DHCP datagrams left unanswered, by why.', 'outcome', (c) =>
    dhcpOutcomes.map(([key, outcome]) => [outcome, c.dhcp?.[key] ?? 0]),
  );
  countsOf('fleetboot_dhcp_replies_total', 'DHCP replies sent, and replies lost (send failed for good or retry queue full).', 'outcome', (c) => [
    ['sent', c.dhcp?.replies ?? 0],
    ['lost', c.dhcp?.sendErrors ?? 0],
  ]);
  counterOf('fleetboot_dhcp_send_retries_total', 'DHCP sends that met a full socket buffer and were queued to be tried again.', (c) => c.dhcp?.sendRetries);
  counterOf('fleetboot_dhcp_leases_reclaimed_total', 'Leases taken back from a never-booted or unregistered client for another one.', (c) => c.dhcp?.reclaimed);
  gaugeOf('fleetboot_dhcp_send_queue_replies', 'DHCP replies waiting in the send retry queue now.', (c) => c.dhcp?.sendQueued);
  new Gauge({
    name: 'fleetboot_dhcp_bound_leases',
    help: 'Unexpired bound leases per network, from the registry (offers are not written there).',
    labelNames: ['network'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const network of deps.networks) this.set({ network }, 0);
      const at = now();
      for (const l of deps.store.leases.list()) {
        if (l.state === 'bound' && l.expiresAt > at) this.inc({ network: l.network });
      }
    },
  });

  counterOf('fleetboot_tftp_requests_total', 'TFTP read requests received.', (c) => c.tftp?.requests);
  countsOf('fleetboot_tftp_transfers_total', 'TFTP transfers ended, by outcome.', 'outcome', (c) =>
    tftpOutcomes.map(([key, outcome]) => [outcome, (c.tftp?.[key] as number | undefined) ?? 0]),
  );
  countsOf('fleetboot_tftp_rejected_requests_total', 'TFTP requests answered with an error packet instead of a transfer, by reason.', 'reason', (c) => [
    ...tftpRejections.map(([key, reason]): [string, number] => [reason, (c.tftp?.[key] as number | undefined) ?? 0]),
    ...Object.entries(c.tftp?.refused ?? {}).map(([reason, n]): [string, number] => [`refused_${reason}`, n]),
  ]);
  counterOf('fleetboot_tftp_sent_bytes_total', 'File bytes sent by finished TFTP transfers.', (c) => c.tftp?.bytesServed);
  counterOf('fleetboot_tftp_retransmits_total', 'TFTP DATA packets sent again after a timeout (RFC 1350 section 6).', (c) => c.tftp?.retransmits);
  gaugeOf('fleetboot_tftp_active_transfers', 'TFTP transfers in progress now.', (c) => c.tftp?.active);

  new Counter({
    name: 'fleetboot_http_platform_sent_bytes_total',
    help: 'Bytes of platform files (/os/...) sent in responses that finished, by platform stamp.',
    labelNames: ['platform'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const [platform, n] of deps.platformSentBytes ?? []) this.inc({ platform }, n);
    },
  });

  new Gauge({
    name: 'fleetboot_nodes',
    help: 'Registered nodes by state.',
    labelNames: ['state'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const state of nodeStates) this.set({ state }, 0);
      for (const n of deps.store.nodes.list()) this.inc({ state: n.state });
    },
  });
  registry.registerMetric((deps.bootDurations ?? new BootDurations(deps.store)).histogram);
  new Gauge({
    name: 'fleetboot_boots_in_flight',
    help: 'Nodes on their way up now (state setting_up or rebooting).',
    registers: [registry],
    collect() {
      this.set(deps.store.nodes.list().filter((n) => n.state === 'setting_up' || n.state === 'rebooting').length);
    },
  });
  // Boot storm admission (boot/boot-slots.ts): how full the slots are, who waits, and why slots freed.
  gaugeOf('fleetboot_boot_slots_limit', 'Nodes allowed to fetch their platform at once (boot.admission; 0: no limit).', (c) => c.bootSlots?.limit);
  gaugeOf('fleetboot_boot_slots_in_use', 'Nodes holding a boot slot now (fetching their platform files).', (c) => c.bootSlots?.inFlight);
  gaugeOf('fleetboot_boot_slot_waiting_nodes', 'Nodes told to wait for a boot slot that are still asking.', (c) => c.bootSlots?.waiting);
  countsOf('fleetboot_boot_admissions_total', 'Boot script requests, by whether the node got its boot script or the wait script.', 'outcome', (c) => [
    ['admitted', c.bootSlots?.admitted ?? 0],
    ['deferred', c.bootSlots?.deferred ?? 0],
  ]);
  countsOf('fleetboot_boot_slots_freed_total', 'Boot slots freed, by why: the files were sent, the node checked in, or it went idle.', 'reason', (c) => [
    ['downloaded', c.bootSlots?.freedDownloaded ?? 0],
    ['checked_in', c.bootSlots?.freedCheckedIn ?? 0],
    ['idle', c.bootSlots?.freedIdle ?? 0],
  ]);
  // The same measure the rollout planner estimates from (rollout/verbs.ts typicalBootSeconds):
  // a verified step's power cycle to the check-in that verified it.
  new Histogram({
    name: 'fleetboot_rollout_boot_duration_seconds',
    help: 'Reboot-to-verified time of rollout steps, from the rollout journal (every boot, from the timeline: fleetboot_boot_duration_seconds).',
    buckets: bootBuckets,
    registers: [registry],
    collect() {
      this.reset();
      // reset() drops the series; zero() puts it back, so an empty history reads as count 0.
      this.zero({});
      for (const r of deps.store.rollouts.list()) {
        for (const s of deps.store.rollouts.steps(r.id)) {
          if (s.state === 'verified' && s.rebootAt !== null && s.finishedAt !== null) this.observe((s.finishedAt - s.rebootAt) / 1000);
        }
      }
    },
  });
  new Gauge({
    name: 'fleetboot_rollout_steps',
    help: 'Steps of rollouts not yet over (running, waiting for promote, paused), by step state.',
    labelNames: ['state'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const state of stepStates) this.set({ state }, 0);
      for (const r of deps.store.rollouts.list()) {
        if (!activeRolloutStates.has(r.state)) continue;
        for (const s of deps.store.rollouts.steps(r.id)) this.inc({ state: s.state });
      }
    },
  });
  new Gauge({
    name: 'fleetboot_rollout_progress_ratio',
    help: 'Of the steps of rollouts not yet over (running, waiting for promote, paused), the share that is over.',
    registers: [registry],
    collect() {
      let total = 0;
      let done = 0;
      for (const r of deps.store.rollouts.list()) {
        if (!activeRolloutStates.has(r.state)) continue;
        for (const s of deps.store.rollouts.steps(r.id)) {
          total++;
          if (finishedStepStates.has(s.state)) done++;
        }
      }
      this.set(total === 0 ? 0 : done / total);
    },
  });

  new Gauge({
    name: 'fleetboot_store_wal_bytes',
    help: 'Size of the registry write-ahead log file now (SQLite wal.html).',
    registers: [registry],
    collect() {
      try {
        this.set(statSync(`${deps.store.db.name}-wal`).size);
      } catch {
        // No -wal file: SQLite removed it at the last close or never made one.
        this.set(0);
      }
    },
  });
  counterOf('fleetboot_store_checkpointed_frames_total', 'WAL frames copied back into the database by checkpoints.', (c) => c.store.checkpointedFrames);
  counterOf('fleetboot_store_wal_restarts_total', 'Checkpoints that restarted the WAL from its beginning.', (c) => c.store.walRestarts);
  new SummaryOf('fleetboot_store_checkpoint_seconds', 'Time spent in WAL checkpoints by the store worker, by checkpoint mode (a pass is PASSIVE, then RESTART when the WAL grew too long).', registry, () => {
    const s = counters()?.store;
    return [
      { mode: 'passive', sum: s?.checkpointSeconds ?? 0, count: s?.checkpoints ?? 0 },
      { mode: 'restart', sum: s?.restartCheckpointSeconds ?? 0, count: s?.restartCheckpoints ?? 0 },
    ];
  });
  gaugeOf('fleetboot_store_last_checkpoint_duration_seconds', 'How long the last WAL checkpoint pass took, RESTART included; 0 before the first.', (c) => c.store.lastCheckpointSeconds ?? 0);
  gaugeOf('fleetboot_store_last_checkpoint_timestamp_seconds', 'When the last WAL checkpoint pass ended, in seconds since the Unix epoch; 0 before the first.', (c) =>
    c.store.lastCheckpointAt === null ? 0 : Date.parse(c.store.lastCheckpointAt) / 1000,
  );
  counterOf('fleetboot_store_indexed_boot_events_total', 'Boot events moved into the per-node index.', (c) => c.store.indexedEvents);
  counterOf('fleetboot_store_pruned_boot_events_total', 'Boot events deleted by retention.', (c) => c.store.prunedEvents);
  new Gauge({
    name: 'fleetboot_start_time_seconds',
    help: 'When the head node started, in seconds since the Unix epoch.',
    registers: [registry],
    collect() {
      const c = counters();
      if (c) this.set(Date.parse(c.startedAt) / 1000);
    },
  });
  return registry;
}

/** GET /metrics behind the API token as `Authorization: Bearer` (Prometheus scrape_config `authorization`). */
export function metricsRoutes(deps: MetricsDeps): Router {
  const registry = metricsRegistry(deps);
  const r = Router();
  r.get('/metrics', requireBearer(deps.apiToken), (_req, res, next) => {
    registry.metrics().then(
      (text) => {
        res.set('Content-Type', registry.contentType).send(text);
      },
      (err: unknown) => next(err),
    );
  });
  return r;
}
