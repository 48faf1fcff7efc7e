// `fleetboot rollout <verb>`: plan, start, watch and steer rolling upgrades. The CLI runs in
// its own process against the registry file: its verbs only write the rollout journal, and
// the running head node's rollout service picks them up on its next tick.
import { configuredSlotLimit } from '../boot/boot-slots.ts';
import type { Command } from 'commander';
import { failedStepStates, type RolloutRecord, type RolloutStep } from '../rollout/journal.ts';
import { cancelRollout, pauseRollout, promoteRollout, resumeRollout, rolloutActive, RolloutStateError } from '../rollout/orchestrator.ts';
import { formatDuration, formatRolloutPlan, RolloutPlanError, type RolloutSpecInput } from '../rollout/plan.ts';
import { formatRolloutStatus } from '../rollout/status.ts';
import { planFromRegistry, rolloutView, startFromRegistry } from '../rollout/verbs.ts';
import type { Store } from '../store/store.ts';
import { withStore } from './context.ts';
import { UsageError } from './errors.ts';
import { formatTable, printJson } from './output.ts';

interface SpecFlags {
  target: string;
  nodes: string;
  canary?: string;
  maxInFlight?: string;
  domain?: string;
  soak?: string;
  deadline?: string;
  budget?: string;
  promote?: boolean;
  auto?: boolean;
  json?: boolean;
}

/** The flag an operator typed for each spec field, so a refusal names what to change. */
const flagOf: Record<string, string> = {
  target: '--target',
  selector: '--nodes',
  canary: '--canary',
  maxInFlight: '--max-in-flight',
  failureDomain: '--domain',
  soakSeconds: '--soak',
  bootDeadlineSeconds: '--deadline',
  failureBudget: '--budget',
  afterCanary: '--promote/--auto',
};

const unitSeconds: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/** `90s`, `5m`, `1h30m`, `300` (seconds) as whole seconds. */
export function parseDurationFlag(flag: string, text: string): number {
  if (/^\d+$/.test(text)) return Number(text);
  const parts = [...text.matchAll(/(\d+)([smhd])/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== text) throw new UsageError(`${flag}: expected a duration like 90s, 5m or 1h30m, got ${JSON.stringify(text)}`);
  return parts.reduce((sum, p) => sum + Number(p[1]) * unitSeconds[p[2]!]!, 0);
}

function wholeNumber(flag: string, text: string): number {
  if (!/^\d+$/.test(text)) throw new UsageError(`${flag}: expected a whole number, got ${JSON.stringify(text)}`);
  return Number(text);
}

/** The spec the flags describe; the planner checks it further (RolloutPlanError, mapped to the flag). */
function specFromFlags(o: SpecFlags): RolloutSpecInput {
  if (o.promote && o.auto) throw new UsageError('--promote and --auto: give one (wait for `rollout promote` after the canaries, or go on by itself)');
  const spec: RolloutSpecInput = { target: o.target, selector: o.nodes };
  if (o.canary !== undefined) spec.canary = wholeNumber('--canary', o.canary);
  if (o.maxInFlight !== undefined) {
    if (/^\d+$/.test(o.maxInFlight)) spec.maxInFlight = Number(o.maxInFlight);
    else if (/^\d+(\.\d+)?%$/.test(o.maxInFlight)) spec.maxInFlight = o.maxInFlight;
    else throw new UsageError(`--max-in-flight: expected a node count or a percentage like 25%, got ${JSON.stringify(o.maxInFlight)}`);
  }
  if (o.domain !== undefined) {
    const m = /^([\w-]{1,64})(?::(\d+))?$/.exec(o.domain);
    if (!m) throw new UsageError(`--domain: expected a trait name and an optional limit like rack or rack:2, got ${JSON.stringify(o.domain)}`);
    spec.failureDomain = { trait: m[1]!, maxInFlight: m[2] === undefined ? 1 : wholeNumber('--domain', m[2]) };
  }
  if (o.soak !== undefined) spec.soakSeconds = parseDurationFlag('--soak', o.soak);
  if (o.deadline !== undefined) spec.bootDeadlineSeconds = parseDurationFlag('--deadline', o.deadline);
  if (o.budget !== undefined) spec.failureBudget = wholeNumber('--budget', o.budget);
  if (o.promote) spec.afterCanary = 'promote';
  if (o.auto) spec.afterCanary = 'continue';
  return spec;
}

/** Planner and verb refusals are the operator's to fix: one line naming the flag, exit code 2. */
function asUsage<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof RolloutPlanError) {
      const flag = flagOf[err.field.split('.')[0]!];
      throw new UsageError(flag ? err.message.replace(/^[^:]+:/, `${flag}:`) : err.message);
    }
    if (err instanceof RolloutStateError) throw new UsageError(err.message);
    throw err;
  }
}

