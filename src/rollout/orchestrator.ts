// The rollout orchestrator (docs/design.md "Rolling upgrades"): a pure decision, `nextTransition`,
// from a rollout's journal, what the nodes last reported and the clock to the one next
// transition, and a thin loop that journals each transition before carrying out its side
// effect (assign a platform, power-cycle). Operator verbs only write the journal, so the
// CLI in another process can pause or promote while the head node runs the loop.
import type { Logger } from '../log.ts';
import {
  failedStepStates,
  finishedStepStates,
  stepInFlight,
  type RolloutJournal,
  type RolloutPatch,
  type RolloutRecord,
  type RolloutState,
  type RolloutStep,
  type StepPatch,
  type StepState,
} from './journal.ts';
import { formatDuration, type RolloutPlan } from './plan.ts';
import type { PowerDriver } from './power.ts';

/** What the registry knows of a node now: its NodeRecord fields plus the module check. */
export interface NodeObservation {
  bootPlatform: string | null;
  currentPlatform: string | null;
  /** Boot time the node reported at its last check-in (ms). */
  lastBoot: number | null;
  /** When its last check-in arrived, by the head node's clock (ms). */
  lastSeen: number | null;
  /** The config-module hashes it reported at that check-in are the ones fleetboot served it. */
  modulesMatch: boolean;
}

export type BootVerdict = { verdict: 'waiting'; why: string } | { verdict: 'ok' } | { verdict: 'wrong'; why: string };

/** What a boot must come back on: the target, or for a rollback the platform it ran before. */
export type BootExpectation = { platform: string } | { notPlatform: string };

/**
 * Whether a node is back after the reboot journaled at `since`: a check-in that arrived after
 * it, from a boot after it, on the expected platform, with the modules fleetboot served.
 * `skewMs` allows for the node's clock and the whole seconds of its reported boot time.
 */
export function judgeBoot(obs: NodeObservation | null, since: number, expect: BootExpectation, skewMs = 5000): BootVerdict {
  if (obs === null) return { verdict: 'wrong', why: 'the node is no longer in the registry' };
  if (obs.lastSeen === null || obs.lastSeen <= since) return { verdict: 'waiting', why: 'no check-in since the reboot' };
  if (obs.lastBoot === null || obs.lastBoot < since - skewMs) return { verdict: 'waiting', why: 'its last check-in is from a boot before the reboot' };
  const running = obs.currentPlatform ?? '(none reported)';
  if ('platform' in expect && obs.currentPlatform !== expect.platform) return { verdict: 'wrong', why: `booted ${running} instead of ${expect.platform}` };
  if ('notPlatform' in expect && (obs.currentPlatform === null || obs.currentPlatform === expect.notPlatform)) {
    return { verdict: 'wrong', why: `booted ${running}` };
  }
  if (!obs.modulesMatch) return { verdict: 'wrong', why: 'its config modules differ from the ones fleetboot served' };
  return { verdict: 'ok' };
}

/**
 * A side effect. `onError` is the step state written when it throws. A power cycle's `then`
 * is written once the driver returns (that it returned is all it tells).
 */
export type Effect =
  | { kind: 'assign'; platform: string | null; onError: StepState; purpose: EffectPurpose }
  | { kind: 'power_cycle'; then: StepState; onError: StepState; purpose: EffectPurpose };

/** Whether an effect moves the node to the target or back from it (what its boot events say). */
export type EffectPurpose = 'rollout' | 'rollback';

/** What the ports are told about the effect they carry out, for the node's boot timeline. */
export interface EffectContext {
  rolloutId: number;
  purpose: EffectPurpose;
}

