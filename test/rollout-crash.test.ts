// Kill the orchestrator between any two steps (a step: one journal write or one side effect),
// start a new one on the same journal, and check what an operator relies on: no node is
// rebooted twice for one journaled reboot, none is skipped, in-flight limits hold across the
// restart, and a crash outside the one unavoidable window changes nothing at all.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RolloutOrchestrator, startRollout } from '../src/rollout/orchestrator.ts';
import { parseRolloutSpec, planRollout, type RolloutSpecInput } from '../src/rollout/plan.ts';
import { Crash, crashingAfter, FakeClock, FakeFleet, MeasuringJournal, newPlatform, oldPlatform, platforms, settle, type FakeNodeOptions } from './rollout-world.ts';

interface Outcome {
  /** Steps the first orchestrator took. */
  ops: number;
  refused: string | null;
  /** The crashed node's step state when the crash came, for a refused power cycle. */
  stateAtCrash: string | null;
  states: Record<string, string>;
  rollout: string;
  cycles: { nodeId: number; at: number; platform: string | null }[];
  maxInFlight: number;
  maxPerDomain: number;
}

/** Runs a rollout whose orchestrators die after `crashes[i]` steps each, then one that does not. */
async function runWithCrash(spec: Partial<RolloutSpecInput>, nodes: FakeNodeOptions[], ...crashes: number[]): Promise<Outcome> {
  const clock = new FakeClock();
  const fleet = new FakeFleet(clock);
  nodes.forEach((o, i) => fleet.add(i + 1, o));
  const plan = planRollout(parseRolloutSpec({ target: newPlatform, selector: 'all', ...spec }), fleet.records(), platforms);
  const journal = new MeasuringJournal();
  const rollout = startRollout(journal, plan, clock.t);
  let first: ReturnType<typeof crashingAfter> | null = null;
  let stateAtCrash: string | null = null;
  for (const limit of crashes) {
    const crashing = crashingAfter(limit, journal, fleet);
    first ??= crashing;
    try {
      await settle(new RolloutOrchestrator(crashing.journal, crashing.ports), fleet);
    } catch (e) {
      if (!(e instanceof Crash)) throw e;
      const node = /^power cycle cn(\d+)$/.exec(crashing.refused() ?? '')?.[1];
      if (node !== undefined && crashing === first) stateAtCrash = journal.steps(rollout.id).find((s) => s.nodeId === Number(node))!.state;
    }
  }
  await settle(new RolloutOrchestrator(journal, fleet), fleet);
  return {
    ops: first?.ops.length ?? 0,
    refused: first?.refused() ?? null,
    stateAtCrash,
    states: Object.fromEntries(journal.steps(rollout.id).map((s) => [`cn${s.nodeId}`, s.state])),
    rollout: journal.get(rollout.id)!.state,
    cycles: fleet.cycles.map((c) => ({ ...c })),
    maxInFlight: journal.maxInFlight,
    maxPerDomain: journal.maxPerDomain,
  };
}

function cyclesOf(o: Outcome, node: string, platform: string): number {
  return o.cycles.filter((c) => `cn${c.nodeId}` === node && c.platform === platform).length;
}

/** Runs the scenario crashing after every k, checking the invariants; returns how many k. */
async function everyCrashPoint(spec: Partial<RolloutSpecInput>, nodes: FakeNodeOptions[], check: (o: Outcome, clean: Outcome, k: number) => void): Promise<number> {
  const clean = await runWithCrash(spec, nodes, Infinity);
  assert.equal(clean.refused, null);
  let crashed = 0;
  for (let k = 0; k < clean.ops; k++) {
    const o = await runWithCrash(spec, nodes, k);
    assert.notEqual(o.refused, null, `crash after step ${k} of ${clean.ops}`);
    crashed++;
    const at = `crash after step ${k} (before "${o.refused}")`;
    assert.ok(o.maxInFlight <= (typeof spec.maxInFlight === 'number' ? spec.maxInFlight : 1), `${at}: in flight ${o.maxInFlight}`);
    if (spec.failureDomain) assert.ok(o.maxPerDomain <= (spec.failureDomain.maxInFlight ?? 1), `${at}: per domain ${o.maxPerDomain}`);
    for (const node of Object.keys(o.states)) {
      assert.ok(cyclesOf(o, node, newPlatform) <= 1, `${at}: ${node} rebooted into the target twice`);
      assert.ok(cyclesOf(o, node, oldPlatform) <= 1, `${at}: ${node} rebooted for rollback twice`);
    }
    assert.ok(['done', 'failed'].includes(o.rollout), `${at}: rollout ended ${o.rollout}`);
    assert.ok(Object.values(o.states).every((s) => ['verified', 'rolled_back', 'rollback_failed', 'pending'].includes(s)), `${at}: ${JSON.stringify(o.states)}`);
    check(o, clean, k);
  }
  assert.equal(crashed, clean.ops);
  return crashed;
}