function addSpecFlags(cmd: Command): Command {
  return cmd
    .requiredOption('--target <stamp>', 'the platform every selected node should boot (see fleetboot platform list)')
    .option('--nodes <selector>', 'all, trait matches like rack=b12 (comma: all must match), or nodes cn1,cn2', 'all')
    .option('--canary <n>', 'nodes upgraded first, on their own (default 1; 0 for none)')
    .option('--max-in-flight <n|n%>', 'nodes rebooting at once: a count or a percentage of the nodes to upgrade (default 1)')
    .option('--domain <trait[:n]>', 'at most n nodes (default 1) sharing this trait value reboot at once')
    .option('--soak <duration>', 'wait after each wave before the next (default 5m)')
    .option('--deadline <duration>', 'a node not back on the target this long after its reboot is rolled back (default 15m)')
    .option('--budget <n>', 'failed nodes tolerated; one more pauses the rollout (default 0)')
    .option('--promote', 'after the canaries, wait for `fleetboot rollout promote` (the default)')
    .option('--auto', 'after the canaries, go on by itself')
    .option('--json', 'print JSON');
}

function rolloutOrFail(store: Store, ref: string): RolloutRecord {
  const r = /^\d+$/.test(ref) ? store.rollouts.get(Number(ref)) : undefined;
  if (!r) throw new UsageError(`no rollout ${JSON.stringify(ref)} (see fleetboot rollout list)`);
  return r;
}

/** Without an id: the newest rollout still active, else the newest. */
function defaultRollout(store: Store): RolloutRecord | undefined {
  const all = store.rollouts.list();
  return [...all].reverse().find((r) => rolloutActive(r, store.rollouts.steps(r.id))) ?? all.at(-1);
}

