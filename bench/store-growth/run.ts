// Store growth: the registry's size through a simulated hour of DHCP with renewals. The real
// head node (HeadNode: DHCP server, store, store worker) runs in-process on a simulated clock
// and answers real DHCP packets over loopback UDP from a socket standing in for a relay agent
// (giaddr 127.0.0.1, so every reply comes back to it, RFC 2131 §4.1). Every node boots in a
// storm at the start (DISCOVER, REQUEST in SELECTING), then renews at the T1 the server's ACK
// names (option 58; RFC 2131 §4.4.5, T1 = half the lease) with a REQUEST carrying ciaddr and
// neither option 50 nor 54 (RENEWING, §4.3.2), for the whole simulated time. The store
// worker's retention by count per node (store.bootEventsPerNode) is set low enough that the
// hour crosses it, so its deletes are what keep the journal bounded.
//
// Every simulated 10 minutes it prints the exchanges so far, the rows in boot_events, leases and
// nodes, and the database and WAL sizes; at the end it checks that the last 20 simulated
// minutes grew the files by less than --max-growth-pct while events kept being written, and
// exits 1 when not.
//
//   node --import tsx bench/store-growth/run.ts
//   node --import tsx bench/store-growth/run.ts --nodes 200 --hours 2 --lease-seconds 120 --events-per-node 200
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { parseConfig } from '../../src/config/load.ts';
import type { DhcpPacket } from '../../src/dhcp/packet.ts';
import { HeadNode } from '../../src/headnode.ts';
import { silentLogger } from '../../src/log.ts';
import { walSizeLimit } from '../../src/store/db.ts';
import { Store } from '../../src/store/store.ts';
import { clientPacket, RelayAgent } from '../../test/dhcp-fixtures.ts';

const Flags = z.object({
  nodes: z.coerce.number().int().min(1).max(60_000),
  hours: z.coerce.number().positive().max(48),
  'lease-seconds': z.coerce.number().int().min(60).max(86_400),
  // The config's own bounds (src/config/schema.ts store.bootEventsPerNode).
  'events-per-node': z.coerce.number().int().min(100).max(10_000_000),
  'max-growth-pct': z.coerce.number().positive(),
  'in-flight': z.coerce.number().int().min(1).max(4096),
  speedup: z.coerce.number().positive().max(3600),
});
type Settings = z.infer<typeof Flags>;

function settingsOf(argv: string[]): Settings {
  const { values } = parseArgs({
    args: argv,
    options: {
      nodes: { type: 'string', default: '1000' },
      hours: { type: 'string', default: '1' },
      // A minute's lease renews every 30 s: a node writes ~4 events a minute, so the per-node
      // cap below is crossed about 25 minutes in and the last 20 minutes run past it.
      'lease-seconds': { type: 'string', default: '60' },
      'events-per-node': { type: 'string', default: '100' },
      'max-growth-pct': { type: 'string', default: '10' },
      'in-flight': { type: 'string', default: '256' },
      // Simulated seconds per wall second at most. The store worker keeps wall-clock time (it
      // wakes every second, indexes the journal's tail every 5 s, and prunes at most 100
      // chunks a wake: store-worker.ts, store-worker.mjs), so an hour run faster than this
      // would give its retention less time per event than the real hour does.
      speedup: { type: 'string', default: '30' },
    },
    strict: true,
  });
  const parsed = Flags.safeParse(values);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `--${i.path.join('.')}: ${i.message}`).join('; ');
    throw new Error(`bad flags: ${problems}`);
  }
  return parsed.data;
}

const D = { discover: 1, request: 3 } as const;
const SERVER_ID = '10.64.0.1';
const RELAY = '127.0.0.1';

/** The n-th simulated machine's MAC (locally administered, 52:54:00 as QEMU's). */
const macOf = (n: number): string => `52:54:00:${((n >> 16) & 255).toString(16).padStart(2, '0')}:${((n >> 8) & 255).toString(16).padStart(2, '0')}:${(n & 255).toString(16).padStart(2, '0')}`;

interface Machine {
  mac: string;
  /** The bound address once ACKed; null while booting. */
  ip: string | null;
  /** Simulated ms at which the next exchange is due. */
  dueAt: number;
}

interface Row {
  minute: number;
  exchanges: number;
  events: number;
  leases: number;
  nodes: number;
  dbBytes: number;
  walBytes: number;
  lastEventId: number;
  pruned: number;
}