export type Transition =
  | {
      kind: 'step';
      rolloutId: number;
      nodeId: number;
      label: string;
      from: StepState;
      /** The step's reason before this transition (why it is failing, if it is). */
      priorReason: string | null;
      patch: StepPatch;
      /**
       * The idempotent effect the current state stands for, repeated before leaving it: a
       * crash may have come between its journal write and the effect.
       */
      ensure: Effect | null;
      /** The side effect of the new state, carried out after its journal write. */
      effect: Effect | null;
    }
  | { kind: 'rollout'; rolloutId: number; from: RolloutState; patch: RolloutPatch };

export interface DecisionOptions {
  /** See judgeBoot. */
  clockSkewMs?: number;
}

const assign = (platform: string | null, onError: StepState, purpose: EffectPurpose): Effect => ({ kind: 'assign', platform, onError, purpose });

function stepMove(r: RolloutRecord, s: RolloutStep, patch: StepPatch, ensure: Effect | null = null, effect: Effect | null = null): Transition {
  return { kind: 'step', rolloutId: r.id, nodeId: s.nodeId, label: s.label, from: s.state, priorReason: s.reason, patch, ensure, effect };
}

/** What a rollback must come back on: what the node ran before, else anything but the target. */
function rollbackExpectation(r: RolloutRecord, s: RolloutStep): BootExpectation {
  return s.previousRunning !== null && s.previousRunning !== r.target ? { platform: s.previousRunning } : { notPlatform: r.target };
}

function describeExpectation(e: BootExpectation): string {
  return 'platform' in e ? e.platform : `a platform other than ${e.notPlatform}`;
}

/** The next transition of a step in flight, or null while it waits. */
function stepTransition(r: RolloutRecord, s: RolloutStep, observe: (nodeId: number) => NodeObservation | null, now: number, skewMs: number): Transition | null {
  const deadlineMs = r.spec.bootDeadlineSeconds * 1000;
  const deadline = formatDuration(r.spec.bootDeadlineSeconds);
  switch (s.state) {
    case 'assigned':
      if (r.state === 'cancelled' || r.state === 'failed') {
        const reason = `the rollout ${r.state === 'cancelled' ? 'was cancelled' : 'failed'} before its reboot`;
        return stepMove(r, s, { state: 'reverting', at: now, reason }, null, assign(s.previousPlatform, 'rollback_failed', 'rollback'));
      }
      return stepMove(r, s, { state: 'power_cycling', at: now, rebootAt: now }, assign(r.target, 'rolling_back', 'rollout'), {
        kind: 'power_cycle',
        then: 'power_cycled',
        onError: 'rolling_back',
        purpose: 'rollout',
      });
    case 'power_cycling':
    case 'power_cycled': {
      const since = s.rebootAt ?? s.updatedAt;
      const v = judgeBoot(observe(s.nodeId), since, { platform: r.target }, skewMs);
      if (v.verdict === 'ok') return stepMove(r, s, { state: 'verified', at: now, finishedAt: now });
      const reason =
        v.verdict === 'wrong' ? v.why : now >= since + deadlineMs ? `not back on ${r.target} within ${deadline} of its reboot (${v.why})` : null;
      if (reason === null) return null;
      return stepMove(r, s, { state: 'rolling_back', at: now, reason }, null, assign(s.previousPlatform, 'rollback_failed', 'rollback'));
    }
    case 'rolling_back':
      // Never rebooted (the assignment or the power driver failed first): assigning back is all.
      if (s.rebootAt === null) return stepMove(r, s, { state: 'rolled_back', at: now, finishedAt: now }, assign(s.previousPlatform, 'rollback_failed', 'rollback'));
      return stepMove(r, s, { state: 'rollback_cycling', at: now, rebootAt: now }, assign(s.previousPlatform, 'rollback_failed', 'rollback'), {
        kind: 'power_cycle',
        then: 'rollback_cycled',
        onError: 'rollback_failed',
        purpose: 'rollback',
      });
    case 'rollback_cycling':
    case 'rollback_cycled': {
      const since = s.rebootAt ?? s.updatedAt;
      const expect = rollbackExpectation(r, s);
      const v = judgeBoot(observe(s.nodeId), since, expect, skewMs);
      if (v.verdict === 'ok') return stepMove(r, s, { state: 'rolled_back', at: now, finishedAt: now });
      const why =
        v.verdict === 'wrong' ? v.why : now >= since + deadlineMs ? `not back on ${describeExpectation(expect)} within ${deadline} (${v.why})` : null;
      if (why === null) return null;
      return stepMove(r, s, { state: 'rollback_failed', at: now, finishedAt: now, reason: `${s.reason ?? 'failed'}; rollback: ${why}` });
    }
    case 'reverting':
      return stepMove(r, s, { state: 'reverted', at: now, finishedAt: now }, assign(s.previousPlatform, 'rollback_failed', 'rollback'));
    default:
      return null;
  }
}

