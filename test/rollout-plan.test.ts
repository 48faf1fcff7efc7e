import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Mac } from '../src/mac.ts';
import {
  formatRolloutPlan,
  parseRolloutSpec,
  planRollout,
  RolloutPlanError,
  type PlannableNode,
  type RolloutPlan,
  type RolloutSpecInput,
} from '../src/rollout/plan.ts';
import type { NodeState } from '../src/store/nodes.ts';

const platforms = [{ stamp: '20240101T000000Z' }, { stamp: '20240601T000000Z' }];
const target = '20240601T000000Z';
const old = '20240101T000000Z';

function node(id: number, o: { state?: NodeState; traits?: Record<string, string>; boot?: string | null; current?: string | null; setUp?: boolean; hostname?: string | null } = {}): PlannableNode {
  return {
    id,
    uuid: null,
    hostname: o.hostname === undefined ? `cn${id}` : o.hostname,
    state: o.state ?? 'running',
    bootPlatform: o.boot === undefined ? old : o.boot,
    currentPlatform: o.current === undefined ? old : o.current,
    networkConfig: o.setUp === false ? null : { hostname: `cn${id}` },
    traits: o.traits ?? {},
    nics: [{ mac: `52:54:00:00:00:${id.toString(16).padStart(2, '0')}` as Mac, isAdmin: true }],
  };
}

const spec = (o: Partial<RolloutSpecInput> = {}) => parseRolloutSpec({ target, selector: 'all', ...o });
const labels = (plan: RolloutPlan) => plan.waves.map((w) => w.nodes.map((n) => n.label));

function refusal(fn: () => unknown, field: string, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof RolloutPlanError, `expected a RolloutPlanError, got ${String(e)}`);
    assert.equal(e.field, field);
    assert.match(e.message, pattern);
    return true;
  });
}

test('the spec fills safe defaults and parses to itself again, so it can be stored as is', () => {
  const s = spec();
  assert.deepEqual(s, {
    target,
    selector: { all: true },
    canary: 1,
    maxInFlight: 1,
    soakSeconds: 300,
    bootDeadlineSeconds: 900,
    failureBudget: 0,
    afterCanary: 'promote',
  });
  assert.deepEqual(parseRolloutSpec(JSON.parse(JSON.stringify(s))), s);
  const full = spec({ selector: 'rack=b12', maxInFlight: '25%', failureDomain: { trait: 'rack' } });
  assert.deepEqual(full.failureDomain, { trait: 'rack', maxInFlight: 1 });
  assert.deepEqual(parseRolloutSpec(JSON.parse(JSON.stringify(full))), full);
});

test('a selector can be typed the way an operator says it', () => {
  assert.deepEqual(spec({ selector: 'all' }).selector, { all: true });
  assert.deepEqual(spec({ selector: 'rack=b12' }).selector, { trait: { rack: 'b12' } });
  assert.deepEqual(spec({ selector: 'rack=b12,row=3' }).selector, { trait: { rack: 'b12', row: '3' } });
  assert.deepEqual(spec({ selector: 'cn1, cn2,cn1' }).selector, { nodes: ['cn1', 'cn2'] });
  assert.deepEqual(spec({ selector: { nodes: ['cn3', 'cn3'] } }).selector, { nodes: ['cn3'] });
  assert.deepEqual(spec({ selector: { trait: { rack: 'a1' } } }).selector, { trait: { rack: 'a1' } });
});

test('a bad spec is refused naming the field', () => {
  refusal(() => spec({ maxInFlight: '0%' }), 'maxInFlight', /above 0%/);
  refusal(() => spec({ maxInFlight: '150%' }), 'maxInFlight', /at most 100%/);
  refusal(() => spec({ maxInFlight: 'lots' }), 'maxInFlight', /percentage/);
  refusal(() => spec({ maxInFlight: 0 }), 'maxInFlight', /at least 1/);
  refusal(() => spec({ maxInFlight: 1.5 }), 'maxInFlight', /whole number/);
  refusal(() => spec({ canary: -1 }), 'canary', /./);
  refusal(() => spec({ selector: {} }), 'selector', /"all"/);
  refusal(() => spec({ selector: 'rack=b12,cn3' }), 'selector', /trait=value/);
  refusal(() => spec({ selector: '' }), 'selector', /"all"/);
  refusal(() => spec({ failureDomain: { trait: 'rack id' } }), 'failureDomain.trait', /trait name/);
  refusal(() => spec({ soakSeconds: -5 }), 'soakSeconds', /./);
  refusal(() => spec({ afterCanary: 'later' as 'continue' }), 'afterCanary', /./);
  refusal(() => parseRolloutSpec({ selector: 'all' }), 'target', /./);
  refusal(() => parseRolloutSpec({ target, selector: 'all', batch: 3 }), '(top level)', /batch/);
});

