// GET / (the nodes list, filtered, searched, sorted and paged on the server) and
// GET /ui/nodes/:id (one node: hardware, plans, boot timeline, actions).
import { Router, type Request, type Response } from 'express';
import { assignPlatform, NodeInRolloutError, retireNode } from '../../nodeconfig/lifecycle.ts';
import { powerNode } from '../../rollout/node-power.ts';
import { PowerError } from '../../rollout/power.ts';
import { powerDriverFor, powerLogging } from '../../rollout/power-drivers.ts';
import { nodeStates, type NodeRecord, type NodeState } from '../../store/nodes.ts';
import type { DashboardDeps } from './deps.ts';
import { html, type Html } from './html.ts';
import { page } from './layout.ts';
import { sessionOf } from './session.ts';
import { waterfallSection } from './waterfall-view.ts';
import { waterfalls } from '../../boot/waterfall.ts';

export const PAGE_SIZE = 100;
const SORTS = ['id', 'hostname', 'state', 'lastSeen'] as const;
type Sort = (typeof SORTS)[number];

function relative(t: number | null, now: number): string {
  if (t === null) return 'never';
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

const badge = (state: string): Html => html`<span class="badge state-${state}">${state}</span>`;

function powerKind(power: unknown): string {
  return power !== null && typeof power === 'object' && 'kind' in power ? String((power as { kind: unknown }).kind) : '—';
}

function matches(n: NodeRecord, q: string): boolean {
  if ((n.hostname ?? '').toLowerCase().includes(q) || (n.uuid ?? '').toLowerCase().includes(q) || String(n.id) === q) return true;
  for (const c of n.nics) if (c.mac.includes(q) || (c.ip ?? '').includes(q)) return true;
  for (const [k, v] of Object.entries(n.traits)) if (`${k}=${v}`.toLowerCase().includes(q)) return true;
  return false;
}

function compare(sort: Sort): (a: NodeRecord, b: NodeRecord) => number {
  switch (sort) {
    case 'hostname':
      return (a, b) => (a.hostname ?? '').localeCompare(b.hostname ?? '') || a.id - b.id;
    case 'state':
      return (a, b) => a.state.localeCompare(b.state) || a.id - b.id;
    case 'lastSeen':
      return (a, b) => (b.lastSeen ?? 0) - (a.lastSeen ?? 0) || a.id - b.id;
    default:
      return (a, b) => a.id - b.id;
  }
}

function nodeRow(n: NodeRecord, now: number): Html {
  const drift = n.bootPlatform !== null && n.currentPlatform !== null && n.bootPlatform !== n.currentPlatform;
  const admin = n.nics.find((c) => c.isAdmin) ?? n.nics[0];
  const traits = Object.entries(n.traits).map(([k, v]) => html`<span class="trait">${k}=${v}</span>`);
  return html`<tr data-node="${n.id}">
<td><a href="/ui/nodes/${n.id}">${n.hostname ?? `node ${n.id}`}</a></td>
<td class="state">${badge(n.state)}</td>
<td>${powerKind(n.power)}</td>
<td class="platform${drift ? ' drift' : ''}">${n.bootPlatform ?? '—'}${drift ? html` <span class="drift-flag" title="running ${n.currentPlatform}">≠ ${n.currentPlatform}</span>` : null}</td>
<td class="last-seen" data-at="${n.lastSeen ?? ''}">${relative(n.lastSeen, now)}</td>
<td>${n.traits['rack'] ?? '—'}</td>
<td class="traits">${traits}</td>
<td><code>${admin?.mac ?? ''}</code> ${admin?.ip ?? ''}</td>
</tr>`;
}

function nodesList(deps: DashboardDeps, req: Request, res: Response): void {
  const liveSince = deps.live.sentUpTo;
  const q = typeof req.query['q'] === 'string' ? req.query['q'].trim().toLowerCase() : '';
  const stateQ = typeof req.query['state'] === 'string' ? req.query['state'] : '';
  const state = (nodeStates as readonly string[]).includes(stateQ) ? (stateQ as NodeState) : null;
  const sortQ = typeof req.query['sort'] === 'string' ? req.query['sort'] : 'id';
  const sort: Sort = (SORTS as readonly string[]).includes(sortQ) ? (sortQ as Sort) : 'id';
  const pageNo = Math.max(1, Number.parseInt(String(req.query['page'] ?? '1'), 10) || 1);
  const counts = deps.store.nodes.countByState();
  let nodes = deps.store.nodes.list();
  const total = nodes.length;
  // The newest node listed anywhere: a live event for a higher id is a node this list lacks.
  let maxId = 0;
  for (const n of nodes) if (n.id > maxId) maxId = n.id;
  if (state) nodes = nodes.filter((n) => n.state === state);
  if (q) nodes = nodes.filter((n) => matches(n, q));
  nodes.sort(compare(sort));
  const pages = Math.max(1, Math.ceil(nodes.length / PAGE_SIZE));
  const shown = nodes.slice((pageNo - 1) * PAGE_SIZE, pageNo * PAGE_SIZE);
  const now = deps.store.now();
  const link = (p: Record<string, string | number>): string => {
    const u = new URLSearchParams();
    const all = { q, state: state ?? '', sort, page: pageNo, ...p };
    for (const [k, v] of Object.entries(all)) if (v !== '' && !(k === 'page' && v === 1) && !(k === 'sort' && v === 'id')) u.set(k, String(v));
    const s = u.toString();
    return s ? `/?${s}` : '/';
  };
  const body = html`<h1>Nodes</h1>
<p class="counts"><a href="${link({ state: '', page: 1 })}" class="${state ? '' : 'active'}">all ${total}</a>
${nodeStates.map((s) => html` <a href="${link({ state: s, page: 1 })}" class="${state === s ? 'active' : ''}">${badge(s)} ${counts[s] ?? 0}</a>`)}</p>
<form method="get" action="/" class="filter">
<input type="search" name="q" value="${q}" placeholder="hostname, MAC, IP, UUID, trait">
<select name="state"><option value="">any state</option>${nodeStates.map((s) => html`<option${state === s ? html` selected` : null}>${s}</option>`)}</select>
<select name="sort">${SORTS.map((s) => html`<option value="${s}"${sort === s ? html` selected` : null}>sort by ${s}</option>`)}</select>
<button type="submit">Filter</button>
</form>
<p id="new-nodes" class="hint" hidden><a href="${link({})}">new nodes: refresh the list</a></p>
<table class="nodes" data-max-id="${maxId}">
<thead><tr><th>Node</th><th>State</th><th>Power</th><th>Platform</th><th>Last seen</th><th>Rack</th><th>Traits</th><th>MAC / IP</th></tr></thead>
<tbody>${shown.length ? shown.map((n) => nodeRow(n, now)) : html`<tr><td colspan="8" class="hint">no node matches</td></tr>`}</tbody>
</table>
<p class="pager">${nodes.length} nodes · page ${pageNo} of ${pages}
${pageNo > 1 ? html` <a href="${link({ page: pageNo - 1 })}">← previous</a>` : null}
${pageNo < pages ? html` <a href="${link({ page: pageNo + 1 })}">next →</a>` : null}</p>`;
  res.type('html').send(page({ title: 'Nodes', section: 'nodes', csrfToken: sessionOf(res).csrfToken, script: 'nodes.js', liveSince }, body));
}

function json(v: unknown): Html {
  return html`<pre class="json">${v === null || v === undefined ? '—' : JSON.stringify(v, null, 2)}</pre>`;
}

export function nodesPages(deps: DashboardDeps): Router {
  const r = Router();
  const { store, log } = deps;
  const nodeOf = (req: Request, res: Response): NodeRecord | null => {
    const id = Number(req.params['id']);
    const n = Number.isSafeInteger(id) ? store.nodes.get(id) : undefined;
    if (!n) {
      res.status(404).type('html').send(page({ title: 'No such node', section: 'nodes', csrfToken: sessionOf(res).csrfToken }, html`<h1>No node ${String(req.params['id'])}</h1>`));
      return null;
    }
    return n;
  };
  const back = (res: Response, n: NodeRecord, message: string): void => {
    res.redirect(303, `/ui/nodes/${n.id}?message=${encodeURIComponent(message)}`);
  };

  r.get('/', (req, res) => nodesList(deps, req, res));

  r.get('/ui/nodes/:id', (req, res) => {
    const n = nodeOf(req, res);
    if (!n) return;
    const csrf = sessionOf(res).csrfToken;
    const liveSince = deps.live.sentUpTo;
    const events = store.events.timeline(n.id, 200);
    const steps = store.rollouts.list().flatMap((ro) => store.rollouts.steps(ro.id).filter((s) => s.nodeId === n.id).map((s) => ({ rollout: ro.id, ...s })));
    const platforms = store.platforms.list();
    const message = typeof req.query['message'] === 'string' ? req.query['message'] : null;
    const body = html`<h1>${n.hostname ?? `node ${n.id}`} <span id="node-state">${badge(n.state)}</span></h1>
${message ? html`<p class="message">${message}</p>` : null}
<section class="actions" data-node="${n.id}">
<form method="post" action="/ui/nodes/${n.id}/power" data-confirm="Power-cycle this node?"><input type="hidden" name="_csrf" value="${csrf}"><input type="hidden" name="action" value="cycle"><button>Power cycle</button></form>
<form method="post" action="/ui/nodes/${n.id}/platform" data-confirm="Assign this platform? The node boots it next time."><input type="hidden" name="_csrf" value="${csrf}">
${platforms.length
  ? html`<select name="stamp">${platforms.map((p) => html`<option value="${p.stamp}"${p.stamp === n.bootPlatform ? html` selected` : null}>${p.stamp}</option>`)}</select><button>Set platform</button>`
  : html`<select disabled><option>no platform imported</option></select><button disabled>Set platform</button>`}</form>
<form method="post" action="/ui/nodes/${n.id}/retire" data-confirm="Retire this node? It will boot nothing."><input type="hidden" name="_csrf" value="${csrf}"><button class="danger">Retire</button></form>
</section>
<dl class="facts"><dt>UUID</dt><dd>${n.uuid ?? '—'}</dd><dt>Platform</dt><dd>${n.bootPlatform ?? '—'} (running ${n.currentPlatform ?? '—'})</dd>
<dt>Power</dt><dd>${powerKind(n.power)}</dd><dt>Last seen</dt><dd>${relative(n.lastSeen, store.now())}</dd></dl>
<h2>NICs</h2>
<table><thead><tr><th>MAC</th><th>Tag</th><th>IP</th><th>Network</th><th>VLAN</th><th>MTU</th></tr></thead>
<tbody>${n.nics.map((c) => html`<tr><td><code>${c.mac}</code>${c.isAdmin ? ' (admin)' : ''}</td><td>${c.nicTag ?? ''}</td><td>${c.ip ?? ''}</td><td>${c.network ?? ''}</td><td>${c.vlan ?? ''}</td><td>${c.mtu ?? ''}</td></tr>`)}</tbody></table>
<h2>Hardware</h2>${json(n.sysinfo)}
<h2>Network plan</h2>${json(n.networkConfig)}
<h2>Zpool plan</h2>${json(n.zpoolConfig)}
<h2>Rollout steps</h2>
<table><thead><tr><th>Rollout</th><th>Step</th><th>State</th></tr></thead>
<tbody>${steps.length ? steps.map((s) => html`<tr><td><a href="/ui/rollouts/${s.rollout}">${s.rollout}</a></td><td>${s.label}</td><td>${badge(s.state)}</td></tr>`) : html`<tr><td colspan="3" class="hint">in no rollout</td></tr>`}</tbody></table>
<h2>Boot waterfall</h2>
<section id="waterfall" data-node="${n.id}">${waterfallSection(waterfalls(events), store.now())}</section>
<h2>Boot timeline</h2>
<table class="timeline" data-node="${n.id}"><thead><tr><th>At</th><th>Event</th><th>MAC</th><th>Detail</th></tr></thead>
<tbody>${events.map((e) => html`<tr data-event="${e.id}"><td>${new Date(e.at).toISOString()}</td><td>${e.event}</td><td><code>${e.mac ?? ''}</code></td><td><code>${JSON.stringify(e.detail)}</code></td></tr>`)}</tbody></table>`;
    res.type('html').send(page({ title: n.hostname ?? `node ${n.id}`, section: 'nodes', csrfToken: csrf, script: 'node.js', liveSince }, body));
  });

  // The waterfall alone, re-fetched by node.js when a boot event of this node arrives.
  r.get('/ui/nodes/:id/waterfall', (req, res) => {
    const n = nodeOf(req, res);
    if (!n) return;
    res.type('html').send(waterfallSection(waterfalls(store.events.timeline(n.id, 200)), store.now()).toString());
  });

  r.post('/ui/nodes/:id/power', async (req, res) => {
    const n = nodeOf(req, res);
    if (!n) return;
    const mac = n.nics[0]?.mac;
    const driverFor = deps.powerDriverFor ?? ((spec: unknown) => powerDriverFor(spec, powerLogging(log.child({ node: n.id, ...(mac ? { mac } : {}) }))));
    try {
      const result = await powerNode(store, n, 'cycle', driverFor);
      log.info({ event: 'power', node: n.id, mac, via: 'dashboard', ...result }, 'node powered');
      back(res, n, result.instructions ?? 'power cycle done');
    } catch (err) {
      if (!(err instanceof PowerError)) throw err;
      log.warn({ event: 'power_failed', node: n.id, mac, action: 'cycle', err: err.message }, 'power action failed');
      back(res, n, `power cycle failed: ${err.message}`);
    }
  });

  r.post('/ui/nodes/:id/platform', (req, res) => {
    const n = nodeOf(req, res);
    if (!n) return;
    const stamp = (req.body as Record<string, unknown> | undefined)?.['stamp'];
    if (typeof stamp !== 'string' || stamp === '') {
      back(res, n, 'stamp: choose an imported platform');
      return;
    }
    try {
      const a = assignPlatform(store, n, stamp, { reason: 'operator' });
      log.info({ event: 'platform_assigned', node: n.id, mac: n.nics[0]?.mac, stamp, changed: a.changed, via: 'dashboard' }, 'platform assigned');
      back(res, n, a.changed ? `platform ${stamp} assigned` : `platform ${stamp} was already assigned`);
    } catch (err) {
      if (err instanceof NodeInRolloutError || err instanceof Error) {
        back(res, n, err.message);
        return;
      }
      throw err;
    }
  });

  r.post('/ui/nodes/:id/retire', (req, res) => {
    const n = nodeOf(req, res);
    if (!n) return;
    retireNode(store, n);
    log.info({ event: 'node_retire', node: n.id, via: 'dashboard' }, 'node retired');
    back(res, n, 'node retired');
  });
  return r;
}
