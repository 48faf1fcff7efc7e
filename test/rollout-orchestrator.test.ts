import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryRolloutJournal, type RolloutStep } from '../src/rollout/journal.ts';
import {
  cancelRollout,
  judgeBoot,
  pauseRollout,
  promoteRollout,
  resumeRollout,
  RolloutOrchestrator,
  RolloutStateError,
  startRollout,
  type NodeObservation,
} from '../src/rollout/orchestrator.ts';
import { parseRolloutSpec, planRollout, type RolloutSpecInput } from '../src/rollout/plan.ts';
import { formatRolloutStatus } from '../src/rollout/status.ts';
import { Crash, crashingAfter, FakeClock, FakeFleet, MeasuringJournal, newPlatform, oldPlatform, platforms, settle, type FakeNodeOptions } from './rollout-world.ts';

const s = 1000;

function scenario(spec: Partial<RolloutSpecInput>, nodes: FakeNodeOptions[]) {
  const clock = new FakeClock();
  const fleet = new FakeFleet(clock);
  nodes.forEach((o, i) => fleet.add(i + 1, o));
  const plan = planRollout(
    parseRolloutSpec({ target: newPlatform, selector: 'all', soakSeconds: 60, bootDeadlineSeconds: 600, afterCanary: 'continue', ...spec }),
    fleet.records(),
    platforms,
  );
  const journal = new MeasuringJournal();
  const rollout = startRollout(journal, plan, clock.t);
  const orch = new RolloutOrchestrator(journal, fleet);
  const state = () => journal.get(rollout.id)!;
  const steps = () => journal.steps(rollout.id);
  const step = (id: number) => steps().find((x) => x.nodeId === id)!;
  return { clock, fleet, plan, journal, rollout, orch, state, steps, step, run: () => settle(orch, fleet) };
}

const byState = (steps: RolloutStep[]) => Object.fromEntries(steps.map((x) => [`cn${x.nodeId}`, x.state]));

test('a boot counts only from a check-in after the reboot, from a boot after it, on the target, with the served modules', () => {
  const since = 1_000_000;
  const obs = (o: Partial<NodeObservation>): NodeObservation => ({
    bootPlatform: newPlatform,
    currentPlatform: newPlatform,
    lastBoot: since + 3000,
    lastSeen: since + 90_000,
    modulesMatch: true,
    ...o,
  });
  const want = { platform: newPlatform };
  assert.deepEqual(judgeBoot(obs({}), since, want), { verdict: 'ok' });
  assert.equal(judgeBoot(obs({ lastSeen: since - 1 }), since, want).verdict, 'waiting');
  assert.equal(judgeBoot(obs({ lastSeen: null }), since, want).verdict, 'waiting');
  // A routine check-in from the boot before the reboot: not the new boot.
  assert.deepEqual(judgeBoot(obs({ lastBoot: since - 3_600_000, currentPlatform: oldPlatform }), since, want), {
    verdict: 'waiting',
    why: 'its last check-in is from a boot before the reboot',
  });
  // Boot time is whole seconds and the node's clock may lag a little.
  assert.equal(judgeBoot(obs({ lastBoot: since - 900 }), since, want).verdict, 'ok');
  assert.deepEqual(judgeBoot(obs({ currentPlatform: oldPlatform }), since, want), { verdict: 'wrong', why: `booted ${oldPlatform} instead of ${newPlatform}` });
  assert.deepEqual(judgeBoot(obs({ modulesMatch: false }), since, want), { verdict: 'wrong', why: 'its config modules differ from the ones fleetboot served' });
  assert.equal(judgeBoot(null, since, want).verdict, 'wrong');
  assert.equal(judgeBoot(obs({ currentPlatform: oldPlatform }), since, { notPlatform: newPlatform }).verdict, 'ok');
  assert.equal(judgeBoot(obs({}), since, { notPlatform: newPlatform }).verdict, 'wrong');
});

