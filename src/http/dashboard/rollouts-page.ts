// GET /ui/rollouts (every rollout with its progress), GET /ui/rollouts/:id (its spec, waves and
// each node's step, with the operator's verbs), GET /ui/rollouts/:id/steps (the step table
// alone, re-fetched by rollouts.js on the live feed's `rollout` events), and
// POST /ui/rollouts/:id/(pause|resume|cancel|promote). The verbs are the orchestrator's own
// (rollout/orchestrator.ts), as the CLI and the admin API call them: they write the journal and
// `onRolloutChange` asks the rollout service to act now.
import { Router, type Request, type Response } from 'express';
import type { RolloutRecord, RolloutState } from '../../rollout/journal.ts';
import { cancelRollout, pauseRollout, promoteRollout, resumeRollout, RolloutStateError } from '../../rollout/orchestrator.ts';
import { rolloutView, type RolloutView } from '../../rollout/verbs.ts';
import type { DashboardDeps } from './deps.ts';
import { html, type Html } from './html.ts';
import { page } from './layout.ts';
import { sessionOf } from './session.ts';

const verbs = { pause: pauseRollout, resume: resumeRollout, cancel: cancelRollout, promote: promoteRollout } as const;
type Verb = keyof typeof verbs;

/** The verbs a rollout's state allows (the same rules the orchestrator enforces; it stays the judge). */
export function verbsFor(state: RolloutState): Verb[] {
  switch (state) {
    case 'running':
      return ['pause', 'cancel'];
    case 'waiting_promote':
      return ['promote', 'pause', 'cancel'];
    case 'paused':
      return ['resume', 'cancel'];
    default:
      return [];
  }
}

const confirmOf: Record<Verb, string> = {
  pause: 'Pause this rollout? Nodes rebooting now finish; no more start.',
  resume: 'Resume this rollout? The failures so far are accepted.',
  cancel: 'Cancel this rollout? Nodes assigned but not rebooted get their platform back.',
  promote: 'Promote this rollout past its canaries? The remaining waves start.',
};

const badge = (state: string): Html => html`<span class="badge state-${state}">${state}</span>`;

function progress(v: RolloutView): Html {
  const s = v.summary;
  const total = s.verified + s.inFlight + s.failed + s.pending + s.reverted;
  const done = total === 0 ? 0 : ((s.verified + s.failed + s.reverted) / total) * 100;
  return html`<span class="progress" title="${s.verified} verified, ${s.inFlight} in flight, ${s.failed} failed, ${s.reverted} reverted, ${s.pending} pending"><span class="fill" style="width:${done.toFixed(1)}%"></span></span> ${s.verified}/${total}`;
}

/** The step table: one row per node, by wave. */
export function stepTable(v: RolloutView): Html {
  const steps = v.steps ?? [];
  return html`<p id="rollout-state">${badge(v.state)} ${v.reason ? html`<span class="hint">${v.reason}</span>` : null} waiting for: ${v.summary.waitingFor}</p>
<table class="steps"><thead><tr><th>Wave</th><th>Node</th><th>Canary</th><th>Domain</th><th>Step</th><th>Rebooted</th><th>Finished</th><th>Reason</th></tr></thead>
<tbody>${steps.length === 0
    ? html`<tr><td colspan="8" class="hint">no steps</td></tr>`
    : steps.map((s) => html`<tr data-node="${s.nodeId}"><td>${s.wave}</td><td><a href="/ui/nodes/${s.nodeId}">${s.label}</a></td><td>${s.canary ? 'canary' : ''}</td><td>${s.domain ?? ''}</td>
<td>${badge(s.state)}</td><td>${s.rebootAt ?? ''}</td><td>${s.finishedAt ?? ''}</td><td>${s.reason ?? ''}</td></tr>`)}</tbody></table>`;
}

function actions(v: RolloutView, csrf: string): Html {
  const allowed = verbsFor(v.state);
  if (allowed.length === 0) return html`<p class="hint">This rollout is over: no verb applies.</p>`;
  return html`<section class="actions">${allowed.map(
    (verb) => html`<form method="post" action="/ui/rollouts/${v.id}/${verb}" data-confirm="${confirmOf[verb]}"><input type="hidden" name="_csrf" value="${csrf}"><button name="verb" value="${verb}"${verb === 'cancel' ? html` class="danger"` : null}>${verb[0]!.toUpperCase() + verb.slice(1)}</button></form>`,
  )}</section>`;
}

