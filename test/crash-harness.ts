// The kill -9 harness: runs a real fleetboot process (the CLI, `fleetboot serve`, or a rollout
// orchestrator of its own), SIGKILLs it after a random delay drawn uniformly over the
// workload's duration (measured by one run left alone), reopens what it left and checks that
// nothing is lost or half-written. Used by test/crash-harness.test.ts (a few runs per
// scenario, every `npm test`) and bench/crash/run.ts (hundreds). docs/hardening.md "kill -9"
// says what each scenario proves.
//
// Why a kill can lose nothing here: SQLite in WAL mode with synchronous=NORMAL keeps every
// committed transaction across a process crash (https://sqlite.org/pragma.html#pragma_synchronous:
// only a power loss can roll back the last ones), and rename(2) replaces a name atomically, which
// the platform import relies on (src/platforms/import.ts).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa, type ResultPromise } from 'execa';
import type { FleetFile } from '../bench/crash/rollout-child.ts';
import { seededRandom } from '../fuzz/mutate.ts';
import { parseMac, type Mac } from '../src/mac.ts';
import { nicRowsFor, parseNodeNetwork } from '../src/nodeconfig/network.ts';
import { setupNode } from '../src/nodeconfig/lifecycle.ts';
import { nodeKeysIn } from '../src/nodeconfig/secrets.ts';
import { silentLogger } from '../src/log.ts';
import { importSmartosTarball } from '../src/platforms/import.ts';
import { platformsRoot, sweepPlatformFolders } from '../src/platforms/layout.ts';
import { finishedStepStates } from '../src/rollout/journal.ts';
import { StoreWorker } from '../src/store/store-worker.ts';
import { Store } from '../src/store/store.ts';
import { cliPath, repoRoot } from './fixtures.ts';
import { newPlatform, oldPlatform } from './rollout-world.ts';
import { sha256Hex, writeLinuxPlatform, writeSmartosTarball } from './platform-fixtures.ts';

export const scenarioNames = ['import-tarball', 'import-folder', 'dhcp-burst', 'node-setup', 'rollout-step', 'event-indexing'] as const;
export type ScenarioName = (typeof scenarioNames)[number];

/** Scenarios that need root: their head node runs in a network namespace of the harness's own. */
export const rootScenarios: ReadonlySet<ScenarioName> = new Set(['dhcp-burst']);

export interface ScenarioReport {
  scenario: ScenarioName;
  runs: number;
  /** Runs whose process the SIGKILL stopped (the others had finished before the delay). */
  kills: number;
  /** Where the kills landed, by the phase the checks saw (e.g. "mid-work"). */
  landed: Record<string, number>;
  /** Failed checks: check name -> the first few messages. */
  failures: Record<string, string[]>;
  /** Records the checks looked at across all runs (leases ACKed, platform files, events...). */
  records: number;
  /** The length of a run left alone. */
  workloadMs: number;
  /**
   * The kill delays were drawn uniformly from this range: ms after the run's work began where
   * the scenario sees that moment (`fromWorkStart`), else ms after the process started.
   */
  killWindowMs: [number, number];
  fromWorkStart: boolean;
  /** The phase that counts as a kill inside the work (null: the scenario has none to tell). */
  midWork: string | null;
}

export interface HarnessOptions {
  runs: number;
  seed: number;
  scenarios: readonly ScenarioName[];
  /** A folder the harness owns; everything it makes goes inside it. */
  workDir: string;
  /** Network namespace name for the DHCP scenario (created and deleted by the harness). */
  namespace: string;
  progress?: (line: string) => void;
  /**
   * Keep drawing kills after `runs` until one lands mid-work (the scenario's `midWork` phase),
   * for at most this many runs in all; so a run of the harness never passes having killed
   * nothing inside the work.
   */
  maxRunsForMidWork?: number;
}

/** What one run's checks found: the phase the kill landed in, and the failed checks. */
interface RunOutcome {
  phase: string;
  failed: { check: string; message: string }[];
  records: number;
}

interface Scenario {
  /**
   * The process spends its first moments loading fleetboot's modules (a CLI command, a
   * rollout orchestrator, a head node): kills are drawn over the rest.
   */
  skipsStartup: boolean;
  /**
   * The run sees when its work begins (an import's work folder appears, the first ACK
   * arrives, the first rollout tick is journaled, the first index batch commits): the kill's
   * timer is armed at that moment, in each run, so start-up time and load do not move it.
   */
  fromWorkStart: boolean;
  /** The phase `outcome.phase` names when the kill landed inside the work. */
  midWork: string | null;
  /**
   * Runs the workload once; kills it `killAfterMs` after its work began (`fromWorkStart`) or
   * after the process started (null: lets it finish). `workStartMs`: when the run's work
   * began (ms after the process started), where it is seen.
   */
  run(dir: string, killAfterMs: number | null): Promise<{ killed: boolean; elapsedMs: number; workStartMs?: number; outcome: RunOutcome }>;
  close(): Promise<void>;
}