test('the canary goes first, then wave after wave, each after the soak; every node is rebooted exactly once', async () => {
  const w = scenario({ canary: 1, maxInFlight: 2, soakSeconds: 60 }, [{}, {}, {}, {}, {}]);
  await w.run();
  assert.equal(w.state().state, 'done');
  assert.equal(w.state().reason, '5 verified');
  for (const id of [1, 2, 3, 4, 5]) {
    assert.equal(w.fleet.cyclesOf(id).length, 1, `cn${id} cycles`);
    assert.equal(w.fleet.node(id).bootPlatform, newPlatform);
    assert.equal(w.fleet.node(id).currentPlatform, newPlatform);
    assert.equal(w.step(id).previousPlatform, oldPlatform);
  }
  assert.deepEqual(w.fleet.cycles.map((c) => c.nodeId), [1, 2, 3, 4, 5]);
  const steps = w.steps();
  for (let wave = 2; wave <= 3; wave++) {
    const finishedBefore = Math.max(...steps.filter((x) => x.wave === wave - 1).map((x) => x.finishedAt!));
    const startedAt = Math.min(...steps.filter((x) => x.wave === wave).map((x) => x.startedAt!));
    assert.equal(startedAt, finishedBefore + 60 * s, `wave ${wave} starts when the soak ends`);
  }
  assert.equal(w.journal.maxInFlight, 2);
  // 3 waves of one 90 s boot each plus two 60 s soaks, as the plan estimated with a 90 s boot.
  assert.equal(w.clock.t - w.rollout.createdAt, 3 * 90 * s + 2 * 60 * s);
});

test('after the canaries the rollout waits for promote when the spec says so', async () => {
  const w = scenario({ canary: 1, maxInFlight: 2, afterCanary: 'promote' }, [{}, {}, {}]);
  await w.run();
  assert.equal(w.state().state, 'waiting_promote');
  assert.match(w.state().reason!, /canaries verified \(cn1\); waiting for `fleetboot rollout promote 1`/);
  assert.deepEqual(byState(w.steps()), { cn1: 'verified', cn2: 'pending', cn3: 'pending' });
  assert.deepEqual(w.fleet.cycles.map((c) => c.nodeId), [1]);
  assert.throws(() => resumeRollout(w.journal, w.rollout.id, w.clock.t), RolloutStateError);
  // Paused and resumed while waiting, it waits again: resume is not promote.
  pauseRollout(w.journal, w.rollout.id, w.clock.t);
  resumeRollout(w.journal, w.rollout.id, w.clock.t);
  await w.run();
  assert.equal(w.state().state, 'waiting_promote');
  w.clock.t += 3_600_000;
  promoteRollout(w.journal, w.rollout.id, w.clock.t);
  await w.run();
  assert.equal(w.state().state, 'done');
  assert.deepEqual(w.fleet.cycles.map((c) => c.nodeId), [1, 2, 3]);
  assert.throws(() => promoteRollout(w.journal, w.rollout.id, w.clock.t), /is done; promote is for a rollout waiting after its canaries/);
});

test('two nodes of one rack are never in flight together when the domain limit is 1', async () => {
  const racks = ['a', 'a', 'a', 'b', 'b', 'b', 'c', 'c', 'c'];
  const w = scenario({ canary: 0, maxInFlight: 3, soakSeconds: 0, failureDomain: { trait: 'rack', maxInFlight: 1 } }, racks.map((rack) => ({ rack })));
  await w.run();
  assert.equal(w.state().state, 'done');
  assert.equal(w.journal.maxPerDomain, 1);
  assert.equal(w.journal.maxInFlight, 3);
  for (const c of w.fleet.cycles) {
    const together = w.fleet.cycles.filter((o) => o.at === c.at).map((o) => racks[o.nodeId - 1]);
    assert.equal(new Set(together).size, together.length, `nodes cycled at ${c.at} share a rack`);
  }
});

test('a node silent past its deadline is rolled back to its previous platform and counted as a failure', async () => {
  const w = scenario({ canary: 0, maxInFlight: 2, failureBudget: 1 }, [{}, { fault: { on: newPlatform, kind: 'silent' } }, {}]);
  await w.run();
  assert.equal(w.state().state, 'done');
  assert.match(w.state().reason!, /^2 verified, 1 failed: cn2: not back on 20240601T000000Z within 10 min of its reboot \(no check-in since the reboot\)$/);
  const bad = w.step(2);
  assert.equal(bad.state, 'rolled_back');
  const [upgrade, rollback] = w.fleet.cyclesOf(2);
  assert.equal(upgrade!.platform, newPlatform);
  assert.equal(rollback!.platform, oldPlatform);
  assert.equal(rollback!.at, upgrade!.at + 600 * s, 'rolled back the moment the deadline passed');
  assert.equal(w.fleet.cyclesOf(2).length, 2);
  assert.equal(w.fleet.node(2).bootPlatform, oldPlatform);
  assert.equal(w.fleet.node(2).currentPlatform, oldPlatform);
  assert.equal(w.step(3).state, 'verified');
});