/** `[##########----------] 5/10 nodes done`: finished steps over all, for a terminal. */
export function progressBar(steps: readonly RolloutStep[], width = 30): string {
  const done = steps.filter((s) => s.state === 'verified' || s.state === 'reverted' || failedStepStates.has(s.state)).length;
  const filled = steps.length === 0 ? width : Math.round((done / steps.length) * width);
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${done}/${steps.length} node${steps.length === 1 ? '' : 's'} done`;
}

const iso = (t: number): string => new Date(t).toISOString().replace(/\.\d+Z$/, 'Z');

export function registerRollout(program: Command): void {
  const rollout = program
    .command('rollout')
    .description('rolling platform upgrades: plan, start, watch, pause, resume, cancel, promote')
    .addHelpText(
      'after',
      '\nThe running head node carries a started rollout out; these verbs only record what to do.\n\nExamples:\n' +
        '  fleetboot rollout plan --target 20240601T000000Z --nodes rack=b12 --max-in-flight 25% --domain rack\n' +
        '  fleetboot rollout start --target 20240601T000000Z --canary 1 --auto\n' +
        '  fleetboot rollout status',
    );

  addSpecFlags(rollout.command('plan').description('print the waves a rollout would run, touching nothing'))
    .addHelpText(
      'after',
      '\nExamples:\n  fleetboot rollout plan --target 20240601T000000Z\n  fleetboot rollout plan --target 20240601T000000Z --nodes cn1,cn2,cn3 --canary 1 --max-in-flight 2 --soak 10m --deadline 20m --budget 1',
    )
    .action(async (o: SpecFlags, cmd: Command) => {
      await withStore(cmd, (store, loaded) => {
        const plan = asUsage(() => planFromRegistry(store, specFromFlags(o), { bootSlotLimit: configuredSlotLimit(loaded.config) }));
        if (o.json) return printJson({ plan });
        process.stdout.write(formatRolloutPlan(plan));
      });
    });

  addSpecFlags(rollout.command('start').description('store a rollout; the running head node starts it within seconds'))
    .addHelpText('after', '\nExamples:\n  fleetboot rollout start --target 20240601T000000Z --nodes rack=b12 --canary 1 --max-in-flight 2 --domain rack --promote')
    .action(async (o: SpecFlags, cmd: Command) => {
      await withStore(cmd, (store, loaded) => {
        const { rollout: r, plan } = asUsage(() => startFromRegistry(store, specFromFlags(o), { bootSlotLimit: configuredSlotLimit(loaded.config) }));
        if (o.json) return printJson({ rollout: rolloutView(r, store.rollouts.steps(r.id), store.now()), plan });
        const nodes = plan.waves.reduce((n, w) => n + w.nodes.length, 0);
        process.stdout.write(
          `rollout ${r.id} of ${r.target}: ${nodes} node${nodes === 1 ? '' : 's'} in ${plan.waves.length} wave${plan.waves.length === 1 ? '' : 's'}, about ${formatDuration(plan.estimate.seconds)}\n` +
            `  the running head node starts it within seconds; follow it with: fleetboot rollout status ${r.id}\n`,
        );
      });
    });

  rollout
    .command('status')
    .description("a rollout's progress, what it waits for, and each node's step (default: the newest one still going)")
    .argument('[id]', 'rollout id (see fleetboot rollout list)')
    .option('--watch', 'keep showing it until it is over (redrawn on a terminal, printed on each change otherwise)')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExamples:\n  fleetboot rollout status\n  fleetboot rollout status 3 --watch\n  fleetboot rollout status 3 --json | jq .rollout.summary')
    .action(async (ref: string | undefined, o: { json?: boolean; watch?: boolean }, cmd: Command) => {
      if (o.watch && o.json) throw new UsageError('--watch and --json: give one (poll --json from a script)');
      await withStore(cmd, async (store) => {
        const first = ref === undefined ? defaultRollout(store) : rolloutOrFail(store, ref);
        if (!first) {
          if (o.json) return printJson({ rollout: null });
          process.stdout.write('no rollouts yet (start one with fleetboot rollout start --target STAMP)\n');
          return;
        }
        const tty = process.stdout.isTTY === true;
        const render = (r: RolloutRecord, steps: readonly RolloutStep[]): string => (tty ? `${progressBar(steps)}\n` : '') + formatRolloutStatus(r, steps, store.now());
        if (o.json) return printJson({ rollout: rolloutView(first, store.rollouts.steps(first.id), store.now()) });
        if (!o.watch) {
          process.stdout.write(render(first, store.rollouts.steps(first.id)));
          return;
        }
        // The head node writes the journal; this process only reads it again every second.
        let shown = '';
        for (;;) {
          const r = store.rollouts.get(first.id)!;
          const steps = store.rollouts.steps(r.id);
          const text = render(r, steps);
          // Without a terminal, only changes are printed; the clock alone changes "rebooted N s ago".
          const key = tty ? text : JSON.stringify([r.state, r.reason, steps.map((s) => [s.state, s.reason])]);
          if (key !== shown) {
            process.stdout.write(tty ? `\x1b[H\x1b[J${text}` : `${text}\n`);
            shown = key;
          }
          if (!rolloutActive(r, steps)) return;
          await new Promise((resolve) => setTimeout(resolve, 1000));
        }
      });
    });

  rollout
    .command('list')
    .description('every rollout, newest last')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExamples:\n  fleetboot rollout list\n  fleetboot rollout list --json | jq \'.rollouts[] | select(.state == "paused")\'')
    .action(async (o: { json?: boolean }, cmd: Command) => {
      await withStore(cmd, (store) => {
        const all = store.rollouts.list();
        if (o.json) return printJson({ rollouts: all.map((r) => rolloutView(r, store.rollouts.steps(r.id), store.now(), false)) });
        if (all.length === 0) {
          process.stdout.write('no rollouts yet (start one with fleetboot rollout start --target STAMP)\n');
          return;
        }
        const rows = all.map((r) => {
          const steps = store.rollouts.steps(r.id);
          const failed = steps.filter((s) => failedStepStates.has(s.state)).length;
          return [r.id, r.target, r.state, steps.length, steps.filter((s) => s.state === 'verified').length, failed, iso(r.createdAt), r.reason];
        });
        process.stdout.write(`${formatTable(['ID', 'TARGET', 'STATE', 'NODES', 'VERIFIED', 'FAILED', 'CREATED', 'REASON'], rows)}\n`);
      });
    });

  const verbs = [
    ['pause', pauseRollout, 'no more nodes start; nodes rebooting now finish'],
    ['resume', resumeRollout, 'a paused rollout goes on; the failures so far are accepted and the budget counts the ones after'],
    ['cancel', cancelRollout, 'no more nodes start; nodes assigned but not rebooted get their platform back; nodes rebooting finish'],
    ['promote', promoteRollout, 'past the canaries: the remaining waves start'],
  ] as const;
  for (const [name, verb, what] of verbs) {
    rollout
      .command(name)
      .description(what)
      .argument('<id>', 'rollout id (see fleetboot rollout list)')
      .option('--json', 'print JSON')
      .addHelpText('after', `\nExamples:\n  fleetboot rollout ${name} 3`)
      .action(async (ref: string, o: { json?: boolean }, cmd: Command) => {
        await withStore(cmd, (store) => {
          const r = rolloutOrFail(store, ref);
          const updated = asUsage(() => verb(store.rollouts, r.id, store.now()));
          if (o.json) return printJson({ rollout: rolloutView(updated, store.rollouts.steps(r.id), store.now()) });
          process.stdout.write(`rollout ${updated.id}: ${updated.state}${updated.reason ? ` (${updated.reason})` : ''}\n`);
        });
      });
  }
}