/** Collects failed checks without stopping at the first one. */
class Checks {
  readonly failed: { check: string; message: string }[] = [];
  records = 0;
  that(check: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.failed.push({ check, message: err instanceof Error ? err.message.split('\n')[0]! : String(err) });
    }
  }
}

const node = process.execPath;

function macOf(text: string): Mac {
  const mac = parseMac(text);
  if (!mac) throw new Error(`not a MAC: ${text}`);
  return mac;
}
// `--import tsx` is resolved from the working folder: children that load TypeScript run in the repo.
const tsx = ['--import', 'tsx'];

/** Kills `child` with SIGKILL after `ms` unless it ended first; resolves once it has ended. */
async function killAfter(child: ResultPromise, ms: number | null): Promise<{ killed: boolean; elapsedMs: number; stdout: string; stderr: string; exitCode: number | undefined }> {
  const started = performance.now();
  const timer = ms === null ? null : setTimeout(() => child.kill('SIGKILL'), ms);
  const r = await child;
  if (timer) clearTimeout(timer);
  return { killed: r.signal === 'SIGKILL', elapsedMs: performance.now() - started, stdout: String(r.stdout), stderr: String(r.stderr), exitCode: r.exitCode };
}

/** The store reopened after a kill: SQLite's own check of every page and index, and the foreign keys. */
function checkDatabase(c: Checks, store: Store): void {
  c.that('integrity_check', () => assert.deepEqual(store.db.pragma('integrity_check', { simple: true }), 'ok'));
  c.that('foreign_key_check', () => assert.deepEqual(store.db.pragma('foreign_key_check'), []));
}

function writeConfig(dir: string, extra: Record<string, unknown> = {}): string {
  const file = join(dir, 'fleetboot.json');
  writeFileSync(file, JSON.stringify({ dataDir: dir, platformImagesDir: join(dir, 'platform-images'), http: { listen: '127.0.0.1', port: 0 }, log: { level: 'silent' }, ...extra }));
  return file;
}

/** Bytes that gzip cannot shrink, so the import's hashing and extraction take real time. */
function incompressible(seed: string, bytes: number): Buffer {
  const out = Buffer.alloc(bytes);
  let block = createHash('sha512').update(seed).digest();
  for (let at = 0; at < bytes; at += block.length) {
    block.copy(out, at);
    block = createHash('sha512').update(block).digest();
  }
  return out;
}

/**
 * Runs `child` (see killAfter) while watching `osDir` for the import's work folder: the time it
 * appears is when the import's work began.
 */
async function killImportAfter(child: ResultPromise, ms: number | null, osDir: string): ReturnType<typeof killAfterWatched> {
  return killAfterWatched(child, ms, () => existsSync(osDir) && readdirSync(osDir).some((f) => f.startsWith('.import-')));
}

/**
 * Runs `child`, polling `started` until the work has begun; then SIGKILLs it `ms` later
 * (null: lets it finish). A child that ends before its work begins is not killed.
 */
async function killAfterWatched(child: ResultPromise, ms: number | null, started: () => boolean) {
  const t0 = performance.now();
  let workStartMs: number | undefined;
  let timer: NodeJS.Timeout | undefined;
  const poll = setInterval(() => {
    if (workStartMs !== undefined || !started()) return;
    workStartMs = performance.now() - t0;
    clearInterval(poll);
    if (ms !== null) timer = setTimeout(() => child.kill('SIGKILL'), ms);
  }, 2);
  try {
    const r = await killAfter(child, null);
    return { ...r, workStartMs };
  } finally {
    clearInterval(poll);
    clearTimeout(timer);
  }
}

/**
 * After an import was killed: restart (the head node's start-up sweep), then every platform
 * listed has all its files with the digests its row holds, no folder is left that no row
 * names, and no work folder. Returns the phase: "no trace", "mid-work" (a folder was left
 * for the sweep) or "committed".
 */