test('a node that boots the wrong platform, or with other config modules, is rolled back at once', async () => {
  const w = scenario({ canary: 0, maxInFlight: 3, failureBudget: 2 }, [{ fault: { on: newPlatform, kind: 'wrong_platform' } }, { fault: { on: newPlatform, kind: 'bad_modules' } }, {}]);
  await w.run();
  assert.equal(w.step(1).state, 'rolled_back');
  assert.equal(w.step(1).reason, `booted ${oldPlatform} instead of ${newPlatform}`);
  assert.equal(w.step(2).state, 'rolled_back');
  assert.equal(w.step(2).reason, 'its config modules differ from the ones fleetboot served');
  for (const id of [1, 2]) {
    const [upgrade, rollback] = w.fleet.cyclesOf(id);
    assert.equal(rollback!.at, upgrade!.at + 90 * s, `cn${id} rolled back at its check-in, not at the deadline`);
  }
  assert.equal(w.state().state, 'done');
});

test('a power driver that fails leaves the node on its old platform and counts as a failure', async () => {
  const w = scenario({ canary: 0, maxInFlight: 2, failureBudget: 1 }, [{ powerFails: true }, {}]);
  await w.run();
  const bad = w.step(1);
  assert.equal(bad.state, 'rollback_failed');
  assert.equal(bad.reason, 'power cycle failed: BMC of cn1 does not answer; rollback: power cycle failed: BMC of cn1 does not answer');
  assert.equal(w.fleet.node(1).bootPlatform, oldPlatform, 'its assignment is undone');
  assert.equal(w.step(2).state, 'verified');
  assert.equal(w.state().state, 'done');
});

test('a node without a power driver gets its platform back without a reboot', async () => {
  const w = scenario({ canary: 0, maxInFlight: 2, failureBudget: 1 }, [{ noDriver: true }, {}]);
  await w.run();
  assert.equal(w.step(1).state, 'rolled_back');
  assert.equal(w.step(1).reason, 'no power driver: cn1 has no power spec');
  assert.equal(w.fleet.node(1).bootPlatform, oldPlatform);
  assert.equal(w.fleet.cyclesOf(1).length, 0);
  assert.equal(w.step(2).state, 'verified');
});

test('a node already assigned the target before the rollout is rolled back onto what it was running', async () => {
  const w = scenario({ canary: 0, maxInFlight: 1, failureBudget: 1 }, [{ fault: { on: newPlatform, kind: 'silent' } }]);
  w.fleet.node(1).bootPlatform = newPlatform; // assigned by hand, never rebooted
  await w.run();
  assert.equal(w.step(1).previousPlatform, oldPlatform);
  assert.equal(w.step(1).state, 'rolled_back');
  assert.equal(w.fleet.node(1).bootPlatform, oldPlatform);
  assert.equal(w.fleet.node(1).currentPlatform, oldPlatform);
});

test('ticks asked for while one runs wait their turn: a check-in during a power cycle never reboots a node twice', async () => {
  const w = scenario({ canary: 0, maxInFlight: 2, soakSeconds: 0 }, [{}, {}, {}]);
  const ticks: Promise<unknown>[] = [];
  w.fleet.onCycle = () => {
    ticks.push(w.orch.tick());
  };
  ticks.push(w.orch.tick());
  await Promise.all(ticks);
  await w.run();
  assert.equal(w.state().state, 'done');
  assert.ok([1, 2, 3].every((id) => w.fleet.cyclesOf(id).length === 1));
});

test('past the failure budget the rollout pauses and says which nodes failed; in-flight nodes finish; resume goes on', async () => {
  const w = scenario({ canary: 1, maxInFlight: 2, failureBudget: 0 }, [{}, {}, { fault: { on: newPlatform, kind: 'silent' } }, {}, {}]);
  await w.run();
  assert.equal(w.state().state, 'paused');
  assert.equal(
    w.state().reason,
    'failure budget exceeded: 1 node failed (budget 0): cn3: not back on 20240601T000000Z within 10 min of its reboot (no check-in since the reboot)',
  );
  assert.deepEqual(byState(w.steps()), { cn1: 'verified', cn2: 'verified', cn3: 'rolled_back', cn4: 'pending', cn5: 'pending' });
  assert.equal(w.fleet.cyclesOf(4).length, 0);
  resumeRollout(w.journal, w.rollout.id, w.clock.t);
  await w.run();
  assert.equal(w.state().state, 'done');
  assert.equal(w.state().acceptedFailures, 1);
  assert.deepEqual(byState(w.steps()), { cn1: 'verified', cn2: 'verified', cn3: 'rolled_back', cn4: 'verified', cn5: 'verified' });
});