export function rolloutsPages(deps: DashboardDeps): Router {
  const { store, log } = deps;
  const r = Router();
  const rolloutOf = (req: Request, res: Response): RolloutRecord | null => {
    const id = Number(req.params['id']);
    const rollout = Number.isSafeInteger(id) ? store.rollouts.get(id) : undefined;
    if (!rollout) {
      res.status(404).type('html').send(page({ title: 'No such rollout', section: 'rollouts', csrfToken: sessionOf(res).csrfToken }, html`<h1>No rollout ${String(req.params['id'])}</h1>`));
      return null;
    }
    return rollout;
  };
  const view = (rollout: RolloutRecord): RolloutView => rolloutView(rollout, store.rollouts.steps(rollout.id), store.now());

  r.get('/ui/rollouts', (_req, res) => {
    const liveSince = deps.live.sentUpTo;
    const all = store.rollouts.list().map(view).reverse();
    const body = html`<h1>Rollouts</h1>
<table class="rollouts"><thead><tr><th>Id</th><th>Target</th><th>State</th><th>Progress</th><th>Wave</th><th>Max in flight</th><th>Started</th></tr></thead>
<tbody>${all.length === 0
      ? html`<tr><td colspan="7" class="hint">No rollout yet: <code>fleetboot rollout start --target STAMP</code></td></tr>`
      : all.map((v) => html`<tr data-rollout="${v.id}"><td><a href="/ui/rollouts/${v.id}">${v.id}</a></td><td>${v.target}</td><td>${badge(v.state)}</td><td>${progress(v)}</td>
<td>${v.summary.wave ?? '—'} of ${v.summary.waves}</td><td>${v.maxInFlight}</td><td>${v.createdAt}</td></tr>`)}</tbody></table>`;
    res.type('html').send(page({ title: 'Rollouts', section: 'rollouts', csrfToken: sessionOf(res).csrfToken, script: 'rollouts.js', liveSince }, body));
  });

  r.get('/ui/rollouts/:id', (req, res) => {
    const rollout = rolloutOf(req, res);
    if (!rollout) return;
    const liveSince = deps.live.sentUpTo;
    const v = view(rollout);
    const csrf = sessionOf(res).csrfToken;
    const spec = v.spec;
    const message = typeof req.query['message'] === 'string' ? req.query['message'] : null;
    const body = html`<h1>Rollout ${v.id} to ${v.target}</h1>
${message ? html`<p class="message">${message}</p>` : null}
${actions(v, csrf)}
<dl class="facts"><dt>Progress</dt><dd>${progress(v)}</dd><dt>Wave</dt><dd>${v.summary.wave ?? '—'} of ${v.summary.waves}</dd>
<dt>Canaries</dt><dd>${spec.canary}${v.promotedAt ? html`, promoted ${v.promotedAt}` : spec.afterCanary === 'promote' ? ', then waits for promote' : ', then goes on'}</dd>
<dt>Failure budget</dt><dd>${spec.failureBudget} (failures accepted on resume: ${v.acceptedFailures})</dd>
<dt>Max in flight</dt><dd>${v.maxInFlight}${v.failureDomain ? html`, at most ${v.failureDomain.maxInFlight} per ${v.failureDomain.trait}` : null}</dd>
<dt>Soak</dt><dd>${spec.soakSeconds} s</dd><dt>Boot deadline</dt><dd>${spec.bootDeadlineSeconds} s</dd><dt>Started</dt><dd>${v.createdAt}</dd></dl>
<h2>Steps</h2>
<section id="steps" data-rollout="${v.id}">${stepTable(v)}</section>`;
    res.type('html').send(page({ title: `Rollout ${v.id}`, section: 'rollouts', csrfToken: csrf, script: 'rollouts.js', liveSince }, body));
  });

  r.get('/ui/rollouts/:id/steps', (req, res) => {
    const rollout = rolloutOf(req, res);
    if (!rollout) return;
    res.type('html').send(stepTable(view(rollout)).toString());
  });

  r.post('/ui/rollouts/:id/:verb', (req, res) => {
    const verb = req.params['verb'] ?? '';
    if (!Object.hasOwn(verbs, verb)) {
      res.status(404).type('text/plain').send(`no rollout verb ${JSON.stringify(verb)} (pause, resume, cancel, promote)\n`);
      return;
    }
    const rollout = rolloutOf(req, res);
    if (!rollout) return;
    let message: string;
    try {
      const updated = verbs[verb as Verb](store.rollouts, rollout.id, store.now());
      log.info({ event: `rollout_${verb}`, rollout: rollout.id, state: updated.state, via: 'dashboard' }, `rollout ${verb}`);
      deps.onRolloutChange?.();
      message = `rollout ${rollout.id} is ${updated.state}`;
    } catch (err) {
      if (!(err instanceof RolloutStateError)) throw err;
      message = err.message;
    }
    res.redirect(303, `/ui/rollouts/${rollout.id}?message=${encodeURIComponent(message)}`);
  });
  return r;
}