function checkPlatforms(c: Checks, dir: string, committed: (store: Store) => boolean): string {
  const images = join(dir, 'platform-images');
  const osDir = platformsRoot(images);
  const store = Store.open(Store.fileIn(dir));
  try {
    checkDatabase(c, store);
    const rows = new Set(store.platforms.list().map((p) => p.folder));
    const before = existsSync(osDir) ? readdirSync(osDir) : [];
    const leftover = before.filter((f) => !rows.has(f));
    const phase = committed(store) ? 'committed' : leftover.length > 0 ? 'mid-work' : 'no trace';
    sweepPlatformFolders(store, images);
    for (const p of store.platforms.list()) {
      for (const f of p.files) {
        c.records++;
        c.that('platform files match their rows', () => {
          const path = join(osDir, p.folder, f.path);
          assert.ok(existsSync(path), `${p.stamp}: ${f.path} is missing from ${p.folder}`);
          assert.equal(sha256Hex(readFileSync(path)), f.sha256, `${p.stamp}: ${f.path} differs from its row`);
        });
      }
    }
    const after = existsSync(osDir) ? readdirSync(osDir).sort() : [];
    c.that('no orphan folder', () => assert.deepEqual(after, [...rows].sort(), `folders ${after.join(', ')}; rows name ${[...rows].join(', ')}`));
    return phase;
  } finally {
    store.close();
  }
}

/** `platform import --force` of a SmartOS tarball over an imported build of the same stamp. */
function importTarball(workDir: string): Scenario {
  const stamp = '20240101T000000Z';
  const v1 = incompressible('first build', 4 << 20);
  const v2 = incompressible('rebuilt', 12 << 20);
  mkdirSync(join(workDir, 'v1'), { recursive: true });
  mkdirSync(join(workDir, 'v2'), { recursive: true });
  const first = writeSmartosTarball(join(workDir, 'v1'), { stamp, bootArchive: v1 });
  const second = writeSmartosTarball(join(workDir, 'v2'), { stamp, bootArchive: v2 });
  const digests = new Set([sha256Hex(v1), sha256Hex(v2)]);
  return {
    skipsStartup: true, fromWorkStart: true, midWork: 'mid-work',
    async run(dir, killAfterMs) {
      const store = Store.open(Store.fileIn(dir));
      await importSmartosTarball(first, { store, platformImagesDir: join(dir, 'platform-images') });
      const firstFolder = store.platforms.get(stamp)!.folder;
      store.close();
      const config = writeConfig(dir);
      const r = await killImportAfter(execa(node, [cliPath, '--config', config, 'platform', 'import', '--force', second], { cwd: dir, reject: false }), killAfterMs, platformsRoot(join(dir, 'platform-images')));
      const c = new Checks();
      if (!r.killed) c.that('command succeeded', () => assert.equal(r.exitCode, 0, r.stderr));
      const phase = checkPlatforms(c, dir, (s) => s.platforms.get(stamp)?.folder !== firstFolder);
      const store2 = Store.open(Store.fileIn(dir));
      try {
        const p = store2.platforms.get(stamp);
        c.that('platform old or new, whole', () => {
          assert.ok(p, 'the platform is gone: an import --force must keep the old build until it commits the new one');
          const archive = p.files.find((f) => f.role === 'boot_archive');
          assert.ok(archive && digests.has(archive.sha256), 'the boot_archive is neither build');
          if (!r.killed) assert.equal(archive.sha256, sha256Hex(v2), 'a finished import lists the new build');
        });
      } finally {
        store2.close();
      }
      return { ...r, outcome: { phase: r.killed ? phase : 'finished', failed: c.failed, records: c.records } };
    },
    async close() {},
  };
}

/** `platform import FOLDER` of a Linux platform (platform.json) not imported before. */
function importFolder(workDir: string): Scenario {
  const stamp = 'linux-crash-test';
  const source = writeLinuxPlatform(join(workDir, 'linux'), { stamp });
  writeFileSync(join(source, 'vmlinuz'), incompressible('kernel', 12 << 20));
  writeFileSync(join(source, 'initrd.img'), incompressible('initrd', 4 << 20));
  const want = new Map(['vmlinuz', 'initrd.img'].map((f) => [f, sha256Hex(readFileSync(join(source, f)))]));
  return {
    skipsStartup: true, fromWorkStart: true, midWork: 'mid-work',
    async run(dir, killAfterMs) {
      const config = writeConfig(dir);
      const r = await killImportAfter(execa(node, [cliPath, '--config', config, 'platform', 'import', source], { cwd: dir, reject: false }), killAfterMs, platformsRoot(join(dir, 'platform-images')));
      const c = new Checks();
      if (!r.killed) c.that('command succeeded', () => assert.equal(r.exitCode, 0, r.stderr));
      const phase = checkPlatforms(c, dir, (s) => s.platforms.get(stamp) !== undefined);
      const store = Store.open(Store.fileIn(dir));
      try {
        const p = store.platforms.get(stamp);
        c.that('platform all or nothing', () => {
          if (!r.killed) assert.ok(p, 'a finished import lists the platform');
          if (!p) return;
          const got = new Map(p.files.map((f) => [f.path.split('/').at(-1)!, f.sha256]));
          for (const [name, sha] of want) assert.equal(got.get(name), sha, `${name}: the row's digest is not the source's`);
        });
      } finally {
        store.close();
      }
      return { ...r, outcome: { phase: r.killed ? phase : 'finished', failed: c.failed, records: c.records } };
    },
    async close() {},
  };
}

