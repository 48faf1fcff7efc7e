// The rollout journal in SQLite (tables from migration 007). Every write is one BEGIN
// IMMEDIATE transaction and a compare-and-set on the state the writer expects, so the head
// node's orchestrator and an operator's CLI (another process, the same file) never
// overwrite each other's transitions (rollout/journal.ts RolloutJournal).
import type {
  NewRollout,
  RolloutJournal,
  RolloutPatch,
  RolloutRecord,
  RolloutState,
  RolloutStep,
  StepPatch,
  StepState,
} from '../rollout/journal.ts';
import type { RolloutSpec } from '../rollout/plan.ts';
import { writeTransaction, type Db } from './db.ts';

interface RolloutRow {
  id: number;
  spec: string;
  target_platform: string;
  max_in_flight: number;
  domain_trait: string | null;
  domain_max_in_flight: number | null;
  state: RolloutState;
  reason: string | null;
  promoted_at: number | null;
  accepted_failures: number;
  created_at: number;
  updated_at: number;
}

interface StepRow {
  rollout_id: number;
  node_id: number;
  label: string;
  wave: number;
  canary: number;
  domain: string;
  state: StepState;
  previous_platform: string | null;
  previous_running: string | null;
  reboot_at: number | null;
  reason: string | null;
  started_at: number | null;
  finished_at: number | null;
  updated_at: number;
}