test('an unknown target, a selection of nothing and too many canaries are refused', () => {
  const fleet = [node(1), node(2)];
  refusal(() => planRollout(spec({ target: 'nope' }), fleet, platforms), 'target', /"nope" is not imported \(imported: 20240101T000000Z, 20240601T000000Z/);
  refusal(() => planRollout(spec(), fleet, []), 'target', /none is imported/);
  refusal(() => planRollout(spec({ selector: 'rack=zz' }), fleet, platforms), 'selector', /rack=zz matches no node/);
  refusal(() => planRollout(spec({ selector: 'cn1,cn9,52:54:00:00:00:77' }), fleet, platforms), 'selector', /no node is "cn9", "52:54:00:00:00:77"/);
  refusal(() => planRollout(spec({ canary: 3 }), fleet, platforms), 'canary', /3 canaries but only 2 nodes to upgrade/);
  const done = [node(1, { boot: target, current: target }), node(2, { state: 'retired' })];
  refusal(() => planRollout(spec(), done, platforms), 'selector', /no node to upgrade \(1 already on 20240601T000000Z, 1 excluded\)/);
});

test('retired and never-set-up nodes are excluded, nodes already on the target skipped, each with its reason', () => {
  const fleet = [
    node(1),
    node(2, { state: 'retired' }),
    node(3, { state: 'discovered', setUp: false, hostname: null }),
    node(4, { boot: target, current: target }),
    node(5, { boot: target, current: old }), // assigned but not rebooted yet: still to do
    node(6, { boot: old, current: target }), // runs it but would boot the old one next: still to do
    node(7, { state: 'setting_up' }),
  ];
  const plan = planRollout(spec({ canary: 0, maxInFlight: 10 }), fleet, platforms);
  assert.deepEqual(plan.excluded, [
    { nodeId: 2, label: 'cn2', reason: 'retired' },
    { nodeId: 3, label: '52:54:00:00:00:03', reason: 'never set up (discovered, no network config)' },
  ]);
  assert.deepEqual(plan.skipped, [{ nodeId: 4, label: 'cn4', reason: `already runs ${target}` }]);
  assert.deepEqual(labels(plan), [['cn1', 'cn5', 'cn6', 'cn7']]);
});

test('the canary wave comes first, then waves of at most max in flight in id order', () => {
  const fleet = [node(5), node(1), node(3), node(2), node(4)];
  const plan = planRollout(spec({ canary: 1, maxInFlight: 2 }), fleet, platforms);
  assert.deepEqual(labels(plan), [['cn1'], ['cn2', 'cn3'], ['cn4', 'cn5']]);
  assert.deepEqual(plan.waves.map((w) => w.canary), [true, false, false]);
  assert.deepEqual(plan.waves.map((w) => w.index), [1, 2, 3]);
  // More canaries than max in flight: several canary waves, none above the limit.
  const many = planRollout(spec({ canary: 3, maxInFlight: 2 }), fleet, platforms);
  assert.deepEqual(labels(many), [['cn1', 'cn2'], ['cn3'], ['cn4', 'cn5']]);
  assert.deepEqual(many.waves.map((w) => w.canary), [true, true, false]);
});

test('an explicit list runs in the order given, naming nodes by hostname, id, MAC or UUID', () => {
  const fleet = [node(1), node(2), node(3), { ...node(4), uuid: '4c4c4544-0042-3510-8052-b4c04f4e3332' }];
  const plan = planRollout(spec({ selector: 'cn3,1,52:54:00:00:00:02', canary: 1, maxInFlight: 2 }), fleet, platforms);
  assert.deepEqual(labels(plan), [['cn3'], ['cn1', 'cn2']]);
  // The UUID in the other SMBIOS byte order is the same machine.
  for (const ref of ['4C4C4544-0042-3510-8052-B4C04F4E3332', '44454c4c-4200-1035-8052-b4c04f4e3332']) {
    assert.deepEqual(labels(planRollout(spec({ selector: { nodes: [ref] }, canary: 0 }), fleet, platforms)), [['cn4']]);
  }
});

test('a percentage is of the nodes to upgrade, rounded down, at least one', () => {
  const fleet = [1, 2, 3, 4, 5].map((i) => node(i));
  assert.equal(planRollout(spec({ canary: 0, maxInFlight: '50%' }), fleet, platforms).maxInFlight, 2);
  assert.equal(planRollout(spec({ canary: 0, maxInFlight: '10%' }), fleet, platforms).maxInFlight, 1);
  assert.equal(planRollout(spec({ canary: 0, maxInFlight: '100%' }), fleet, platforms).maxInFlight, 5);
  // Skipped nodes are not counted.
  const some = [...fleet, node(6, { boot: target, current: target }), node(7, { boot: target, current: target })];
  assert.equal(planRollout(spec({ canary: 0, maxInFlight: '40%' }), some, platforms).maxInFlight, 2);
});

test('two nodes of one rack never share a wave when the limit is 1, and the waves fill up across racks', () => {
  const racks = { 1: 'a', 2: 'a', 3: 'a', 4: 'b', 5: 'b', 6: 'b', 7: 'c', 8: 'c' } as Record<number, string>;
  const fleet = Object.entries(racks).map(([id, rack]) => node(Number(id), { traits: { rack } }));
  const plan = planRollout(spec({ canary: 2, maxInFlight: 2, failureDomain: { trait: 'rack' } }), fleet, platforms);
  // Canaries from two racks; then each place goes to the rack with the most nodes left.
  assert.deepEqual(labels(plan), [
    ['cn1', 'cn4'],
    ['cn2', 'cn5'],
    ['cn7', 'cn3'],
    ['cn6', 'cn8'],
  ]);
  for (const w of plan.waves) assert.equal(new Set(w.nodes.map((n) => n.domain)).size, w.nodes.length, `wave ${w.index} repeats a rack`);
  assert.equal(plan.waves.length, 4);
});

test('nodes without the domain trait share one domain "(none)" and the plan says so', () => {
  const fleet = [node(1, { traits: { rack: 'a' } }), node(2), node(3), node(4, { traits: { rack: 'b' } })];
  const plan = planRollout(spec({ canary: 0, maxInFlight: 4, failureDomain: { trait: 'rack' } }), fleet, platforms);
  assert.deepEqual(labels(plan), [['cn2', 'cn1', 'cn4'], ['cn3']]);
  assert.deepEqual(plan.waves[0]!.nodes.map((n) => n.domain), ['(none)', 'a', 'b']);
  assert.deepEqual(plan.warnings, ['2 nodes have no rack trait; they share one failure domain "(none)"']);
});

test('a plan is the same whatever order the fleet comes in', () => {
  const fleet = Array.from({ length: 20 }, (_, i) => node(i + 1, { traits: { rack: `r${i % 3}` } }));
  const s = spec({ canary: 2, maxInFlight: '25%', failureDomain: { trait: 'rack', maxInFlight: 2 } });
  const a = planRollout(s, fleet, platforms);
  const b = planRollout(s, [...fleet].reverse(), platforms);
  assert.deepEqual(a, b);
});

// A small deterministic PRNG so a failure names a seed that reproduces it.
function rng(seed: number): () => number {
  let x = seed;
  return () => {
    x = (x * 1103515245 + 12345) % 2147483648;
    return x / 2147483648;
  };
}

test('over random fleets every node is planned once, limits hold, and no wave more than needed is used', () => {
  for (let seed = 1; seed <= 300; seed++) {
    const r = rng(seed);
    const n = 1 + Math.floor(r() * 40);
    const rackCount = 1 + Math.floor(r() * 6);
    const fleet = Array.from({ length: n }, (_, i) => node(i + 1, r() < 0.1 ? {} : { traits: { rack: `r${Math.floor(r() * rackCount)}` } }));
    const max = 1 + Math.floor(r() * 6);
    const perRack = 1 + Math.floor(r() * 3);
    const canary = Math.floor(r() * Math.min(4, n + 1));
    const plan = planRollout(spec({ canary, maxInFlight: max, failureDomain: { trait: 'rack', maxInFlight: perRack } }), fleet, platforms);
    const ids = plan.waves.flatMap((w) => w.nodes.map((x) => x.nodeId));
    assert.deepEqual([...ids].sort((a, b) => a - b), fleet.map((x) => x.id), `seed ${seed}: every node once`);
    const canaryWaves = plan.waves.filter((w) => w.canary);
    assert.equal(canaryWaves.flatMap((w) => w.nodes).length, canary, `seed ${seed}: canary count`);
    assert.ok(plan.waves.every((w, i) => !w.canary || i < canaryWaves.length), `seed ${seed}: canaries first`);
    for (const w of plan.waves) {
      assert.ok(w.nodes.length >= 1 && w.nodes.length <= max, `seed ${seed}: wave ${w.index} size`);
      const per = new Map<string, number>();
      for (const x of w.nodes) per.set(x.domain, (per.get(x.domain) ?? 0) + 1);
      assert.ok([...per.values()].every((c) => c <= perRack), `seed ${seed}: wave ${w.index} per-rack limit`);
    }
    // Fewest waves possible for each phase: the node count or the biggest domain bounds it.
    const bound = (nodes: { domain: string }[]): number => {
      if (nodes.length === 0) return 0;
      const per = new Map<string, number>();
      for (const x of nodes) per.set(x.domain, (per.get(x.domain) ?? 0) + 1);
      return Math.max(Math.ceil(nodes.length / max), ...[...per.values()].map((c) => Math.ceil(c / perRack)));
    };
    const restNodes = plan.waves.filter((w) => !w.canary).flatMap((w) => w.nodes);
    assert.equal(plan.waves.length, bound(canaryWaves.flatMap((w) => w.nodes)) + bound(restNodes), `seed ${seed}: wave count`);
  }
});

test('the estimate is waves x boot time plus the soaks between them', () => {
  const fleet = [1, 2, 3, 4, 5].map((i) => node(i));
  const s = spec({ canary: 1, maxInFlight: 2, soakSeconds: 120, bootDeadlineSeconds: 600 });
  const plan = planRollout(s, fleet, platforms);
  assert.deepEqual(plan.estimate, { seconds: 3 * 600 + 2 * 120, bootSeconds: 600, bootSecondsFrom: 'deadline', soaks: 2, waitsForPromote: true });
  const observed = planRollout(s, fleet, platforms, { typicalBootSeconds: 95 });
  assert.equal(observed.estimate.seconds, 3 * 95 + 2 * 120);
  assert.equal(observed.estimate.bootSecondsFrom, 'observed');
  assert.equal(planRollout(spec({ canary: 0, afterCanary: 'promote' }), fleet, platforms).estimate.waitsForPromote, false);
});

test('rollout plan output shows the limits, every wave in order, what is left out and the estimate', () => {
  const fleet = [
    node(1, { traits: { rack: 'a1' } }),
    node(2, { traits: { rack: 'a1' } }),
    node(3, { traits: { rack: 'b12' } }),
    node(4, { traits: { rack: 'b12' }, boot: target, current: target }),
    node(5, { state: 'retired' }),
  ];
  const plan = planRollout(spec({ canary: 1, maxInFlight: '100%', failureDomain: { trait: 'rack' }, soakSeconds: 300, bootDeadlineSeconds: 900 }), fleet, platforms);
  assert.equal(
    formatRolloutPlan(plan),
    [
      'rollout of 20240601T000000Z: 3 nodes in 2 waves (1 canary), about 35 min',
      '  max in flight 3 (100% of 3), at most 1 per rack; soak 5 min; boot deadline 15 min; failure budget 0',
      '  after the canaries: wait for `fleetboot rollout promote`; a canary failure stops the rollout',
      '',
      '  wave 1 canary  cn1 (rack a1)',
      '  wave 2         cn2 (rack a1), cn3 (rack b12)',
      '',
      'skipped (1):',
      '  cn4: already runs 20240601T000000Z',
      '',
      'excluded (1):',
      '  cn5: retired',
      '',
      'estimate: 2 waves x 15 min boot (the boot deadline, an upper bound) + 1 soak x 5 min = 35 min, plus the wait for promote',
      '',
    ].join('\n'),
  );
});

test('waves are no larger than the head node admits at once (boot slots), with a warning saying so', () => {
  const fleet = Array.from({ length: 10 }, (_, i) => node(i + 1));
  const capped = planRollout(spec({ canary: 0, maxInFlight: '50%' }), fleet, platforms, { bootSlotLimit: 3 });
  assert.equal(capped.maxInFlight, 3);
  assert.deepEqual(capped.waves.map((w) => w.nodes.length), [3, 3, 3, 1]);
  assert.ok(capped.warnings.some((w) => /max in flight 5 is above the head node's 3 concurrent boots/.test(w)), capped.warnings.join('\n'));
  const under = planRollout(spec({ canary: 0, maxInFlight: 2 }), fleet, platforms, { bootSlotLimit: 3 });
  assert.equal(under.maxInFlight, 2);
  assert.ok(!under.warnings.some((w) => /concurrent boots/.test(w)));
  assert.equal(planRollout(spec({ canary: 0, maxInFlight: 8 }), fleet, platforms, { bootSlotLimit: 0 }).maxInFlight, 8);
});