/** `node setup` replacing a set-up node's network (hostname, address, routes) with another. */
function nodeSetup(workDir: string): Scenario {
  const mac = macOf('52:54:00:0c:0a:01');
  const docs = {
    old: { hostname: 'cn7', dnsDomain: 'lab.example', resolvers: ['10.99.0.1'], nics: [{ mac, tags: ['admin'] }], interfaces: [{ tag: 'admin', ip: '10.99.0.27', netmask: '255.255.255.0', gateway: '10.99.0.1' }] },
    new: {
      hostname: 'cn7b',
      dnsDomain: 'lab2.example',
      resolvers: ['10.99.0.2', '10.99.0.3'],
      nics: [{ mac, tags: ['admin'] }],
      interfaces: [{ tag: 'admin', ip: '10.99.0.28', netmask: '255.255.255.0', gateway: '10.99.0.254' }],
      routes: { '10.50.0.0/16': '10.99.0.254' },
    },
  };
  const parsed = { old: parseNodeNetwork(docs.old), new: parseNodeNetwork(docs.new) };
  const newFile = join(workDir, 'cn7b.json');
  writeFileSync(newFile, JSON.stringify(docs.new));
  return {
    skipsStartup: true, fromWorkStart: false, midWork: null,
    async run(dir, killAfterMs) {
      const config = writeConfig(dir);
      writeFileSync(join(dir, 'node-key'), `${'ab'.repeat(32)}\n`, { mode: 0o600 });
      const store = Store.open(Store.fileIn(dir));
      const created = store.nodes.create({ nics: [{ mac, isAdmin: true }], state: 'discovered' });
      const node0 = setupNode(store, nodeKeysIn(dir), created, { network: docs.old });
      store.close();
      const r = await killAfter(execa(node, [cliPath, '--config', config, 'node', 'setup', String(node0.id), '--network', newFile], { cwd: dir, reject: false }), killAfterMs);
      const c = new Checks();
      if (!r.killed) c.that('command succeeded', () => assert.equal(r.exitCode, 0, r.stderr));
      const reopened = Store.open(Store.fileIn(dir));
      let phase = 'unknown';
      try {
        checkDatabase(c, reopened);
        const n = reopened.nodes.get(node0.id);
        c.records++;
        c.that('network old or new, whole', () => {
          assert.ok(n, 'the node is gone');
          const which = JSON.stringify(n.networkConfig) === JSON.stringify(parsed.new) ? 'new' : JSON.stringify(n.networkConfig) === JSON.stringify(parsed.old) ? 'old' : null;
          assert.ok(which, `the network config is neither: ${JSON.stringify(n.networkConfig)}`);
          phase = which;
          assert.equal(n.hostname, parsed[which].hostname, `hostname ${n.hostname} with the ${which} network`);
          const rows = nicRowsFor(parsed[which], [mac]);
          assert.deepEqual(
            n.nics.map((x) => ({ mac: x.mac, ip: x.ip ?? null })),
            rows.map((x) => ({ mac: x.mac, ip: x.ip ?? null })),
            `NICs do not match the ${which} network`,
          );
          if (!r.killed) assert.equal(which, 'new', 'a finished setup holds the new network');
          if (which === 'new') assert.notEqual(n.tokenHash, node0.tokenHash, 'the new network came without its new token');
          else assert.equal(n.tokenHash, node0.tokenHash, 'the token changed without the network');
        });
      } finally {
        reopened.close();
      }
      return { ...r, outcome: { phase: r.killed ? phase : 'finished', failed: c.failed, records: c.records } };
    },
    async close() {},
  };
}

