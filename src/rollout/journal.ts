// The rollout journal: every rollout and every node's step in it, with states and times.
// The orchestrator writes a transition here BEFORE carrying out its side effect, so after a
// crash the journal says what may have happened (docs/design.md "Rolling upgrades": state lives
// in the store, a restart resumes). The SQLite store implements this interface; the
// in-memory one below is for tests and for `rollout plan`-style dry runs.
import type { RolloutSpec } from './plan.ts';

/**
 * - `running`: waves start as their turn comes;
 * - `waiting_promote`: the canaries are verified and the spec says to wait for `promote`;
 * - `paused`: no node starts (`reason` says why: an operator, or the failure budget);
 * - `cancelled`, `failed` (a canary failed), `done`: final; nodes in flight still finish.
 */
export const rolloutStates = ['running', 'waiting_promote', 'paused', 'cancelled', 'done', 'failed'] as const;
export type RolloutState = (typeof rolloutStates)[number];

/**
 * A node's step. Upgrade: pending -> assigned -> power_cycling -> power_cycled -> verified.
 * Failure (deadline passed, wrong platform or modules, power error): rolling_back ->
 * rollback_cycling -> rollback_cycled -> rolled_back, or rollback_failed when it does not
 * come back either. Cancelled before its reboot: assigned -> reverting -> reverted.
 * `power_cycling` / `rollback_cycling` are written before the power driver is called: a
 * step found in one after a crash may or may not have been rebooted, and is never rebooted again.
 */
export const stepStates = [
  'pending',
  'assigned',
  'power_cycling',
  'power_cycled',
  'verified',
  'rolling_back',
  'rollback_cycling',
  'rollback_cycled',
  'rolled_back',
  'rollback_failed',
  'reverting',
  'reverted',
] as const;
export type StepState = (typeof stepStates)[number];

/** Steps that are over: the node is not touched again by this rollout. */
export const finishedStepStates: ReadonlySet<StepState> = new Set(['verified', 'rolled_back', 'rollback_failed', 'reverted']);
/** Steps that count against the failure budget. */
export const failedStepStates: ReadonlySet<StepState> = new Set(['rolled_back', 'rollback_failed']);
/** Steps in flight: started and not over; they count against max in flight. */
export function stepInFlight(state: StepState): boolean {
  return state !== 'pending' && !finishedStepStates.has(state);
}

export interface RolloutRecord {
  id: number;
  /** The spec as parsed (plain JSON). */
  spec: RolloutSpec;
  target: string;
  /** Resolved from the spec when planned (a percentage turned into nodes). */
  maxInFlight: number;
  failureDomain: { trait: string; maxInFlight: number } | null;
  state: RolloutState;
  /** Why it is paused, failed, cancelled or waiting; a summary once done. */
  reason: string | null;
  /** When an operator promoted it past its canaries. */
  promotedAt: number | null;
  /** Failures an operator accepted by resuming; the budget counts the ones after. */
  acceptedFailures: number;
  createdAt: number;
  updatedAt: number;
}

export interface RolloutStep {
  rolloutId: number;
  nodeId: number;
  /** The node's name when planned, for messages. */
  label: string;
  /** 1-based wave from the plan; waves run in order. */
  wave: number;
  canary: boolean;
  /** Failure-domain value from the plan (`(none)`, or `(all)` without a domain). */
  domain: string;
  state: StepState;
  /** What the node booted before the target was assigned (null: the default): a rollback assigns it again. */
  previousPlatform: string | null;
  /** What the node reported running then: a rollback must bring it back on it. */
  previousRunning: string | null;
  /** When the last power cycle was journaled: only a check-in from a boot after it counts. */
  rebootAt: number | null;
  /** Why the node failed or was reverted. */
  reason: string | null;
  startedAt: number | null;
  finishedAt: number | null;
  updatedAt: number;
}

export interface NewRollout {
  spec: RolloutSpec;
  target: string;
  maxInFlight: number;
  failureDomain: { trait: string; maxInFlight: number } | null;
  createdAt: number;
  /** In plan order: wave, then place in the wave. */
  steps: Pick<RolloutStep, 'nodeId' | 'label' | 'wave' | 'canary' | 'domain'>[];
}