test('a canary failure stops the rollout before the first wave, whatever the budget', async () => {
  const w = scenario({ canary: 2, maxInFlight: 2, failureBudget: 5 }, [{ fault: { on: newPlatform, kind: 'wrong_platform' } }, {}, {}, {}]);
  await w.run();
  assert.equal(w.state().state, 'failed');
  assert.equal(w.state().reason, `canary failed, no wave started: cn1: booted ${oldPlatform} instead of ${newPlatform}`);
  assert.deepEqual(byState(w.steps()), { cn1: 'rolled_back', cn2: 'verified', cn3: 'pending', cn4: 'pending' });
  for (const id of [3, 4]) {
    assert.equal(w.fleet.cyclesOf(id).length, 0);
    assert.equal(w.fleet.node(id).bootPlatform, oldPlatform);
  }
  assert.throws(() => resumeRollout(w.journal, w.rollout.id, w.clock.t), /is failed; only a paused rollout can be resumed/);
});

test('pause lets the nodes in flight finish and starts no more; resume carries on', async () => {
  const w = scenario({ canary: 0, maxInFlight: 2, soakSeconds: 0 }, [{}, {}, {}, {}, {}, {}]);
  w.fleet.onCycle = (c) => {
    if (c.nodeId === 3) pauseRollout(w.journal, w.rollout.id, w.clock.t, 'paused by an operator: checking the switch');
  };
  await w.run();
  assert.equal(w.state().state, 'paused');
  assert.equal(w.state().reason, 'paused by an operator: checking the switch');
  // cn3 was rebooting when the pause came: it finishes; cn4, its wave-mate, does not start.
  assert.deepEqual(byState(w.steps()), { cn1: 'verified', cn2: 'verified', cn3: 'verified', cn4: 'pending', cn5: 'pending', cn6: 'pending' });
  w.fleet.onCycle = null;
  resumeRollout(w.journal, w.rollout.id, w.clock.t);
  await w.run();
  assert.equal(w.state().state, 'done');
  assert.ok([1, 2, 3, 4, 5, 6].every((id) => w.fleet.cyclesOf(id).length === 1));
});

test('cancel lets the nodes in flight finish and leaves the rest as they were', async () => {
  const w = scenario({ canary: 0, maxInFlight: 2, soakSeconds: 0 }, [{}, {}, {}, {}]);
  w.fleet.onCycle = (c) => {
    if (c.nodeId === 1) cancelRollout(w.journal, w.rollout.id, w.clock.t);
  };
  await w.run();
  assert.equal(w.state().state, 'cancelled');
  assert.equal(w.state().reason, 'cancelled by an operator');
  assert.deepEqual(byState(w.steps()), { cn1: 'verified', cn2: 'pending', cn3: 'pending', cn4: 'pending' });
  assert.ok([2, 3, 4].every((id) => w.fleet.node(id).bootPlatform === oldPlatform && w.fleet.cyclesOf(id).length === 0));
  assert.throws(() => cancelRollout(w.journal, w.rollout.id, w.clock.t), /already cancelled/);
});

test('a node assigned but not yet rebooted when the rollout is cancelled gets its platform back without a reboot', async () => {
  const w = scenario({ canary: 0, maxInFlight: 1 }, [{}, {}]);
  // The orchestrator dies right after assigning cn1 the target; the operator cancels.
  const crashing = crashingAfter(2, w.journal, w.fleet);
  await assert.rejects(new RolloutOrchestrator(crashing.journal, crashing.ports).tick(), Crash);
  assert.deepEqual(crashing.ops, ['journal cn1 assigned', `assign cn1 ${newPlatform}`]);
  assert.equal(w.fleet.node(1).bootPlatform, newPlatform);
  cancelRollout(w.journal, w.rollout.id, w.clock.t);
  await w.run();
  assert.deepEqual(byState(w.steps()), { cn1: 'reverted', cn2: 'pending' });
  assert.equal(w.step(1).reason, 'the rollout was cancelled before its reboot');
  assert.equal(w.fleet.node(1).bootPlatform, oldPlatform);
  assert.equal(w.fleet.cycles.length, 0);
});

