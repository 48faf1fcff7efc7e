// `rollout status` as a pure function of the journal's records and the clock: where the
// rollout stands, what it waits for, and each node's step, so an operator sees progress.
import { failedStepStates, stepInFlight, type RolloutRecord, type RolloutStep } from './journal.ts';
import { formatDuration } from './plan.ts';

export interface RolloutSummary {
  verified: number;
  inFlight: number;
  failed: number;
  pending: number;
  reverted: number;
  /** The wave whose turn it is, or null when every step is over. */
  wave: number | null;
  waves: number;
  /** What the rollout waits for now, in words. */
  waitingFor: string;
}

export function summarizeRollout(r: RolloutRecord, steps: readonly RolloutStep[], now: number): RolloutSummary {
  const open = steps.filter((s) => s.state === 'pending' || stepInFlight(s.state));
  const wave = open.length > 0 ? Math.min(...open.map((s) => s.wave)) : null;
  const inFlight = steps.filter((s) => stepInFlight(s.state));
  let waitingFor: string;
  if (r.state === 'done' || ((r.state === 'cancelled' || r.state === 'failed') && inFlight.length === 0)) waitingFor = 'nothing: it is over';
  else if (inFlight.length > 0) {
    const deadlines = inFlight.filter((s) => s.rebootAt !== null).map((s) => s.rebootAt! + r.spec.bootDeadlineSeconds * 1000);
    const next = deadlines.length > 0 ? Math.min(...deadlines) : null;
    waitingFor = `${inFlight.length} node${inFlight.length === 1 ? '' : 's'} to check in${next !== null ? ` (next deadline in ${formatDuration(Math.max(0, (next - now) / 1000))})` : ''}`;
  } else if (r.state === 'waiting_promote') waitingFor = `\`fleetboot rollout promote ${r.id}\``;
  else if (r.state === 'paused') waitingFor = `\`fleetboot rollout resume ${r.id}\``;
  else {
    const done = steps.filter((s) => wave !== null && s.wave < wave).map((s) => s.finishedAt ?? s.updatedAt);
    const soakEnd = done.length > 0 ? Math.max(...done) + r.spec.soakSeconds * 1000 : null;
    waitingFor = soakEnd !== null && soakEnd > now ? `the soak to end (in ${formatDuration((soakEnd - now) / 1000)})` : 'the next wave to start';
  }
  return {
    verified: steps.filter((s) => s.state === 'verified').length,
    inFlight: inFlight.length,
    failed: steps.filter((s) => failedStepStates.has(s.state)).length,
    pending: steps.filter((s) => s.state === 'pending').length,
    reverted: steps.filter((s) => s.state === 'reverted').length,
    wave,
    waves: steps.length > 0 ? Math.max(...steps.map((s) => s.wave)) : 0,
    waitingFor,
  };
}

/** `rollout status` output: one headline, why it stopped if it did, then one line per node. */
export function formatRolloutStatus(r: RolloutRecord, steps: readonly RolloutStep[], now: number): string {
  const sum = summarizeRollout(r, steps, now);
  const counts = [`${sum.verified} verified`, `${sum.inFlight} in flight`, `${sum.failed} failed`, `${sum.pending} pending`];
  if (sum.reverted > 0) counts.push(`${sum.reverted} reverted`);
  const lines = [
    `rollout ${r.id} of ${r.target}: ${r.state}${sum.wave !== null ? `, wave ${sum.wave} of ${sum.waves}` : ''}; ${counts.join(', ')}`,
    `  waiting for ${sum.waitingFor}`,
  ];
  if (r.reason) lines.push(`  ${r.reason}`);
  lines.push('');
  const width = Math.max(...steps.map((s) => s.label.length), 4);
  const stateWidth = Math.max(...steps.map((s) => s.state.length), 5);
  for (const s of steps) {
    const when = s.rebootAt !== null && stepInFlight(s.state) ? `rebooted ${formatDuration(Math.max(0, (now - s.rebootAt) / 1000))} ago` : '';
    const detail = [when, s.reason ?? ''].filter((x) => x !== '').join('; ');
    lines.push(`  ${s.label.padEnd(width)}  ${s.state.padEnd(stateWidth)}  wave ${s.wave}${s.canary ? ' canary' : ''}${detail ? `  ${detail}` : ''}`.trimEnd());
  }
  return `${lines.join('\n')}\n`;
}