/** A step transition: the new state, when, and the fields it sets (others are kept). */
export interface StepPatch {
  state: StepState;
  at: number;
  previousPlatform?: string | null;
  previousRunning?: string | null;
  rebootAt?: number | null;
  reason?: string | null;
  startedAt?: number | null;
  finishedAt?: number | null;
}

export interface RolloutPatch {
  state: RolloutState;
  at: number;
  reason?: string | null;
  promotedAt?: number | null;
  acceptedFailures?: number;
}

/**
 * Durable storage of rollouts. Every write is durable when it returns (the orchestrator acts
 * on the world only after) and is compare-and-set on the state it expects, so the head node's
 * orchestrator and an operator's CLI writing at once never overwrite each other.
 */
export interface RolloutJournal {
  /** Stores a rollout in state `running` and its steps as `pending`, all in one transaction. */
  create(rollout: NewRollout): RolloutRecord;
  get(id: number): RolloutRecord | undefined;
  /** Every rollout, by id. */
  list(): RolloutRecord[];
  /** A rollout's steps in plan order (as given to `create`). */
  steps(rolloutId: number): RolloutStep[];
  /** Applies `patch` when the step is in state `from`; false (nothing written) when it is not. */
  updateStep(rolloutId: number, nodeId: number, from: StepState, patch: StepPatch): boolean;
  /** Applies `patch` when the rollout is in state `from`; false (nothing written) when it is not. */
  updateRollout(id: number, from: RolloutState, patch: RolloutPatch): boolean;
}

/** The fields a patch sets: a key present with `undefined` keeps the stored value. */
function definedFields<P extends { at: number }>(patch: P): Partial<Omit<P, 'at'>> {
  const out: Partial<Omit<P, 'at'>> = {};
  for (const [k, v] of Object.entries(patch)) if (k !== 'at' && v !== undefined) Object.assign(out, { [k]: v });
  return out;
}

/** A journal in memory: for tests. Values are copied in and out, as a real store would. */
export class MemoryRolloutJournal implements RolloutJournal {
  private readonly rollouts = new Map<number, RolloutRecord>();
  private readonly stepsOf = new Map<number, RolloutStep[]>();
  private nextId = 1;

  create(input: NewRollout): RolloutRecord {
    const id = this.nextId++;
    const record: RolloutRecord = {
      id,
      spec: structuredClone(input.spec),
      target: input.target,
      maxInFlight: input.maxInFlight,
      failureDomain: input.failureDomain && { ...input.failureDomain },
      state: 'running',
      reason: null,
      promotedAt: null,
      acceptedFailures: 0,
      createdAt: input.createdAt,
      updatedAt: input.createdAt,
    };
    this.rollouts.set(id, record);
    this.stepsOf.set(
      id,
      input.steps.map((s) => ({
        ...s,
        rolloutId: id,
        state: 'pending',
        previousPlatform: null,
        previousRunning: null,
        rebootAt: null,
        reason: null,
        startedAt: null,
        finishedAt: null,
        updatedAt: input.createdAt,
      })),
    );
    return structuredClone(record);
  }

  get(id: number): RolloutRecord | undefined {
    const r = this.rollouts.get(id);
    return r && structuredClone(r);
  }

  list(): RolloutRecord[] {
    return [...this.rollouts.values()].map((r) => structuredClone(r));
  }

  steps(rolloutId: number): RolloutStep[] {
    return (this.stepsOf.get(rolloutId) ?? []).map((s) => ({ ...s }));
  }

  updateStep(rolloutId: number, nodeId: number, from: StepState, patch: StepPatch): boolean {
    const step = this.stepsOf.get(rolloutId)?.find((s) => s.nodeId === nodeId);
    if (!step || step.state !== from) return false;
    Object.assign(step, definedFields(patch), { updatedAt: patch.at });
    return true;
  }

  updateRollout(id: number, from: RolloutState, patch: RolloutPatch): boolean {
    const r = this.rollouts.get(id);
    if (!r || r.state !== from) return false;
    Object.assign(r, definedFields(patch), { updatedAt: patch.at });
    return true;
  }
}