/**
 * A rollout run by bench/crash/rollout-child.ts over the fake fleet, killed, then resumed by
 * a second orchestrator process that runs it to its end. Resuming never reboots a node twice
 * (once into the target, once for a rollback at most), the in-flight limits hold across the
 * restart, and the journal ends with the rollout over and every step in a final state.
 */
function rolloutStep(): Scenario {
  const child = join(repoRoot, 'bench', 'crash', 'rollout-child.ts');
  const paceMs = '30';
  return {
    skipsStartup: true, fromWorkStart: true, midWork: 'mid-rollout',
    async run(dir, killAfterMs) {
      const fleetFile = join(dir, 'fleet.json');
      // The child writes fleet.json first once its first tick has journaled a change.
      const r = await killAfterWatched(execa(node, [...tsx, child, '--dir', dir, '--pace-ms', paceMs], { cwd: repoRoot, reject: false }), killAfterMs, () => existsSync(fleetFile));
      const c = new Checks();
      if (!r.killed) c.that('orchestrator exited cleanly', () => assert.equal(r.exitCode, 0, r.stderr));
      const atKill = existsSync(fleetFile) ? (JSON.parse(readFileSync(fleetFile, 'utf8')) as FleetFile) : null;
      let phase = atKill === null ? 'before rollout' : atKill.finished ? 'rollout ended' : 'mid-rollout';
      if (!r.killed) phase = 'finished';
      {
        const store = Store.open(Store.fileIn(dir));
        try {
          checkDatabase(c, store);
        } finally {
          store.close();
        }
      }
      const resumed = await execa(node, [...tsx, child, '--dir', dir, '--pace-ms', '0'], { cwd: repoRoot, reject: false, timeout: 120_000 });
      c.that('resumed orchestrator exited cleanly', () => assert.equal(resumed.exitCode, 0, String(resumed.stderr)));
      const end = JSON.parse(readFileSync(fleetFile, 'utf8')) as FleetFile;
      const store = Store.open(Store.fileIn(dir));
      try {
        const rollouts = store.rollouts.list();
        c.that('one rollout in the journal', () => assert.equal(rollouts.length, 1));
        const rollout = rollouts[0];
        c.that('rollout over', () => assert.ok(rollout && ['done', 'failed'].includes(rollout.state), `rollout ${rollout?.state}`));
        const steps = rollout ? store.rollouts.steps(rollout.id) : [];
        c.that('journal steps final', () => {
          assert.equal(steps.length, 6, 'a step per node');
          for (const s of steps) assert.ok(finishedStepStates.has(s.state) || (rollout?.state === 'failed' && s.state === 'pending'), `${s.label}: ${s.state}`);
        });
        for (const s of steps) {
          c.records++;
          const cycles = end.cycles.filter((x) => x.nodeId === s.nodeId);
          c.that('no node rebooted twice', () => {
            assert.ok(cycles.filter((x) => x.platform === newPlatform).length <= 1, `${s.label} rebooted into the target ${cycles.length} times`);
            assert.ok(cycles.filter((x) => x.platform === oldPlatform).length <= 1, `${s.label} rebooted for rollback twice`);
          });
          c.that('journal agrees with the fleet', () => {
            if (s.state === 'verified') assert.equal(end.nodes.find((n) => n.id === s.nodeId)?.currentPlatform, newPlatform, `${s.label} verified but runs another platform`);
          });
        }
        c.that('in-flight limits', () => {
          assert.ok(end.maxInFlight <= 2, `in flight ${end.maxInFlight}`);
          assert.ok(end.maxPerDomain <= 1, `per rack ${end.maxPerDomain}`);
        });
      } finally {
        store.close();
      }
      return { ...r, outcome: { phase, failed: c.failed, records: c.records } };
    },
    async close() {},
  };
}

/** Counts the invariant of docs/store.md breaks: events at or below `upto` with no index entry. */
function indexState(store: Store): { upto: number; max: number; events: number; entries: number; unindexedBelow: number; dangling: number } {
  const one = <T>(sql: string): T => store.db.prepare(sql).pluck().get() as T;
  return {
    upto: one<number>('SELECT upto FROM boot_events_indexed'),
    max: one<number | null>('SELECT max(id) FROM boot_events') ?? 0,
    events: one<number>('SELECT count(*) FROM boot_events WHERE node_id IS NOT NULL'),
    entries: one<number>('SELECT count(*) FROM boot_events_by_node'),
    unindexedBelow: one<number>(
      'SELECT count(*) FROM boot_events e WHERE e.node_id IS NOT NULL AND e.id <= (SELECT upto FROM boot_events_indexed) AND NOT EXISTS (SELECT 1 FROM boot_events_by_node b WHERE b.node_id = e.node_id AND b.id = e.id)',
    ),
    dangling: one<number>('SELECT count(*) FROM boot_events_by_node b WHERE NOT EXISTS (SELECT 1 FROM boot_events e WHERE e.id = b.id AND e.node_id = b.node_id)'),
  };
}

