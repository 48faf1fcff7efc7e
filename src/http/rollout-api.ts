// The rollout verbs over HTTP (behind the bearer token): plan (a dry run), start, list, show,
// pause, resume, cancel, promote. They write the journal only; `onChange` asks the head
// node's rollout service to act on it now instead of at its next poll.
import { Router } from 'express';
import type { Logger } from '../log.ts';
import type { RolloutRecord } from '../rollout/journal.ts';
import { cancelRollout, pauseRollout, promoteRollout, resumeRollout, RolloutStateError } from '../rollout/orchestrator.ts';
import { RolloutPlanError } from '../rollout/plan.ts';
import { planFromRegistry, rolloutView, startFromRegistry } from '../rollout/verbs.ts';
import type { Store } from '../store/store.ts';
import { HttpError } from './errors.ts';

export interface RolloutApiDeps {
  store: Store;
  /** The head node's concurrent boot limit: plans size their waves to it (rollout/plan.ts). */
  bootSlotLimit?: number;
  log: Logger;
  onChange?: () => void;
}

const verbs = {
  pause: pauseRollout,
  resume: resumeRollout,
  cancel: cancelRollout,
  promote: promoteRollout,
} as const;

/** Spec errors are the caller's (400, naming the field); a node in another rollout or a verb that does not fit its state is a 409. */
function answered<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof RolloutPlanError) throw new HttpError(400, 'bad_request', err.message);
    if (err instanceof RolloutStateError) throw new HttpError(409, 'conflict', err.message);
    throw err;
  }
}

export function rolloutRoutes(deps: RolloutApiDeps): Router {
  const { store, log } = deps;
  const slots = deps.bootSlotLimit !== undefined ? { bootSlotLimit: deps.bootSlotLimit } : {};
  const r = Router();
  const rolloutOr404 = (ref: string): RolloutRecord => {
    const rollout = /^\d+$/.test(ref) ? store.rollouts.get(Number(ref)) : undefined;
    if (!rollout) throw new HttpError(404, 'not_found', `no rollout ${JSON.stringify(ref)} (see GET /api/v1/rollouts)`);
    return rollout;
  };
  const view = (rollout: RolloutRecord, withSteps = true) => rolloutView(rollout, store.rollouts.steps(rollout.id), store.now(), withSteps);

  r.get('/rollouts', (_req, res) => {
    res.json({ rollouts: store.rollouts.list().map((x) => view(x, false)) });
  });

  r.post('/rollouts/plan', (req, res) => {
    res.json({ plan: answered(() => planFromRegistry(store, req.body, slots)) });
  });

  r.post('/rollouts', (req, res) => {
    const { rollout, plan } = answered(() => startFromRegistry(store, req.body, slots));
    log.info({ event: 'rollout_started', rollout: rollout.id, target: rollout.target, nodes: plan.waves.flatMap((w) => w.nodes.map((n) => n.nodeId)) }, 'rollout started');
    deps.onChange?.();
    res.status(201).json({ rollout: view(rollout), plan });
  });

  r.get('/rollouts/:id', (req, res) => {
    res.json({ rollout: view(rolloutOr404(req.params.id)) });
  });

  r.post('/rollouts/:id/:verb', (req, res) => {
    const verb = req.params.verb;
    if (!Object.hasOwn(verbs, verb)) throw new HttpError(404, 'not_found', `no rollout verb ${JSON.stringify(verb)} (pause, resume, cancel, promote)`);
    const rollout = rolloutOr404(req.params.id);
    const updated = answered(() => verbs[verb as keyof typeof verbs](store.rollouts, rollout.id, store.now()));
    log.info({ event: `rollout_${verb}`, rollout: rollout.id, state: updated.state }, `rollout ${verb}`);
    deps.onChange?.();
    res.json({ rollout: view(updated) });
  });
  return r;
}
