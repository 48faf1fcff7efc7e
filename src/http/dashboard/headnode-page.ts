// GET /ui/headnode: which services run, their counters as of this request, the boots in
// flight and the size of the registry's write-ahead log.
import { statSync } from 'node:fs';
import { Router } from 'express';
import type { DashboardDeps } from './deps.ts';
import { html, type Html } from './html.ts';
import { page } from './layout.ts';
import { sessionOf } from './session.ts';

/** A counters object as a two-column table: every numeric field, in the order the service reports them. */
function counterTable(name: string, stats: object | null): Html {
  if (stats === null) return html`<h2>${name} <span class="badge state-retired">off</span></h2>`;
  const rows = Object.entries(stats).filter((e): e is [string, number] => typeof e[1] === 'number');
  return html`<h2>${name} <span class="badge state-running">on</span></h2>
<table class="counters" data-service="${name}"><tbody>${rows.map(([k, v]) => html`<tr><th>${k}</th><td>${v}</td></tr>`)}</tbody></table>`;
}

/** The SQLite WAL file beside the registry (https://sqlite.org/wal.html: `<db>-wal`); 0 when absent. */
function walBytes(dbFile: string): number {
  try {
    return statSync(`${dbFile}-wal`).size;
  } catch {
    return 0;
  }
}

export function headnodePages(deps: DashboardDeps): Router {
  const r = Router();
  r.get('/ui/headnode', (_req, res) => {
    const now = Date.now();
    const c = deps.counters?.();
    const inFlight = deps.store.nodes.list().filter((n) => n.state === 'setting_up' || n.state === 'rebooting');
    const body = html`<h1>Head node</h1>
${c ? html`<p>Started at <time datetime="${c.startedAt}">${c.startedAt}</time></p>
${counterTable('DHCP', c.dhcp)}${counterTable('TFTP', c.tftp)}${counterTable('Store', c.store)}` : html`<p class="empty">This head node reports no counters.</p>`}
<h2>Boots in flight</h2>
${inFlight.length === 0
  ? html`<p class="empty">No node is setting up or rebooting.</p>`
  : html`<table class="inflight"><thead><tr><th>Node</th><th>State</th><th>For</th></tr></thead><tbody>${inFlight.map(
      (n) => html`<tr data-node="${n.id}"><td><a href="/ui/nodes/${n.id}">${n.hostname ?? `node ${n.id}`}</a></td><td><span class="badge state-${n.state}">${n.state}</span></td>
<td>${n.lastBoot === null ? '—' : `${Math.max(0, Math.round((now - n.lastBoot) / 1000))} s`}</td></tr>`,
    )}</tbody></table>`}
<h2>Registry</h2>
<p>Write-ahead log: <span id="wal-bytes">${walBytes(deps.store.db.name)}</span> bytes</p>`;
    res.type('html').send(page({ title: 'Head node', section: 'headnode', csrfToken: sessionOf(res).csrfToken }, body));
  });
  return r;
}