const rolloutFromRow = (r: RolloutRow): RolloutRecord => ({
  id: r.id,
  // Stored as the schema's own output (plan.ts: it parses to itself), so no re-parse here.
  spec: JSON.parse(r.spec) as RolloutSpec,
  target: r.target_platform,
  maxInFlight: r.max_in_flight,
  failureDomain: r.domain_trait !== null && r.domain_max_in_flight !== null ? { trait: r.domain_trait, maxInFlight: r.domain_max_in_flight } : null,
  state: r.state,
  reason: r.reason,
  promotedAt: r.promoted_at,
  acceptedFailures: r.accepted_failures,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

const stepFromRow = (s: StepRow): RolloutStep => ({
  rolloutId: s.rollout_id,
  nodeId: s.node_id,
  label: s.label,
  wave: s.wave,
  canary: s.canary === 1,
  domain: s.domain,
  state: s.state,
  previousPlatform: s.previous_platform,
  previousRunning: s.previous_running,
  rebootAt: s.reboot_at,
  reason: s.reason,
  startedAt: s.started_at,
  finishedAt: s.finished_at,
  updatedAt: s.updated_at,
});

/** `set_x` 1 and `x` the value when the patch names x; `set_x` 0 keeps the stored value. */
function named<K extends string>(patch: Partial<Record<K, unknown>>, keys: readonly K[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of keys) {
    const v = patch[k];
    out[`set_${k}`] = v === undefined ? 0 : 1;
    out[k] = v === undefined ? null : v;
  }
  return out;
}

const stepFields = ['previousPlatform', 'previousRunning', 'rebootAt', 'reason', 'startedAt', 'finishedAt'] as const;
const rolloutFields = ['reason', 'promotedAt', 'acceptedFailures'] as const;

export class RolloutRepo implements RolloutJournal {
  private readonly insertRollout;
  private readonly insertStep;
  private readonly byId;
  private readonly all;
  private readonly stepsOf;
  private readonly casStep;
  private readonly casRollout;
  private readonly changeStampQuery;
  private readonly changedSinceQuery;

  constructor(private readonly db: Db) {
    this.insertRollout = db.prepare<[string, string, number, string | null, number | null, number, number], { id: number }>(
      `INSERT INTO rollouts (spec, target_platform, max_in_flight, domain_trait, domain_max_in_flight, state, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, 'running', ?, ?) RETURNING id`,
    );
    this.insertStep = db.prepare<[number, number, number, string, number, number, string, number]>(
      `INSERT INTO rollout_steps (rollout_id, node_id, seq, label, wave, canary, domain, state, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?)`,
    );
    this.byId = db.prepare<[number], RolloutRow>('SELECT * FROM rollouts WHERE id = ?');
    this.all = db.prepare<[], RolloutRow>('SELECT * FROM rollouts ORDER BY id');
    this.stepsOf = db.prepare<[number], StepRow>('SELECT * FROM rollout_steps WHERE rollout_id = ? ORDER BY seq');
    // One statement for any patch: a field changes only when its set_ flag is 1.
    this.casStep = db.prepare(
      `UPDATE rollout_steps SET state = @state, updated_at = @at,
         previous_platform = CASE WHEN @set_previousPlatform THEN @previousPlatform ELSE previous_platform END,
         previous_running = CASE WHEN @set_previousRunning THEN @previousRunning ELSE previous_running END,
         reboot_at = CASE WHEN @set_rebootAt THEN @rebootAt ELSE reboot_at END,
         reason = CASE WHEN @set_reason THEN @reason ELSE reason END,
         started_at = CASE WHEN @set_startedAt THEN @startedAt ELSE started_at END,
         finished_at = CASE WHEN @set_finishedAt THEN @finishedAt ELSE finished_at END
       WHERE rollout_id = @rolloutId AND node_id = @nodeId AND state = @from`,
    );
    // The dashboard's live feed polls this: two aggregates, no rows.
    this.changeStampQuery = db.prepare<[], string>(
      // The newest write and how many rows carry its time: two writes in one millisecond still
      // change the stamp. Both are lookups on the updated_at indexes (migration 011), not scans;
      // the rollout count catches a new rollout (its steps are written with it).
      `SELECT (SELECT coalesce(max(updated_at), 0) || ':' || count(*) FROM rollouts) || '/' ||
              (SELECT coalesce(m, 0) || ':' || (SELECT count(*) FROM rollout_steps WHERE updated_at = m)
                 FROM (SELECT max(updated_at) AS m FROM rollout_steps))`,
    ).pluck();
    this.changedSinceQuery = db.prepare<[number, number], { id: number; state: string }>(
      `SELECT r.id, r.state FROM rollouts r
       WHERE r.updated_at >= ? OR EXISTS (SELECT 1 FROM rollout_steps s WHERE s.rollout_id = r.id AND s.updated_at >= ?)
       ORDER BY r.id`,
    );
    this.casRollout = db.prepare(
      `UPDATE rollouts SET state = @state, updated_at = @at,
         reason = CASE WHEN @set_reason THEN @reason ELSE reason END,
         promoted_at = CASE WHEN @set_promotedAt THEN @promotedAt ELSE promoted_at END,
         accepted_failures = CASE WHEN @set_acceptedFailures THEN @acceptedFailures ELSE accepted_failures END
       WHERE id = @id AND state = @from`,
    );
  }

  create(input: NewRollout): RolloutRecord {
    return writeTransaction(this.db, (): RolloutRecord => {
      const fd = input.failureDomain;
      const { id } = this.insertRollout.get(
        JSON.stringify(input.spec),
        input.target,
        input.maxInFlight,
        fd?.trait ?? null,
        fd?.maxInFlight ?? null,
        input.createdAt,
        input.createdAt,
      )!;
      input.steps.forEach((s, seq) => this.insertStep.run(id, s.nodeId, seq, s.label, s.wave, s.canary ? 1 : 0, s.domain, input.createdAt));
      return rolloutFromRow(this.byId.get(id)!);
    })();
  }

  /** Changes whenever a rollout or a step is added or written (updated_at and counts). */
  changeStamp(): string {
    return this.changeStampQuery.get() ?? '';
  }

  /** Rollouts written, or with a step written, at or after `since` (ms). */
  changedSince(since: number): { id: number; state: string }[] {
    return this.changedSinceQuery.all(since, since);
  }

  get(id: number): RolloutRecord | undefined {
    const row = this.byId.get(id);
    return row && rolloutFromRow(row);
  }

  list(): RolloutRecord[] {
    return this.all.all().map(rolloutFromRow);
  }

  steps(rolloutId: number): RolloutStep[] {
    return this.stepsOf.all(rolloutId).map(stepFromRow);
  }

  updateStep(rolloutId: number, nodeId: number, from: StepState, patch: StepPatch): boolean {
    const params = { rolloutId, nodeId, from, state: patch.state, at: patch.at, ...named(patch, stepFields) };
    return writeTransaction(this.db, () => this.casStep.run(params).changes === 1)();
  }

  updateRollout(id: number, from: RolloutState, patch: RolloutPatch): boolean {
    const params = { id, from, state: patch.state, at: patch.at, ...named(patch, rolloutFields) };
    return writeTransaction(this.db, () => this.casRollout.run(params).changes === 1)();
  }
}