/** The wave whose turn it is: the first with a step not finished; null when all are. */
function currentWave(steps: readonly RolloutStep[]): number | null {
  let wave: number | null = null;
  for (const s of steps) if (!finishedStepStates.has(s.state) && (wave === null || s.wave < wave)) wave = s.wave;
  return wave;
}

/** When the waves before `wave` finished (their last step), or null for the first wave. */
function previousWaveFinishedAt(steps: readonly RolloutStep[], wave: number): number | null {
  let at: number | null = null;
  for (const s of steps) if (s.wave < wave) at = Math.max(at ?? -Infinity, s.finishedAt ?? s.updatedAt);
  return at;
}

function failureList(steps: readonly RolloutStep[]): string {
  return steps.map((s) => `${s.label}: ${s.reason ?? s.state}`).join('; ');
}

/** The rollout's own next transition (start a node, wait for promote, pause, finish), or null. */
function rolloutTransition(r: RolloutRecord, steps: readonly RolloutStep[], observe: (nodeId: number) => NodeObservation | null, now: number): Transition | null {
  if (r.state !== 'running') return null;
  const failed = steps.filter((s) => failedStepStates.has(s.state));
  const canaryFailed = failed.filter((s) => s.canary);
  if (canaryFailed.length > 0) {
    return { kind: 'rollout', rolloutId: r.id, from: r.state, patch: { state: 'failed', at: now, reason: `canary failed, no wave started: ${failureList(canaryFailed)}` } };
  }
  if (failed.length - r.acceptedFailures > r.spec.failureBudget) {
    const reason = `failure budget exceeded: ${failed.length} node${failed.length === 1 ? '' : 's'} failed (budget ${r.spec.failureBudget}${r.acceptedFailures > 0 ? `, ${r.acceptedFailures} accepted` : ''}): ${failureList(failed)}`;
    return { kind: 'rollout', rolloutId: r.id, from: r.state, patch: { state: 'paused', at: now, reason } };
  }
  const wave = currentWave(steps);
  if (wave === null) {
    const verified = steps.filter((s) => s.state === 'verified').length;
    const reason = `${verified} verified${failed.length > 0 ? `, ${failed.length} failed: ${failureList(failed)}` : ''}`;
    return { kind: 'rollout', rolloutId: r.id, from: r.state, patch: { state: 'done', at: now, reason } };
  }
  const inWave = steps.filter((s) => s.wave === wave);
  const started = inWave.some((s) => s.state !== 'pending');
  if (!started) {
    const before = steps.filter((s) => s.wave < wave);
    const afterCanaries = before.length > 0 && before.every((s) => s.canary) && !inWave.some((s) => s.canary);
    if (afterCanaries && r.spec.afterCanary === 'promote' && r.promotedAt === null) {
      const reason = `canaries verified (${before.map((s) => s.label).join(', ')}); waiting for \`fleetboot rollout promote ${r.id}\``;
      return { kind: 'rollout', rolloutId: r.id, from: r.state, patch: { state: 'waiting_promote', at: now, reason } };
    }
    const finishedAt = previousWaveFinishedAt(steps, wave);
    if (finishedAt !== null && now < finishedAt + r.spec.soakSeconds * 1000) return null;
  }
  // Limits count every node in flight, including ones a previous run left in flight.
  const flying = steps.filter((s) => stepInFlight(s.state));
  if (flying.length >= r.maxInFlight) return null;
  for (const s of inWave) {
    if (s.state !== 'pending') continue;
    if (r.failureDomain && flying.filter((f) => f.domain === s.domain).length >= r.failureDomain.maxInFlight) continue;
    const obs = observe(s.nodeId);
    if (obs === null) {
      return stepMove(r, s, { state: 'rolled_back', at: now, startedAt: now, finishedAt: now, reason: 'the node is no longer in the registry' });
    }
    // A node already assigned the target but not running it goes back to what it runs.
    const previousPlatform = obs.bootPlatform === r.target ? obs.currentPlatform : obs.bootPlatform;
    return stepMove(
      r,
      s,
      { state: 'assigned', at: now, startedAt: now, previousPlatform, previousRunning: obs.currentPlatform },
      null,
      assign(r.target, 'rolling_back', 'rollout'),
    );
  }
  return null;
}

