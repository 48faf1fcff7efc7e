// One rollout orchestrator as its own process, for the crash harness (test/crash-harness.ts):
// the rollout journal is the registry's (SQLite, src/store/rollouts.ts) and the fleet is the
// fake one of test/rollout-world.ts, whose state (what each node boots, every power cycle
// it took, the fake clock) is written to <dir>/fleet.json after every change, by a write
// to a new file and a rename (POSIX rename(2) replaces the name atomically), so a SIGKILL
// leaves the state just before or just after a change. A node's power cycle counts once
// fleet.json holds it: a kill before that is a cycle the BMC never got.
// First run: plans and starts the rollout; a run that finds the rollout in the journal
// resumes it. Each tick waits --pace-ms of real time, so kills land between its steps.
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { RolloutOrchestrator, startRollout, type RolloutPorts } from '../../src/rollout/orchestrator.ts';
import { parseRolloutSpec, planRollout } from '../../src/rollout/plan.ts';
import { Store } from '../../src/store/store.ts';
import { FakeClock, FakeFleet, MeasuringJournal, newPlatform, platforms, type Cycle } from '../../test/rollout-world.ts';

const { values } = parseArgs({ options: { dir: { type: 'string' }, 'pace-ms': { type: 'string', default: '10' } } });
const dir = values.dir;
const paceMs = Number(values['pace-ms']);
if (!dir || !Number.isFinite(paceMs)) {
  process.stderr.write('rollout-child: --dir DIR [--pace-ms N]\n');
  process.exit(2);
}

/** The spec and fleet every run uses: six nodes in three racks, cn4 never verifies (it boots its old platform). */
const rolloutSpec = { target: newPlatform, selector: 'all', canary: 1, maxInFlight: 2, failureDomain: { trait: 'rack', maxInFlight: 1 }, soakSeconds: 60, bootDeadlineSeconds: 600, failureBudget: 6, afterCanary: 'continue' } as const;
const racks = ['a', 'a', 'b', 'b', 'c', 'c'];

interface NodeState {
  id: number;
  bootPlatform: string | null;
  previousPlatform: string | null;
  currentPlatform: string | null;
  lastBoot: number | null;
  lastSeen: number | null;
  modulesMatch: boolean;
  checkIn: { at: number; platform: string | null; lastBoot: number; modulesMatch: boolean } | null;
}

export interface FleetFile {
  clock: number;
  nodes: NodeState[];
  cycles: Cycle[];
  maxInFlight: number;
  maxPerDomain: number;
  finished: boolean;
}

const file = join(dir, 'fleet.json');
const clock = new FakeClock();
const fleet = new FakeFleet(clock);
racks.forEach((rack, i) => fleet.add(i + 1, i === 3 ? { rack, fault: { on: newPlatform, kind: 'wrong_platform' } } : { rack }));
let before = { maxInFlight: 0, maxPerDomain: 0 };
if (existsSync(file)) {
  const saved = JSON.parse(readFileSync(file, 'utf8')) as FleetFile;
  clock.t = saved.clock;
  for (const n of saved.nodes) Object.assign(fleet.node(n.id), n);
  fleet.cycles.push(...saved.cycles);
  before = { maxInFlight: saved.maxInFlight, maxPerDomain: saved.maxPerDomain };
}

const store = Store.open(Store.fileIn(dir));
const journal = new MeasuringJournal(store.rollouts);

function persist(finished = false): void {
  const state: FleetFile = {
    clock: clock.t,
    nodes: [...fleet.nodes.values()].map((n) => ({
      id: n.id,
      bootPlatform: n.bootPlatform,
      previousPlatform: n.previousPlatform,
      currentPlatform: n.currentPlatform,
      lastBoot: n.lastBoot,
      lastSeen: n.lastSeen,
      modulesMatch: n.modulesMatch,
      checkIn: n.checkIn,
    })),
    cycles: fleet.cycles,
    maxInFlight: Math.max(before.maxInFlight, journal.maxInFlight),
    maxPerDomain: Math.max(before.maxPerDomain, journal.maxPerDomain),
    finished,
  };
  writeFileSync(`${file}.new`, JSON.stringify(state));
  renameSync(`${file}.new`, file);
}

const ports: RolloutPorts = {
  now: () => fleet.now(),
  observe: (id) => fleet.observe(id),
  assignPlatform(id, platform) {
    fleet.assignPlatform(id, platform);
    persist();
  },
  powerDriver(id) {
    const real = fleet.powerDriver(id);
    return {
      ...real,
      async powerCycle() {
        await real.powerCycle();
        persist();
      },
    };
  },
};

// FLEETBOOT_TEST_BREAK=journal-uncommitted (test/crash-harness-breaks.test.ts only): the
// journal's writes stay in one open SQLite transaction until the rollout ends, as if the
// orchestrator acted before its journal entry was durable; a clean run still passes, a kill
// mid-rollout must show up as nodes power-cycled twice.
const breakJournal = process.env.FLEETBOOT_TEST_BREAK === 'journal-uncommitted';
if (breakJournal) store.db.exec('BEGIN');
if (journal.list().length === 0) {
  startRollout(journal, planRollout(parseRolloutSpec(rolloutSpec), fleet.records(), platforms), clock.t);
}
const orch = new RolloutOrchestrator(journal, ports);
for (let i = 0; ; i++) {
  if (i > 10_000) throw new Error('the rollout did not settle');
  const { wakeAt } = await orch.tick();
  persist();
  const next = [wakeAt, fleet.nextEventAt()].filter((t): t is number => t !== null);
  if (next.length === 0) break;
  const at = Math.min(...next);
  if (at <= clock.t) throw new Error(`the orchestrator is stuck: asked to wake at ${at}, now ${clock.t}`);
  clock.t = at;
  persist();
  await sleep(paceMs);
}
if (breakJournal) store.db.exec('COMMIT');
persist(true);
store.close();
