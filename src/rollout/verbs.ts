// The rollout verbs as the CLI and the HTTP API both call them: plan or start from the
// registry, and the public shape of a rollout. They only read the registry and write the
// journal; the head node's rollout service carries a started rollout out.
import type { Store } from '../store/store.ts';
import type { RolloutRecord, RolloutStep } from './journal.ts';
import { startRollout } from './orchestrator.ts';
import { parseRolloutSpec, planRollout, type RolloutPlan } from './plan.ts';
import { summarizeRollout, type RolloutSummary } from './status.ts';

/**
 * The median reboot-to-verified time of the latest verified nodes (seconds), or null with no
 * history: a plan's estimate from what boots took here rather than from the deadline.
 */
export function typicalBootSeconds(store: Store, sample = 50): number | null {
  const took: number[] = [];
  for (const r of store.rollouts.list().reverse()) {
    for (const s of store.rollouts.steps(r.id)) {
      if (s.state === 'verified' && s.rebootAt !== null && s.finishedAt !== null) took.push((s.finishedAt - s.rebootAt) / 1000);
    }
    if (took.length >= sample) break;
  }
  if (took.length === 0) return null;
  const sorted = took.slice(0, sample).sort((a, b) => a - b);
  return Math.max(1, Math.round(sorted[Math.floor(sorted.length / 2)]!));
}

/** A plan for `input` (a spec as JSON) against the fleet and platforms as they are now; throws RolloutPlanError. */
export function planFromRegistry(store: Store, input: unknown, options: { bootSlotLimit?: number } = {}): RolloutPlan {
  const typical = typicalBootSeconds(store);
  return planRollout(parseRolloutSpec(input), store.nodes.list(), store.platforms.list(), { ...options, ...(typical === null ? {} : { typicalBootSeconds: typical }) });
}

/** Plans and stores a rollout in one go; throws RolloutPlanError or RolloutStateError (a node is in another rollout). */
export function startFromRegistry(store: Store, input: unknown, options: { bootSlotLimit?: number } = {}): { rollout: RolloutRecord; plan: RolloutPlan } {
  const plan = planFromRegistry(store, input, options);
  return { rollout: startRollout(store.rollouts, plan, store.now()), plan };
}

const iso = (t: number | null): string | null => (t === null ? null : new Date(t).toISOString());

export interface RolloutView {
  id: number;
  target: string;
  state: RolloutRecord['state'];
  reason: string | null;
  spec: RolloutRecord['spec'];
  maxInFlight: number;
  failureDomain: RolloutRecord['failureDomain'];
  promotedAt: string | null;
  acceptedFailures: number;
  createdAt: string | null;
  updatedAt: string | null;
  summary: RolloutSummary;
  steps?: {
    nodeId: number;
    label: string;
    wave: number;
    canary: boolean;
    domain: string;
    state: RolloutStep['state'];
    reason: string | null;
    previousPlatform: string | null;
    previousRunning: string | null;
    rebootAt: string | null;
    startedAt: string | null;
    finishedAt: string | null;
  }[];
}

/** A rollout as `--json` and the API show it: times as ISO strings; steps unless `withSteps` is false. */
export function rolloutView(r: RolloutRecord, steps: readonly RolloutStep[], now: number, withSteps = true): RolloutView {
  const view: RolloutView = {
    id: r.id,
    target: r.target,
    state: r.state,
    reason: r.reason,
    spec: r.spec,
    maxInFlight: r.maxInFlight,
    failureDomain: r.failureDomain,
    promotedAt: iso(r.promotedAt),
    acceptedFailures: r.acceptedFailures,
    createdAt: iso(r.createdAt),
    updatedAt: iso(r.updatedAt),
    summary: summarizeRollout(r, steps, now),
  };
  if (withSteps) {
    view.steps = steps.map((s) => ({
      nodeId: s.nodeId,
      label: s.label,
      wave: s.wave,
      canary: s.canary,
      domain: s.domain,
      state: s.state,
      reason: s.reason,
      previousPlatform: s.previousPlatform,
      previousRunning: s.previousRunning,
      rebootAt: iso(s.rebootAt),
      startedAt: iso(s.startedAt),
      finishedAt: iso(s.finishedAt),
    }));
  }
  return view;
}