/**
 * The one next transition of a rollout, or null while it waits (for check-ins, a deadline,
 * the soak, an operator). Steps in flight go first, in plan order, whatever the rollout's
 * state: a paused, cancelled or failed rollout still finishes the nodes it started.
 */
export function nextTransition(
  r: RolloutRecord,
  steps: readonly RolloutStep[],
  observe: (nodeId: number) => NodeObservation | null,
  now: number,
  options: DecisionOptions = {},
): Transition | null {
  const skewMs = options.clockSkewMs ?? 5000;
  for (const s of steps) {
    const t = stepTransition(r, s, observe, now, skewMs);
    if (t) return t;
  }
  return rolloutTransition(r, steps, observe, now);
}

/** When the clock alone next moves the rollout (a deadline, the end of a soak), or null. */
export function rolloutWakeAt(r: RolloutRecord, steps: readonly RolloutStep[]): number | null {
  const times: number[] = [];
  const deadlineMs = r.spec.bootDeadlineSeconds * 1000;
  for (const s of steps) {
    if (['power_cycling', 'power_cycled', 'rollback_cycling', 'rollback_cycled'].includes(s.state)) times.push((s.rebootAt ?? s.updatedAt) + deadlineMs);
  }
  const wave = currentWave(steps);
  if (r.state === 'running' && wave !== null && steps.every((s) => s.wave !== wave || s.state === 'pending')) {
    const finishedAt = previousWaveFinishedAt(steps, wave);
    if (finishedAt !== null) times.push(finishedAt + r.spec.soakSeconds * 1000);
  }
  return times.length > 0 ? Math.min(...times) : null;
}

/** Whether the orchestrator still has work in this rollout: it is not over, or nodes are in flight. */
export function rolloutActive(r: RolloutRecord, steps: readonly RolloutStep[]): boolean {
  return r.state === 'running' || r.state === 'waiting_promote' || r.state === 'paused' || steps.some((s) => stepInFlight(s.state));
}

/** What the world looks like to the orchestrator. */
export interface RolloutPorts {
  now(): number;
  /** The node's registry record as an observation; null when the node is gone. */
  observe(nodeId: number): NodeObservation | null;
  /**
   * Sets what the node boots next (null: the default platform). Must be a no-op when the
   * node already boots `platform`: it is repeated after a restart.
   */
  assignPlatform(nodeId: number, platform: string | null, context: EffectContext): void | Promise<void>;
  /** The node's power driver; the orchestrator calls powerCycle at most once per journaled reboot. */
  powerDriver(nodeId: number, context: EffectContext): PowerDriver;
}

/** A step transition the orchestrator journaled: what an observer (the node's boot timeline) is told. */
export interface StepChange {
  rolloutId: number;
  nodeId: number;
  label: string;
  from: StepState;
  to: StepState;
  /** The step's reason after the write (why it failed or was reverted), kept from earlier writes. */
  reason: string | null;
  at: number;
}