/**
 * `fleetboot serve` started on a journal of boot events not yet indexed (as after a storm no
 * head node indexed), killed while its store worker builds the index. After the kill every
 * event committed before it is still there and the invariant holds; a store worker started
 * on the file again indexes every one of them.
 */
function eventIndexing(workDir: string): Scenario {
  const template = join(workDir, 'events-template');
  const events = 240_000;
  mkdirSync(template, { recursive: true });
  {
    const store = Store.open(Store.fileIn(template));
    const nodes = Array.from({ length: 200 }, (_, i) => store.nodes.create({ nics: [{ mac: macOf(`02:fe:00:00:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`) }] }).id);
    // Written straight into the journal: the events a storm leaves behind before the worker's
    // next pass. The index is the worker's to build.
    // Recent, so the worker's retention (store.bootEventDays) keeps them all.
    const now = Date.now();
    const insert = store.db.prepare("INSERT INTO boot_events (node_id, mac, event, detail, at) VALUES (?, NULL, 'dhcp_discover', '{}', ?)");
    store.db.transaction(() => {
      for (let i = 0; i < events; i++) insert.run(nodes[i % nodes.length], now - events + i);
    })();
    store.db.pragma('wal_checkpoint(TRUNCATE)');
    store.close();
  }
  return {
    skipsStartup: true, fromWorkStart: true, midWork: 'mid-batch',
    async run(dir, killAfterMs) {
      copyFileSync(Store.fileIn(template), Store.fileIn(dir));
      const config = writeConfig(dir);
      const serve = execa(node, [cliPath, '--config', config, 'serve'], { cwd: dir, reject: false, timeout: 120_000 });
      let indexed = false;
      let exited = false;
      // The worker's first chunk of index entries has committed once the index holds an entry
      // (src/store/store-worker.ts writes a batch in chunks, `upto` moving at the batch's end).
      let firstBatch = false;
      void serve.finally(() => {
        exited = true;
      });
      const watch = (async () => {
        // A clean run ends once the worker has indexed the whole journal.
        await sleep(200);
        while (!indexed && !exited) {
          try {
            const s = Store.open(Store.fileIn(dir));
            try {
              if (s.db.prepare('SELECT 1 FROM boot_events_by_node LIMIT 1').pluck().get() !== undefined) firstBatch = true;
              if ((s.db.prepare('SELECT upto FROM boot_events_indexed').pluck().get() as number) >= events) indexed = true;
            } finally {
              s.close();
            }
          } catch {
            // The file is being created or migrated: look again.
          }
          if (!indexed) await sleep(firstBatch ? 100 : 10);
        }
        if (indexed) serve.kill('SIGTERM');
      })();
      const r = await killAfterWatched(serve, killAfterMs, () => firstBatch);
      await watch;
      const c = new Checks();
      const store = Store.open(Store.fileIn(dir));
      let phase: string;
      try {
        checkDatabase(c, store);
        const s = indexState(store);
        phase = !r.killed ? 'finished' : s.upto >= events ? 'indexed' : s.entries > 0 ? 'mid-batch' : 'before batch';
        c.records += s.events;
        c.that('no event lost', () => assert.equal(s.events, events, `${events - s.events} committed events gone`));
        c.that('index invariant', () => {
          assert.equal(s.unindexedBelow, 0, `${s.unindexedBelow} events at or below upto ${s.upto} have no index entry`);
          assert.equal(s.dangling, 0, `${s.dangling} index entries name no event`);
        });
        const worker = new StoreWorker(store.db, silentLogger, { intervalMs: 50, indexEveryMs: 0, indexPauseMs: 0 });
        await worker.start();
        try {
          for (let i = 0; i < 600 && indexState(store).upto < events; i++) await sleep(50);
        } finally {
          await worker.stop();
        }
        const after = indexState(store);
        c.that('every event indexed after restart', () => {
          assert.equal(after.upto, after.max, `upto ${after.upto} of ${after.max}`);
          assert.equal(after.entries, after.events, `${after.entries} index entries for ${after.events} events`);
          assert.equal(after.unindexedBelow, 0);
        });
      } finally {
        store.close();
      }
      return { killed: r.killed, elapsedMs: r.elapsedMs, workStartMs: r.workStartMs, outcome: { phase, failed: c.failed, records: c.records } };
    },
    async close() {},
  };
}

