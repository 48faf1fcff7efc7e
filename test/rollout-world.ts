// A fake fleet for rollout tests: a clock that moves only when told, nodes that boot what they
// are assigned and check in after a while (or misbehave on a chosen platform), power drivers
// that record every cycle, and journal wrappers that measure in-flight limits and crash the
// orchestrator after a chosen number of steps.
import type { Mac } from '../src/mac.ts';
import { MemoryRolloutJournal, stepInFlight, type RolloutJournal, type RolloutPatch, type RolloutState, type StepPatch, type StepState } from '../src/rollout/journal.ts';
import type { NodeObservation, RolloutOrchestrator, RolloutPorts } from '../src/rollout/orchestrator.ts';
import type { PlannableNode } from '../src/rollout/plan.ts';
import { PowerError, type PowerDriver, type PowerState } from '../src/rollout/power.ts';

export const oldPlatform = '20240101T000000Z';
export const newPlatform = '20240601T000000Z';
export const platforms = [{ stamp: oldPlatform }, { stamp: newPlatform }];

export class FakeClock {
  constructor(public t = Date.UTC(2024, 5, 1)) {}
  readonly now = (): number => this.t;
}

export type Fault = 'silent' | 'wrong_platform' | 'bad_modules';

export interface FakeNodeOptions {
  rack?: string;
  /** Reset to check-in. */
  bootMs?: number;
  /** What goes wrong when the node boots `on`. */
  fault?: { on: string; kind: Fault };
  /** Every power cycle throws. */
  powerFails?: boolean;
  /** The node has no power driver (asking for one throws). */
  noDriver?: boolean;
}

interface FakeNode extends NodeObservation {
  id: number;
  hostname: string;
  previousPlatform: string | null;
  options: FakeNodeOptions;
  checkIn: { at: number; platform: string | null; lastBoot: number; modulesMatch: boolean } | null;
}

export interface Cycle {
  nodeId: number;
  at: number;
  /** What the node was assigned to boot when it was cycled. */
  platform: string | null;
}

export class FakeFleet implements RolloutPorts {
  readonly nodes = new Map<number, FakeNode>();
  readonly cycles: Cycle[] = [];
  /** Called after every power cycle (a test may pause or cancel here). */
  onCycle: ((c: Cycle) => void) | null = null;

  constructor(
    readonly clock: FakeClock,
    readonly defaultPlatform = oldPlatform,
  ) {}

  readonly now = (): number => this.clock.t;

  add(id: number, options: FakeNodeOptions = {}): this {
    this.nodes.set(id, {
      id,
      hostname: `cn${id}`,
      bootPlatform: oldPlatform,
      previousPlatform: null,
      currentPlatform: oldPlatform,
      lastBoot: this.clock.t - 86_400_000,
      lastSeen: this.clock.t - 60_000,
      modulesMatch: true,
      options,
      checkIn: null,
    });
    return this;
  }

  /** The nodes as the planner sees them. */
  records(): PlannableNode[] {
    return [...this.nodes.values()].map((n) => ({
      id: n.id,
      uuid: null,
      hostname: n.hostname,
      state: 'running',
      bootPlatform: n.bootPlatform,
      currentPlatform: n.currentPlatform,
      networkConfig: { hostname: n.hostname },
      traits: n.options.rack ? { rack: n.options.rack } : ({} as Record<string, string>),
      nics: [{ mac: `52:54:00:00:00:${n.id.toString(16).padStart(2, '0')}` as Mac, isAdmin: true }],
    }));
  }