export interface OrchestratorOptions extends DecisionOptions {
  log?: Logger;
  /** Called after each step write; it throwing is logged, never undoes or stops the rollout. */
  onStep?: (change: StepChange) => void;
}

export interface TickResult {
  /** Transitions journaled in this tick. */
  transitions: number;
  /** When to tick again if no check-in arrives first; null when only an operator or a check-in can move anything. */
  wakeAt: number | null;
}

/** Another writer moved a step or rollout first: this orchestrator stops instead of guessing. */
export class RolloutConflictError extends Error {
  override readonly name = 'RolloutConflictError';
}

/**
 * Carries rollouts forward. One runs per journal (the head node's); call `tick` when a node
 * checks in, when `wakeAt` comes, and every few seconds besides, since operator verbs from
 * another process only write the journal. A crash at any point is resumed by a new
 * orchestrator on the same journal.
 */
export class RolloutOrchestrator {
  constructor(
    private readonly journal: RolloutJournal,
    private readonly ports: RolloutPorts,
    private readonly options: OrchestratorOptions = {},
  ) {}

  private queue: Promise<unknown> = Promise.resolve();
  /**
   * Rollouts seen over (a final state, no step in flight): nothing can move them again (the
   * operator verbs refuse final states, finished steps never change), so their steps are not
   * read again. A journal with a long history otherwise cost a second per tick.
   */
  private readonly closed = new Set<number>();

  /** The rollouts that may still move, with their steps. */
  private open(): { r: RolloutRecord; steps: RolloutStep[] }[] {
    const out: { r: RolloutRecord; steps: RolloutStep[] }[] = [];
    for (const r of this.journal.list()) {
      if (this.closed.has(r.id)) continue;
      const steps = this.journal.steps(r.id);
      if (rolloutActive(r, steps)) out.push({ r, steps });
      else if (r.state === 'done' || r.state === 'cancelled' || r.state === 'failed') this.closed.add(r.id);
    }
    return out;
  }