/**
 * `fleetboot serve` as a full DHCP server in a network namespace, answering a relayed burst
 * from bench/crash/dhcp-client.ts; killed mid-burst. Every ACK the client received names a
 * lease that is in the `leases` table, bound to that MAC: the server ACKs only after the
 * lease's commit (docs/store.md "Commit batching", src/dhcp/server.ts).
 */
async function dhcpBurst(namespace: string): Promise<Scenario> {
  await execa('ip', ['netns', 'add', namespace]);
  await execa('ip', ['-n', namespace, 'link', 'set', 'lo', 'up']);
  const client = join(repoRoot, 'bench', 'crash', 'dhcp-client.ts');
  // Below the head node's default cap on discovered-but-never-booted nodes (dhcp.maxUnbootedDiscovered, 1024).
  const clients = 800;
  return {
    skipsStartup: true, fromWorkStart: true, midWork: 'mid-burst',
    async run(dir, killAfterMs) {
      const config = writeConfig(dir, {
        dhcp: { mode: 'full', listen: '127.0.0.1', port: 1067, relayReplyPort: 1068 },
        networks: [
          {
            name: 'rack',
            subnet: '10.20.0.0/16',
            serverAddress: '10.20.0.1',
            gateway: '10.20.0.254',
            range: { start: '10.20.1.0', end: '10.20.200.255' },
            relayAddresses: ['127.0.0.1'],
            leaseSeconds: 3600,
          },
        ],
      });
      const burst = execa('ip', ['netns', 'exec', namespace, node, ...tsx, client, '--server-port', '1067', '--reply-port', '1068', '--clients', String(clients)], { cwd: repoRoot, reject: false });
      const serve = execa('ip', ['netns', 'exec', namespace, node, cliPath, '--config', config, 'serve'], { cwd: dir, reject: false, timeout: 120_000 });
      let done = false;
      const t0 = performance.now();
      let firstAckMs: number | undefined;
      burst.stdout?.on('data', (b: Buffer) => {
        const text = b.toString();
        if (firstAckMs === undefined && text.includes('ACK ')) firstAckMs = performance.now() - t0;
        if (text.includes('DONE')) done = true;
      });
      const ended = burst.then(() => {
        done = true;
      });
      const clean = (async () => {
        while (!done) await sleep(20);
        serve.kill('SIGTERM');
      })();
      const r = await killAfterWatched(serve, killAfterMs, () => firstAckMs !== undefined);
      // ACKs sent before the kill are on loopback already: give the client a moment to read them.
      await sleep(300);
      burst.kill('SIGTERM');
      await ended;
      done = true;
      await clean;
      const acks = String((await burst).stdout)
        .split('\n')
        .map((l) => /^ACK (\S+) (\S+)$/.exec(l))
        .filter((m): m is RegExpExecArray => m !== null)
        .map((m) => ({ mac: m[1]!, ip: m[2]! }));
      const c = new Checks();
      const store = Store.open(Store.fileIn(dir));
      try {
        checkDatabase(c, store);
        c.records += acks.length;
        c.that('every ACKed lease on disk', () => {
          const missing = acks.filter((a) => {
            const l = store.leases.get(a.ip);
            return !l || l.mac !== a.mac || l.state !== 'bound';
          });
          assert.equal(missing.length, 0, `${missing.length} of ${acks.length} ACKed leases not in the leases table, e.g. ${JSON.stringify(missing[0])}`);
        });
        if (!r.killed) c.that('the burst finished', () => assert.equal(acks.length, clients));
      } finally {
        store.close();
      }
      const phase = !r.killed ? 'finished' : acks.length === 0 ? 'before first ACK' : acks.length < clients ? 'mid-burst' : 'after burst';
      return { killed: r.killed, elapsedMs: r.elapsedMs, workStartMs: r.workStartMs, outcome: { phase, failed: c.failed, records: c.records } };
    },
    async close() {
      await execa('ip', ['netns', 'del', namespace], { reject: false });
    },
  };
}

async function makeScenario(name: ScenarioName, workDir: string, namespace: string): Promise<Scenario> {
  switch (name) {
    case 'import-tarball':
      return importTarball(workDir);
    case 'import-folder':
      return importFolder(workDir);
    case 'node-setup':
      return nodeSetup(workDir);
    case 'rollout-step':
      return rolloutStep();
    case 'event-indexing':
      return eventIndexing(workDir);
    case 'dhcp-burst':
      return dhcpBurst(namespace);
  }
}