test('after a restart the nodes still in flight count against max in flight', async () => {
  const w = scenario({ canary: 0, maxInFlight: 2, soakSeconds: 0 }, [{}, {}, {}, {}]);
  // The first orchestrator starts the first wave, then its process ends.
  await new RolloutOrchestrator(w.journal, w.fleet).tick();
  assert.deepEqual(byState(w.steps()), { cn1: 'power_cycled', cn2: 'power_cycled', cn3: 'pending', cn4: 'pending' });
  const fresh = new RolloutOrchestrator(w.journal, w.fleet);
  const first = await fresh.tick();
  assert.equal(first.transitions, 0, 'nothing starts while two nodes are in flight');
  assert.equal(first.wakeAt, w.step(1).rebootAt! + 600 * s, 'it wakes for their deadline');
  await settle(fresh, w.fleet);
  assert.equal(w.state().state, 'done');
  assert.equal(w.journal.maxInFlight, 2);
  assert.ok([1, 2, 3, 4].every((id) => w.fleet.cyclesOf(id).length === 1));
});

test('operator verbs refuse the states they do not apply to, and a node is in one live rollout at a time', () => {
  const clock = new FakeClock();
  const fleet = new FakeFleet(clock).add(1).add(2);
  const journal = new MemoryRolloutJournal();
  const plan = planRollout(parseRolloutSpec({ target: newPlatform, selector: 'all', canary: 0 }), fleet.records(), platforms);
  const r = startRollout(journal, plan, clock.t);
  assert.throws(() => startRollout(journal, plan, clock.t), /rollout 1 \(running\) still has cn1, cn2; cancel it or wait for it to finish/);
  assert.throws(() => promoteRollout(journal, r.id, clock.t), /is running; promote is for a rollout waiting/);
  assert.throws(() => resumeRollout(journal, r.id, clock.t), /is running; only a paused rollout/);
  assert.throws(() => pauseRollout(journal, 99, clock.t), /no rollout 99/);
  pauseRollout(journal, r.id, clock.t);
  assert.throws(() => pauseRollout(journal, r.id, clock.t), /is paused; only a running rollout can be paused/);
  cancelRollout(journal, r.id, clock.t);
  // Nothing was in flight: the nodes are free for a new rollout.
  assert.equal(startRollout(journal, plan, clock.t).id, 2);
});

test('rollout status shows where the rollout stands, what it waits for, and each node', async () => {
  const w = scenario({ canary: 1, maxInFlight: 2 }, [{}, {}, { fault: { on: newPlatform, kind: 'silent' } }, {}, {}]);
  await w.orch.tick();
  w.clock.t += 30 * s;
  assert.equal(
    formatRolloutStatus(w.state(), w.steps(), w.clock.t),
    [
      'rollout 1 of 20240601T000000Z: running, wave 1 of 3; 0 verified, 1 in flight, 0 failed, 4 pending',
      '  waiting for 1 node to check in (next deadline in 10 min)',
      '',
      '  cn1   power_cycled  wave 1 canary  rebooted 30 s ago',
      '  cn2   pending       wave 2',
      '  cn3   pending       wave 2',
      '  cn4   pending       wave 3',
      '  cn5   pending       wave 3',
      '',
    ].join('\n'),
  );
  await w.run();
  assert.equal(
    formatRolloutStatus(w.state(), w.steps(), w.clock.t),
    [
      'rollout 1 of 20240601T000000Z: paused, wave 3 of 3; 2 verified, 0 in flight, 1 failed, 2 pending',
      '  waiting for `fleetboot rollout resume 1`',
      '  failure budget exceeded: 1 node failed (budget 0): cn3: not back on 20240601T000000Z within 10 min of its reboot (no check-in since the reboot)',
      '',
      '  cn1   verified     wave 1 canary',
      '  cn2   verified     wave 2',
      '  cn3   rolled_back  wave 2  not back on 20240601T000000Z within 10 min of its reboot (no check-in since the reboot)',
      '  cn4   pending      wave 3',
      '  cn5   pending      wave 3',
      '',
    ].join('\n'),
  );
});