/** The WAL's ceiling: walSizeLimit, plus as much again for what is appended before the worker restarts it. */
const walBound = 2 * walSizeLimit;
const fileSize = (f: string): number => (existsSync(f) ? statSync(f).size : 0);
const mib = (b: number): string => (b / 1048576).toFixed(2);

async function main(): Promise<void> {
  const s = settingsOf(process.argv.slice(2));
  const dir = mkdtempSync(join(tmpdir(), 'fleetboot-bench-store-growth-'));
  const cleanups: (() => Promise<void> | void)[] = [];
  const owner = { after: (fn: () => Promise<void> | void) => void cleanups.push(fn) };
  try {
    const agent = await RelayAgent.open(owner, RELAY);
    const sim = { at: Date.now() };
    const startAt = sim.at;
    const config = parseConfig(
      {
        dataDir: dir,
        apiTokenFile: join(dir, 'api-token'),
        platformImagesDir: join(dir, 'platforms'),
        http: { listen: '127.0.0.1', port: 0 },
        log: { level: 'silent' },
        dhcp: { mode: 'full', listen: RELAY, port: 0, relayReplyPort: agent.port, maxUnbootedDiscovered: Math.max(1024, s.nodes) },
        store: { bootEventsPerNode: s['events-per-node'] },
        networks: [
          {
            name: 'fleet',
            subnet: '10.64.0.0/16',
            serverAddress: SERVER_ID,
            gateway: '10.64.0.254',
            range: { start: '10.64.1.0', end: '10.64.255.250' },
            relayAddresses: [RELAY],
            leaseSeconds: s['lease-seconds'],
          },
        ],
      },
      dir,
      'bench',
    );
    const head = new HeadNode(config, { log: silentLogger, now: () => sim.at });
    await head.start();
    cleanups.push(() => head.stop());
    const dhcpPort = head.dhcp!.ports().dhcp;
    const dbFile = Store.fileIn(dir);
    const count = (table: 'boot_events' | 'leases' | 'nodes'): number => head.store.db.prepare(`SELECT count(*) FROM ${table}`).pluck().get() as number;
    const lastEventId = (): number => head.store.db.prepare('SELECT coalesce(max(id), 0) FROM boot_events').pluck().get() as number;

    console.log(
      `store growth: ${s.nodes} nodes, ${s.hours} simulated h, lease ${s['lease-seconds']} s (T1 ${s['lease-seconds'] / 2} s), ` +
        `store.bootEventsPerNode ${s['events-per-node']}, store.bootEventDays ${config.store.bootEventDays}, simulated time at most ${s.speedup}x wall time, ` +
        `bound: the database file grows < ${s['max-growth-pct']}% in the last 20 min and the WAL stays within ${mib(walBound)} MiB`,
    );
    console.log('sim min  exchanges  boot_events  leases  nodes  db MiB  wal MiB  pruned');

    // The storm: every machine sends its DISCOVER within the first 10 simulated seconds.
    const machines: Machine[] = Array.from({ length: s.nodes }, (_, i) => ({ mac: macOf(i + 1), ip: null, dueAt: startAt + Math.floor((i * 10_000) / s.nodes) }));
    let xid = 1;
    let exchanges = 0;
    const ask = (spec: Parameters<typeof clientPacket>[0]): Promise<DhcpPacket> => agent.exchange(clientPacket({ giaddr: RELAY, xid: ++xid, ...spec }), dhcpPort, 30_000);

    /** One exchange of `m`'s, at the simulated time it is due; sets when the next is due. */
    const step = async (m: Machine): Promise<void> => {
      if (m.ip === null) {
        const offer = await ask({ type: D.discover, mac: m.mac, model: 'ipxe-bios' });
        if (offer.options.messageType !== 'offer') throw new Error(`${m.mac}: DISCOVER got ${offer.options.messageType ?? 'no message type'}`);
        const ack = await ask({ type: D.request, mac: m.mac, model: 'ipxe-bios', requested: offer.yiaddr, serverId: SERVER_ID });
        if (ack.options.messageType !== 'ack') throw new Error(`${m.mac}: REQUEST (selecting) got ${ack.options.messageType ?? 'no message type'}`);
        m.ip = ack.yiaddr;
        m.dueAt = sim.at + (ack.options.renewalSeconds ?? s['lease-seconds'] / 2) * 1000;
      } else {
        const ack = await ask({ type: D.request, mac: m.mac, ciaddr: m.ip });
        if (ack.options.messageType !== 'ack') throw new Error(`${m.mac}: renewal of ${m.ip} got ${ack.options.messageType ?? 'no message type'}`);
        m.dueAt = sim.at + (ack.options.renewalSeconds ?? s['lease-seconds'] / 2) * 1000;
      }
      exchanges++;
    };

    const rows: Row[] = [];
    const report = async (minute: number): Promise<void> => {
      await head.dhcp!.settled();
      const row: Row = {
        minute,
        exchanges,
        events: count('boot_events'),
        leases: count('leases'),
        nodes: count('nodes'),
        dbBytes: fileSize(dbFile),
        walBytes: fileSize(`${dbFile}-wal`),
        lastEventId: lastEventId(),
        pruned: head.storeWorker.prunedEvents,
      };
      rows.push(row);
      console.log(
        `${String(minute).padStart(7)}  ${String(row.exchanges).padStart(9)}  ${String(row.events).padStart(11)}  ${String(row.leases).padStart(6)}  ${String(row.nodes).padStart(5)}  ${mib(row.dbBytes).padStart(6)}  ${mib(row.walBytes).padStart(7)}  ${String(row.pruned).padStart(6)}`,
      );
    };

    await report(0);
    const endAt = startAt + s.hours * 3_600_000;
    const tickMs = 1000;
    let nextReport = startAt + 600_000;
    const wallStart = performance.now();
    for (let at = startAt; at < endAt; at += tickMs) {
      const ahead = (at - startAt) / s.speedup - (performance.now() - wallStart);
      if (ahead > 0) await new Promise((r) => setTimeout(r, ahead));
      sim.at = at;
      const due = machines.filter((m) => m.dueAt <= at);
      for (let i = 0; i < due.length; i += s['in-flight']) await Promise.all(due.slice(i, i + s['in-flight']).map(step));
      if (at + tickMs >= nextReport) {
        sim.at = nextReport;
        await report(Math.round((nextReport - startAt) / 60_000));
        nextReport += 600_000;
      }
    }

    // Bounded: the database file 20 simulated minutes before the end against the end, while
    // the journal kept taking events and retention kept deleting them. The WAL is not part of
    // that figure: it grows until the store worker starts it over past walSizeLimit and
    // journal_size_limit cuts it back (store-worker.mjs "WAL checkpoints", db.ts), so its bound
    // is that limit plus what the writer appends before the worker's next wake.
    const last = rows[rows.length - 1]!;
    const before = [...rows].reverse().find((r) => r.minute <= last.minute - 20);
    if (!before) throw new Error('the run is shorter than 20 simulated minutes: nothing to compare');
    const growthPct = ((last.dbBytes - before.dbBytes) / before.dbBytes) * 100;
    const written = last.lastEventId - before.lastEventId;
    const pruned = last.pruned - before.pruned;
    const largestWal = Math.max(...rows.map((r) => r.walBytes));
    const cap = s.nodes * s['events-per-node'];
    console.log(
      `minutes ${before.minute}-${last.minute}: ${written} events written, ${pruned} deleted by retention; database file ${mib(before.dbBytes)} -> ${mib(last.dbBytes)} MiB ` +
        `(${growthPct >= 0 ? '+' : ''}${growthPct.toFixed(1)}%); largest WAL ${mib(largestWal)} MiB; boot_events ${last.events} rows (nodes x bootEventsPerNode = ${cap})`,
    );
    const problems: string[] = [];
    if (written === 0) problems.push('no events were written in the last 20 minutes');
    if (pruned === 0) problems.push('retention deleted nothing in the last 20 minutes: the per-node cap was not crossed (raise --hours or lower --events-per-node)');
    if (growthPct >= s['max-growth-pct']) problems.push(`the database file grew ${growthPct.toFixed(1)}% in the last 20 minutes (bound ${s['max-growth-pct']}%)`);
    if (largestWal > walBound) problems.push(`the WAL reached ${mib(largestWal)} MiB (bound ${mib(walBound)} MiB)`);
    if (problems.length > 0) {
      console.log(`NOT BOUNDED: ${problems.join('; ')}`);
      process.exitCode = 1;
    } else {
      console.log('bounded: yes');
    }
  } finally {
    for (const fn of cleanups.reverse()) await fn();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 2;
});