/**
 * Runs each scenario: once left alone to measure its workload (and check it), then `runs`
 * times killed after a delay uniform over that length.
 */
export async function runCrashHarness(o: HarnessOptions): Promise<ScenarioReport[]> {
  const random = seededRandom(o.seed);
  // How long loading fleetboot takes here and now: the shortest of a few `fleetboot --version`.
  let startupMs = Infinity;
  for (let i = 0; i < 3; i++) startupMs = Math.min(startupMs, (await killAfter(execa(node, [cliPath, '--version'], { reject: false }), null)).elapsedMs);
  const reports: ScenarioReport[] = [];
  for (const name of o.scenarios) {
    const base = join(o.workDir, name);
    mkdirSync(base, { recursive: true });
    const scenario = await makeScenario(name, base, o.namespace);
    const report: ScenarioReport = { scenario: name, runs: 0, kills: 0, landed: {}, failures: {}, records: 0, workloadMs: 0, killWindowMs: [0, 0], fromWorkStart: scenario.fromWorkStart, midWork: scenario.midWork };
    const record = (outcome: RunOutcome, killed: boolean, i: number, delay: number | null): void => {
      report.records += outcome.records;
      if (killed) report.kills++;
      if (delay !== null) report.landed[outcome.phase] = (report.landed[outcome.phase] ?? 0) + 1;
      for (const f of outcome.failed) {
        const list = (report.failures[f.check] ??= []);
        if (list.length < 5) list.push(`run ${i}${delay === null ? '' : ` (kill after ${delay.toFixed(0)} ms)`}: ${f.message}`);
      }
    };
    try {
      const cleanDir = join(base, 'clean');
      mkdirSync(cleanDir);
      const clean = await scenario.run(cleanDir, null);
      rmSync(cleanDir, { recursive: true, force: true });
      record(clean.outcome, false, 0, null);
      report.workloadMs = clean.elapsedMs;
      // Where a run sees its work begin, each run's kill is drawn from that moment over the
      // clean run's work (from its start to its end); elsewhere after the time fleetboot takes to load.
      let window: [number, number];
      if (scenario.fromWorkStart) {
        if (clean.workStartMs === undefined) throw new Error(`${name}: the run left alone never showed its work beginning`);
        window = [0, clean.elapsedMs - clean.workStartMs];
      } else {
        window = [scenario.skipsStartup ? Math.min(startupMs * 0.9, clean.elapsedMs * 0.5) : 0, clean.elapsedMs];
      }
      report.killWindowMs = window;
      const maxRuns = Math.max(o.runs, scenario.midWork === null ? 0 : (o.maxRunsForMidWork ?? 0));
      for (let i = 1; i <= o.runs || (i <= maxRuns && scenario.midWork !== null && !report.landed[scenario.midWork]); i++) {
        const delay = window[0] + random() * (window[1] - window[0]);
        const dir = join(base, `run-${i}`);
        mkdirSync(dir);
        const r = await scenario.run(dir, delay);
        record(r.outcome, r.killed, i, delay);
        report.runs++;
        if (r.outcome.failed.length === 0) rmSync(dir, { recursive: true, force: true });
        o.progress?.(`${name} ${i}/${o.runs}: ${r.killed ? 'killed' : 'ran to its end'} after ${delay.toFixed(0)} ms${scenario.fromWorkStart ? ' of work' : ''} (${r.outcome.phase})${r.outcome.failed.length ? ` FAILED ${r.outcome.failed.map((f) => f.check).join(', ')}` : ''}`);
      }
    } finally {
      await scenario.close();
    }
    reports.push(report);
  }
  return reports;
}

/** The per-scenario table bench/crash/run.ts prints. */
export function formatReports(reports: readonly ScenarioReport[], seed: number): string {
  const lines = [`seed ${seed}`];
  for (const r of reports) {
    const failed = Object.entries(r.failures);
    lines.push(
      `${r.scenario}: ${r.runs} runs, ${r.kills} killed (kills drawn over ${r.killWindowMs[0].toFixed(0)}-${r.killWindowMs[1].toFixed(0)} ms ${r.fromWorkStart ? 'after the work began' : 'after start'}; landed: ${Object.entries(r.landed)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}), ${r.records} records checked, ${failed.length === 0 ? '0 failures' : `FAILURES: ${failed.map(([k, v]) => `${k} x${v.length}+: ${v[0]}`).join('; ')}`}`,
    );
  }
  return lines.join('\n');
}
