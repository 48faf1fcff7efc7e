// GET /ui/headnode: which services run, their counters, the rates drawn from them, the boots in
// flight and the size of the registry's write-ahead log. The page is drawn as of the request;
// headnode.js then updates the counters in place from the live feed's `counters` event, works
// out the rates in the browser (differences between two ticks) and charts the last ten minutes
// with uPlot, and re-fetches the boots in flight (GET /ui/headnode/inflight) as boot events come.
import { statSync } from 'node:fs';
import { Router } from 'express';
import type { NodeRecord } from '../../store/nodes.ts';
import type { DashboardDeps } from './deps.ts';
import { html, type Html } from './html.ts';
import { page } from './layout.ts';
import { sessionOf } from './session.ts';

/** A counters object as a two-column table: every numeric field, in the order the service reports them. */
function counterTable(name: string, key: string, stats: object | null): Html {
  if (stats === null) return html`<h2>${name} <span class="badge state-retired">off</span></h2>`;
  const rows = Object.entries(stats).filter((e): e is [string, number] => typeof e[1] === 'number');
  return html`<h2>${name} <span class="badge state-running">on</span></h2>
<table class="counters" data-service="${name}"><tbody>${rows.map(([k, v]) => html`<tr><th>${k}</th><td data-counter="${key}.${k}">${v}</td></tr>`)}</tbody></table>`;
}

/** The SQLite WAL file beside the registry (https://sqlite.org/wal.html: `<db>-wal`); 0 when absent. */
function walBytes(dbFile: string): number {
  try {
    return statSync(`${dbFile}-wal`).size;
  } catch {
    return 0;
  }
}

/** Nodes setting up or rebooting, each with how long since its boot began (headnode.js keeps the seconds ticking). */
function inFlightTable(nodes: NodeRecord[], now: number): Html {
  const inFlight = nodes.filter((n) => n.state === 'setting_up' || n.state === 'rebooting');
  if (inFlight.length === 0) return html`<p class="empty">No node is setting up or rebooting.</p>`;
  return html`<table class="inflight"><thead><tr><th>Node</th><th>State</th><th>For</th></tr></thead><tbody>${inFlight.map(
    (n) => html`<tr data-node="${n.id}"><td><a href="/ui/nodes/${n.id}">${n.hostname ?? `node ${n.id}`}</a></td><td><span class="badge state-${n.state}">${n.state}</span></td>
<td${n.lastBoot === null ? null : html` data-since="${n.lastBoot}"`}>${n.lastBoot === null ? '—' : `${Math.max(0, Math.round((now - n.lastBoot) / 1000))} s`}</td></tr>`,
  )}</tbody></table>`;
}

/** The rate charts' frames: headnode.js draws into them, seeded with the counters the page was drawn from. */
function rateCharts(seed: object): Html {
  return html`<h2>Rates <span class="muted">(last 10 minutes)</span></h2>
<section id="rates" class="rates" data-seed="${JSON.stringify(seed)}">
<figure class="chart"><figcaption>DHCP packets/s, TFTP transfers/s</figcaption><div id="chart-packets"></div></figure>
<figure class="chart"><figcaption>Bytes/s sent: TFTP, HTTP</figcaption><div id="chart-bytes"></div></figure>
<figure class="chart"><figcaption>Boots in flight</figcaption><div id="chart-inflight"></div></figure>
</section>`;
}

export function headnodePages(deps: DashboardDeps): Router {
  const r = Router();
  r.get('/ui/headnode', (_req, res) => {
    const liveSince = deps.live.sentUpTo;
    const now = Date.now();
    const c = deps.counters?.();
    const body = html`<h1>Head node</h1>
${c
  ? html`<p>Started at <time datetime="${c.startedAt}">${c.startedAt}</time></p>
${rateCharts({ at: new Date(now).toISOString(), ...c })}
${counterTable('DHCP', 'dhcp', c.dhcp)}${counterTable('TFTP', 'tftp', c.tftp)}${c.http ? counterTable('HTTP', 'http', c.http) : null}${c.bootSlots ? counterTable('Boot slots', 'bootSlots', c.bootSlots) : null}${counterTable('Store', 'store', c.store)}`
  : html`<p class="empty">This head node reports no counters.</p>`}
<h2>Boots in flight</h2>
<div id="inflight">${inFlightTable(deps.store.nodes.list(), now)}</div>
<h2>Registry</h2>
<p>Write-ahead log: <span id="wal-bytes">${walBytes(deps.store.db.name)}</span> bytes</p>
<link rel="stylesheet" href="/ui/assets/uplot/uPlot.min.css">
<script src="/ui/assets/uplot/uPlot.iife.min.js" defer></script>
<script src="/ui/assets/headnode.js" defer></script>`;
    res.type('html').send(page({ title: 'Head node', section: 'headnode', csrfToken: sessionOf(res).csrfToken, liveSince }, body));
  });
  // The boots-in-flight fragment, re-fetched by headnode.js on the live feed's boot and node events.
  r.get('/ui/headnode/inflight', (_req, res) => {
    res.set('Cache-Control', 'no-store').type('html').send(inFlightTable(deps.store.nodes.list(), Date.now()).value);
  });
  return r;
}