  node(id: number): FakeNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no fake node ${id}`);
    return n;
  }

  cyclesOf(id: number): Cycle[] {
    return this.cycles.filter((c) => c.nodeId === id);
  }

  private deliverDue(): void {
    for (const n of this.nodes.values()) {
      if (n.checkIn && n.checkIn.at <= this.clock.t) {
        n.currentPlatform = n.checkIn.platform;
        n.lastBoot = n.checkIn.lastBoot;
        n.lastSeen = n.checkIn.at;
        n.modulesMatch = n.checkIn.modulesMatch;
        n.checkIn = null;
      }
    }
  }

  /** The next check-in still to come, or null. */
  nextEventAt(): number | null {
    this.deliverDue();
    let at: number | null = null;
    for (const n of this.nodes.values()) if (n.checkIn && (at === null || n.checkIn.at < at)) at = n.checkIn.at;
    return at;
  }

  observe(nodeId: number): NodeObservation | null {
    this.deliverDue();
    const n = this.nodes.get(nodeId);
    return n ? { bootPlatform: n.bootPlatform, currentPlatform: n.currentPlatform, lastBoot: n.lastBoot, lastSeen: n.lastSeen, modulesMatch: n.modulesMatch } : null;
  }

  /** Like `node set-platform`: the platform it had becomes its previous one; a no-op when unchanged. */
  assignPlatform(nodeId: number, platform: string | null): void {
    const n = this.node(nodeId);
    if (n.bootPlatform === platform) return;
    n.previousPlatform = n.bootPlatform;
    n.bootPlatform = platform;
  }

  powerDriver(nodeId: number): PowerDriver {
    if (this.node(nodeId).options.noDriver) throw new PowerError(`cn${nodeId} has no power spec`);
    const fleet = this;
    return {
      kind: 'fake',
      async powerCycle(): Promise<void> {
        fleet.cycle(nodeId);
      },
      async powerOff(): Promise<void> {},
      async powerOn(): Promise<void> {},
      async status(): Promise<PowerState> {
        return 'on';
      },
    };
  }

  private cycle(nodeId: number): void {
    const n = this.node(nodeId);
    if (n.options.powerFails) throw new PowerError(`BMC of cn${nodeId} does not answer`);
    const at = this.clock.t;
    const c: Cycle = { nodeId, at, platform: n.bootPlatform };
    this.cycles.push(c);
    const booted = n.bootPlatform ?? this.defaultPlatform;
    const fault = n.options.fault && n.options.fault.on === booted ? n.options.fault.kind : null;
    // A reset loses whatever check-in the old boot still had coming.
    n.checkIn =
      fault === 'silent'
        ? null
        : {
            at: at + (n.options.bootMs ?? 90_000),
            platform: fault === 'wrong_platform' ? (n.previousPlatform ?? oldPlatform) : booted,
            lastBoot: at + 2000,
            modulesMatch: fault !== 'bad_modules',
          };
    this.onCycle?.(c);
  }
}

/** Ticks and moves the clock to the next deadline, soak end or check-in until nothing is left. */
export async function settle(orch: RolloutOrchestrator, fleet: FakeFleet, limit = 10_000): Promise<void> {
  for (let i = 0; i < limit; i++) {
    const { wakeAt } = await orch.tick();
    const next = [wakeAt, fleet.nextEventAt()].filter((t): t is number => t !== null);
    if (next.length === 0) return;
    const at = Math.min(...next);
    if (at <= fleet.clock.t) throw new Error(`the orchestrator is stuck: asked to wake at ${at}, now ${fleet.clock.t}`);
    fleet.clock.t = at;
  }
  throw new Error('the rollout did not settle');
}

/** A journal that checks the in-flight limits after every step write. */
export class MeasuringJournal implements RolloutJournal {
  maxInFlight = 0;
  maxPerDomain = 0;
  readonly writes: { nodeId: number; from: StepState; to: StepState; at: number }[] = [];

  constructor(readonly inner: RolloutJournal = new MemoryRolloutJournal()) {}

  create: RolloutJournal['create'] = (r) => this.inner.create(r);
  get: RolloutJournal['get'] = (id) => this.inner.get(id);
  list: RolloutJournal['list'] = () => this.inner.list();
  steps: RolloutJournal['steps'] = (id) => this.inner.steps(id);

  updateStep(rolloutId: number, nodeId: number, from: StepState, patch: StepPatch): boolean {
    const ok = this.inner.updateStep(rolloutId, nodeId, from, patch);
    if (ok) {
      this.writes.push({ nodeId, from, to: patch.state, at: patch.at });
      const flying = this.inner.steps(rolloutId).filter((s) => stepInFlight(s.state));
      this.maxInFlight = Math.max(this.maxInFlight, flying.length);
      const per = new Map<string, number>();
      for (const s of flying) per.set(s.domain, (per.get(s.domain) ?? 0) + 1);
      this.maxPerDomain = Math.max(this.maxPerDomain, ...per.values(), 0);
    }
    return ok;
  }

  updateRollout(id: number, from: RolloutState, patch: RolloutPatch): boolean {
    return this.inner.updateRollout(id, from, patch);
  }
}

/** Thrown by a crashed orchestrator's journal and ports: the process is gone. */
export class Crash extends Error {
  override readonly name = 'Crash';
}

/**
 * The journal and ports of an orchestrator that dies after `limit` steps, a step being one
 * journal write or one side effect (assign, power cycle). `ops` names each step it got to,
 * and `refused` the one it died before.
 */
export function crashingAfter(limit: number, journal: RolloutJournal, fleet: FakeFleet) {
  const ops: string[] = [];
  let refused: string | null = null;
  const step = (name: string): void => {
    if (refused !== null || ops.length >= limit) {
      refused ??= name;
      throw new Crash(`crashed before ${name}`);
    }
    ops.push(name);
  };
  const crashJournal: RolloutJournal = {
    create: (r) => journal.create(r),
    get: (id) => journal.get(id),
    list: () => journal.list(),
    steps: (id) => journal.steps(id),
    updateStep(rolloutId, nodeId, from, patch) {
      step(`journal cn${nodeId} ${patch.state}`);
      return journal.updateStep(rolloutId, nodeId, from, patch);
    },
    updateRollout(id, from, patch) {
      step(`journal rollout ${patch.state}`);
      return journal.updateRollout(id, from, patch);
    },
  };
  const ports: RolloutPorts = {
    now: () => fleet.now(),
    observe: (id) => fleet.observe(id),
    assignPlatform(id, platform) {
      step(`assign cn${id} ${platform}`);
      fleet.assignPlatform(id, platform);
    },
    powerDriver(id) {
      const real = fleet.powerDriver(id);
      return {
        ...real,
        async powerCycle() {
          step(`power cycle cn${id}`);
          await real.powerCycle();
        },
      };
    },
  };
  return { journal: crashJournal, ports, ops, refused: () => refused };
}