test('killed between any two steps of a healthy rollout, a new orchestrator finishes it with every node rebooted once', async () => {
  const spec: Partial<RolloutSpecInput> = { canary: 1, maxInFlight: 2, failureDomain: { trait: 'rack', maxInFlight: 1 }, soakSeconds: 60, bootDeadlineSeconds: 600, failureBudget: 6, afterCanary: 'continue' };
  const racks = ['a', 'a', 'b', 'b', 'c', 'c'];
  let windows = 0;
  const crashed = await everyCrashPoint(spec, racks.map((rack) => ({ rack })), (o, clean, k) => {
    const at = `crash after step ${k} (before "${o.refused}")`;
    const lost = o.stateAtCrash === 'power_cycling' ? /^power cycle (cn\d+)$/.exec(o.refused!)![1]! : null;
    if (lost === null) {
      // Outside the window the restart is invisible: the same reboots at the same times.
      assert.deepEqual(o.cycles, clean.cycles, at);
      assert.deepEqual(o.states, clean.states, at);
      assert.equal(o.rollout, 'done', at);
      return;
    }
    // Died between journaling a reboot and asking for it: the node is never rebooted twice,
    // so it misses its deadline and is rolled back (counted as a failure), not skipped.
    windows++;
    assert.equal(o.states[lost], 'rolled_back', at);
    assert.equal(cyclesOf(o, lost, newPlatform), 0, at);
    assert.equal(cyclesOf(o, lost, oldPlatform), 1, at);
    const others = Object.keys(o.states).filter((n) => n !== lost);
    if (lost === 'cn1') {
      // The canary: the rollout stops before the first wave.
      assert.equal(o.rollout, 'failed', at);
      assert.ok(others.every((n) => o.states[n] === 'pending' && o.cycles.every((c) => `cn${c.nodeId}` !== n)), at);
    } else {
      assert.equal(o.rollout, 'done', at);
      assert.ok(others.every((n) => o.states[n] === 'verified' && cyclesOf(o, n, newPlatform) === 1), at);
    }
  });
  assert.equal(windows, 6, 'one window per node');
  assert.equal(crashed, 6 * 7 + 1, 'each node: journal assigned, assign, assign again, journal power_cycling, power cycle, journal power_cycled, journal verified; then done');
});

test('killed between any two steps of a rollout with failing nodes, rollbacks are neither repeated nor lost', async () => {
  const spec: Partial<RolloutSpecInput> = { canary: 1, maxInFlight: 2, soakSeconds: 30, bootDeadlineSeconds: 300, failureBudget: 5, afterCanary: 'continue' };
  const nodes: FakeNodeOptions[] = [{}, {}, { fault: { on: newPlatform, kind: 'silent' } }, { fault: { on: newPlatform, kind: 'wrong_platform' } }, {}];
  let windows = 0;
  const crashed = await everyCrashPoint(spec, nodes, (o, clean, k) => {
    const at = `crash after step ${k} (before "${o.refused}")`;
    const node = o.stateAtCrash === null ? null : /^power cycle (cn\d+)$/.exec(o.refused!)![1]!;
    if (node === null) {
      assert.deepEqual(o.cycles, clean.cycles, at);
      assert.deepEqual(o.states, clean.states, at);
      assert.equal(o.rollout, 'done', at);
      return;
    }
    windows++;
    if (o.stateAtCrash === 'power_cycling') {
      assert.equal(o.states[node], 'rolled_back', at);
      assert.equal(cyclesOf(o, node, newPlatform), 0, at);
    } else {
      // The lost reboot was the rollback's: the node never comes back on its old platform.
      assert.equal(o.stateAtCrash, 'rollback_cycling', at);
      assert.equal(o.states[node], 'rollback_failed', at);
      assert.equal(cyclesOf(o, node, newPlatform), 1, at);
      assert.equal(cyclesOf(o, node, oldPlatform), 0, at);
    }
  });
  assert.equal(windows, 5 + 2, 'one per reboot: five upgrades, two rollbacks');
  assert.ok(crashed > 5 * 7, `crashed at ${crashed} points`);
});

test('killed twice, at any two points, the orchestrators still never reboot a node twice or break a limit', async () => {
  const spec: Partial<RolloutSpecInput> = { canary: 0, maxInFlight: 2, soakSeconds: 30, bootDeadlineSeconds: 300, failureBudget: 3, afterCanary: 'continue' };
  const nodes: FakeNodeOptions[] = [{}, { fault: { on: newPlatform, kind: 'wrong_platform' } }, {}];
  const clean = await runWithCrash(spec, nodes, Infinity);
  for (let k1 = 0; k1 < clean.ops; k1++) {
    for (let k2 = 0; k2 < clean.ops; k2++) {
      const o = await runWithCrash(spec, nodes, k1, k2);
      const at = `crashes after steps ${k1} and ${k2}`;
      assert.ok(o.maxInFlight <= 2, at);
      for (const node of Object.keys(o.states)) {
        assert.ok(cyclesOf(o, node, newPlatform) <= 1, `${at}: ${node} rebooted into the target twice`);
        assert.ok(cyclesOf(o, node, oldPlatform) <= 1, `${at}: ${node} rebooted for rollback twice`);
      }
      assert.equal(o.rollout, 'done', at);
      assert.ok(Object.values(o.states).every((s) => ['verified', 'rolled_back', 'rollback_failed'].includes(s)), `${at}: ${JSON.stringify(o.states)}`);
      // cn2 never verifies: it boots the wrong platform whenever it boots the target.
      assert.notEqual(o.states['cn2'], 'verified', at);
    }
  }
});