  /**
   * Journals and carries out every transition due now; returns when everything waits.
   * Calls made while one runs (a check-in during a power cycle) run after it, one at a time.
   */
  tick(): Promise<TickResult> {
    const run = this.queue.then(() => this.tickNow());
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async tickNow(): Promise<TickResult> {
    let transitions = 0;
    for (;;) {
      const t = this.next();
      if (t === null) break;
      await this.apply(t);
      transitions++;
    }
    let wakeAt: number | null = null;
    for (const { r, steps } of this.open()) {
      const w = rolloutWakeAt(r, steps);
      if (w !== null && (wakeAt === null || w < wakeAt)) wakeAt = w;
    }
    return { transitions, wakeAt };
  }

  private next(): Transition | null {
    const observe = (id: number): NodeObservation | null => this.ports.observe(id);
    for (const { r, steps } of this.open()) {
      const t = nextTransition(r, steps, observe, this.ports.now(), this.options);
      if (t) return t;
    }
    return null;
  }

  private async apply(t: Transition): Promise<void> {
    if (t.kind === 'rollout') {
      if (!this.journal.updateRollout(t.rolloutId, t.from, t.patch)) return; // an operator moved it first: decide again
      this.options.log?.info({ event: 'rollout', rollout: t.rolloutId, from: t.from, to: t.patch.state, reason: t.patch.reason }, `rollout ${t.rolloutId}: ${t.patch.state}`);
      return;
    }
    if (t.ensure && !(await this.attempt(t, t.from, t.ensure))) return;
    this.write(t, t.from, t.patch);
    if (t.effect) await this.attempt(t, t.patch.state, t.effect);
  }

  /** Carries out an effect; on failure journals its error state. False when it failed. */
  private async attempt(t: Transition & { kind: 'step' }, state: StepState, effect: Effect): Promise<boolean> {
    let error: unknown = null;
    // No driver at all: the node was certainly not rebooted, so a rollback need not reboot it.
    let noDriver = false;
    try {
      const context: EffectContext = { rolloutId: t.rolloutId, purpose: effect.purpose };
      if (effect.kind === 'assign') await this.ports.assignPlatform(t.nodeId, effect.platform, context);
      else {
        let driver: PowerDriver;
        try {
          driver = this.ports.powerDriver(t.nodeId, context);
        } catch (e) {
          noDriver = true;
          throw e;
        }
        await driver.powerCycle();
      }
    } catch (e) {
      error = e;
    }
    const at = this.ports.now();
    if (error !== null) {
      const what = effect.kind === 'assign' ? `assigning ${effect.platform ?? 'the default platform'} failed` : noDriver ? 'no power driver' : 'power cycle failed';
      const message = `${what}: ${error instanceof Error ? error.message : String(error)}`;
      const prior = t.patch.reason ?? t.priorReason;
      const reason = effect.onError === 'rolling_back' || prior === null || prior === undefined ? message : `${prior}; rollback: ${message}`;
      const patch: StepPatch = { state: effect.onError, at, reason };
      if (finishedStepStates.has(effect.onError)) patch.finishedAt = at;
      if (noDriver && effect.onError === 'rolling_back') patch.rebootAt = null;
      this.write(t, state, patch);
      return false;
    }
    if (effect.kind === 'power_cycle') this.write(t, state, { state: effect.then, at });
    return true;
  }

  private write(t: Transition & { kind: 'step' }, from: StepState, patch: StepPatch): void {
    if (!this.journal.updateStep(t.rolloutId, t.nodeId, from, patch)) {
      throw new RolloutConflictError(`rollout ${t.rolloutId}: node ${t.label} was not in ${from} any more; is another orchestrator running on this journal?`);
    }
    this.options.log?.info(
      { event: 'rollout_step', rollout: t.rolloutId, node: t.nodeId, from, to: patch.state, reason: patch.reason },
      `rollout ${t.rolloutId}: ${t.label} ${from} -> ${patch.state}`,
    );
    if (!this.options.onStep) return;
    try {
      this.options.onStep({ rolloutId: t.rolloutId, nodeId: t.nodeId, label: t.label, from, to: patch.state, reason: patch.reason !== undefined ? patch.reason : t.patch.reason !== undefined ? t.patch.reason : t.priorReason, at: patch.at });
    } catch (err) {
      this.options.log?.error({ err, event: 'rollout_step_hook_failed', rollout: t.rolloutId, node: t.nodeId }, 'recording a rollout step failed');
    }
  }
}

/** An operator verb that does not apply to the rollout's state; `message` says what would. */
export class RolloutStateError extends Error {
  override readonly name = 'RolloutStateError';
}

function mustGet(journal: RolloutJournal, id: number): RolloutRecord {
  const r = journal.get(id);
  if (!r) throw new RolloutStateError(`no rollout ${id}`);
  return r;
}

/** Stores a plan as a new rollout. Refused while a planned node is in another rollout that is not over. */
export function startRollout(journal: RolloutJournal, plan: RolloutPlan, now: number): RolloutRecord {
  const planned = new Set(plan.waves.flatMap((w) => w.nodes.map((n) => n.nodeId)));
  for (const r of journal.list()) {
    const steps = journal.steps(r.id);
    if (!rolloutActive(r, steps)) continue;
    const busy = steps.filter((s) => planned.has(s.nodeId) && (r.state === 'running' || r.state === 'waiting_promote' || r.state === 'paused' || stepInFlight(s.state)));
    if (busy.length > 0) {
      throw new RolloutStateError(`rollout ${r.id} (${r.state}) still has ${busy.map((s) => s.label).join(', ')}; cancel it or wait for it to finish`);
    }
  }
  return journal.create({
    spec: plan.spec,
    target: plan.target,
    maxInFlight: plan.maxInFlight,
    failureDomain: plan.failureDomain,
    createdAt: now,
    steps: plan.waves.flatMap((w) => w.nodes.map((n) => ({ nodeId: n.nodeId, label: n.label, wave: w.index, canary: w.canary, domain: n.domain }))),
  });
}

/** A node's place in a rollout that is not over. */
export interface NodeInRollout {
  rollout: RolloutRecord;
  step: RolloutStep;
  /** The rollout will still assign or reboot this node: its step is pending or in flight. */
  claimed: boolean;
}

/**
 * The rollout a node is in: the newest one still active (rolloutActive) that lists it, or
 * null. `node show` names it; a manual platform assignment is refused while it is `claimed`.
 */
export function rolloutOfNode(journal: RolloutJournal, nodeId: number): NodeInRollout | null {
  const rollouts = journal.list();
  for (let i = rollouts.length - 1; i >= 0; i--) {
    const r = rollouts[i]!;
    const steps = journal.steps(r.id);
    const step = steps.find((s) => s.nodeId === nodeId);
    if (!step || !rolloutActive(r, steps)) continue;
    // A pending step of a cancelled or failed rollout never starts (rolloutTransition needs `running`).
    const willStart = step.state === 'pending' && (r.state === 'running' || r.state === 'waiting_promote' || r.state === 'paused');
    return { rollout: r, step, claimed: willStart || stepInFlight(step.state) };
  }
  return null;
}

/** Applies an operator's change, retrying when the orchestrator moved the rollout meanwhile. */
function operatorChange(journal: RolloutJournal, id: number, decide: (r: RolloutRecord) => RolloutPatch): RolloutRecord {
  for (let i = 0; i < 5; i++) {
    const r = mustGet(journal, id);
    if (journal.updateRollout(id, r.state, decide(r))) return mustGet(journal, id);
  }
  throw new RolloutStateError(`rollout ${id} kept changing; try again`);
}

/** `rollout promote`: past the canaries, the waves start. */
export function promoteRollout(journal: RolloutJournal, id: number, now: number): RolloutRecord {
  return operatorChange(journal, id, (r) => {
    if (r.state !== 'waiting_promote') throw new RolloutStateError(`rollout ${id} is ${r.state}; promote is for a rollout waiting after its canaries`);
    return { state: 'running', at: now, reason: null, promotedAt: now };
  });
}

/** `rollout pause`: nodes in flight finish, no more start. */
export function pauseRollout(journal: RolloutJournal, id: number, now: number, why = 'paused by an operator'): RolloutRecord {
  return operatorChange(journal, id, (r) => {
    if (r.state !== 'running' && r.state !== 'waiting_promote') throw new RolloutStateError(`rollout ${id} is ${r.state}; only a running rollout can be paused`);
    return { state: 'paused', at: now, reason: why };
  });
}

/** `rollout resume`: the failures so far are accepted; the budget counts the ones after. */
export function resumeRollout(journal: RolloutJournal, id: number, now: number): RolloutRecord {
  return operatorChange(journal, id, (r) => {
    if (r.state !== 'paused') throw new RolloutStateError(`rollout ${id} is ${r.state}; only a paused rollout can be resumed`);
    const failures = journal.steps(id).filter((s) => failedStepStates.has(s.state)).length;
    return { state: 'running', at: now, reason: null, acceptedFailures: failures };
  });
}

/** `rollout cancel`: nodes already rebooting finish; nodes assigned but not rebooted get their platform back. */
export function cancelRollout(journal: RolloutJournal, id: number, now: number, why = 'cancelled by an operator'): RolloutRecord {
  return operatorChange(journal, id, (r) => {
    if (r.state === 'done' || r.state === 'failed' || r.state === 'cancelled') throw new RolloutStateError(`rollout ${id} is already ${r.state}`);
    return { state: 'cancelled', at: now, reason: why };
  });
}
