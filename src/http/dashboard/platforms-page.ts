// GET /ui/platforms: each imported platform with the nodes that boot it next and the nodes that
// run it, and the imports running now (progress bars) with the recent failures. The platforms
// table and the imports section are also served alone as fragments, which platforms.js
// re-fetches as the live feed reports changes.
import { Router } from 'express';
import type { NodeRecord } from '../../store/nodes.ts';
import type { PlatformImportRecord } from '../../store/platforms.ts';
import type { DashboardDeps } from './deps.ts';
import { html, type Html } from './html.ts';
import { page } from './layout.ts';
import { sessionOf } from './session.ts';

/** How many node links a cell lists before it says "and N more". */
const LINKS_SHOWN = 20;
/** Import rows read for the imports section. */
const IMPORTS_READ = 50;
/** Failed (or interrupted) imports are listed for this long after they ended. */
const FAILURES_SHOWN_MS = 24 * 3600_000;
/** Finished imports are listed for this long, so a bar that reached the end is seen to. */
const DONE_SHOWN_MS = 3600_000;

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 * 1024 * 1024) return `${(n / (1024 * 1024)).toFixed(1)} MiB`;
  return `${(n / (1024 * 1024 * 1024)).toFixed(2)} GiB`;
}

const isoTime = (t: number): Html => html`<time datetime="${new Date(t).toISOString()}">${new Date(t).toISOString().replace('T', ' ').slice(0, 19)}</time>`;

function nodeLinks(nodes: NodeRecord[]): Html {
  if (nodes.length === 0) return html`<span class="muted">0</span>`;
  const shown = nodes.slice(0, LINKS_SHOWN);
  const more = nodes.length - shown.length;
  return html`<strong>${nodes.length}</strong>: ${shown.map(
    (n, i) => html`${i > 0 ? ', ' : ''}<a href="/ui/nodes/${n.id}">${n.hostname ?? `node ${n.id}`}</a>`,
  )}${more > 0 ? html` and ${more} more` : null}`;
}

/** The platforms table (or the empty-registry hint): the registry read once, grouped by stamp. */
function platformsTable(deps: DashboardDeps): Html {
  const platforms = deps.store.platforms.list();
  const booting = new Map<string, NodeRecord[]>();
  const running = new Map<string, NodeRecord[]>();
  for (const n of deps.store.nodes.list()) {
    if (n.bootPlatform) booting.set(n.bootPlatform, [...(booting.get(n.bootPlatform) ?? []), n]);
    if (n.currentPlatform) running.set(n.currentPlatform, [...(running.get(n.currentPlatform) ?? []), n]);
  }
  if (platforms.length === 0) return html`<p class="empty">No platform is imported: run <code>fleetboot platform import</code> on the head node.</p>`;
  return html`<table class="platforms">
<thead><tr><th>Stamp</th><th>Kind</th><th>Size</th><th>Imported at</th><th>Boot it next</th><th>Run it</th></tr></thead>
<tbody>${platforms.map(
    (p) => html`<tr data-stamp="${p.stamp}"><td><code>${p.stamp}</code>${p.isDefault ? html` <span class="badge default">default</span>` : null}</td>
<td>${p.os}${p.version ? html` ${p.version}` : null}</td><td>${bytes(p.size)}</td>
<td>${isoTime(p.importedAt)}</td>
<td>${nodeLinks(booting.get(p.stamp) ?? [])}</td><td>${nodeLinks(running.get(p.stamp) ?? [])}</td></tr>`,
  )}</tbody></table>`;
}

/** What an import row shows as: its stage, or `interrupted` for an active row whose process is gone. */
function importState(i: PlatformImportRecord): string {
  return i.stale ? 'interrupted' : i.stage;
}

function importBar(i: PlatformImportRecord): Html {
  // <progress> without a value is indeterminate (HTML Living Standard §4.10.13): a pipe has no size.
  if (i.bytesTotal === null || i.bytesTotal === 0) return html`<progress></progress> ${bytes(i.bytesDone)}`;
  const pct = Math.min(100, Math.floor((i.bytesDone * 100) / i.bytesTotal));
  return html`<progress max="${i.bytesTotal}" value="${Math.min(i.bytesDone, i.bytesTotal)}">${pct}%</progress> <span class="pct">${pct}%</span> ${bytes(i.bytesDone)} / ${bytes(i.bytesTotal)}`;
}

const importLabel = (i: PlatformImportRecord): Html =>
  html`${i.stamp === null ? html`<span class="muted">stamp not read yet</span>` : html`<code>${i.stamp}</code>`} <span class="muted">${i.os ?? ''} from ${i.source}</span>`;

/** Imports running now with a bar each, then the recent failures (interrupted ones among them) and the recent successes. */
function importsSection(imports: PlatformImportRecord[], now: number): Html {
  const active = imports.filter((i) => (i.stage === 'unpacking' || i.stage === 'hashing' || i.stage === 'writing') && !i.stale);
  const failed = imports.filter((i) => (i.stage === 'failed' || i.stale) && now - (i.finishedAt ?? i.updatedAt) < FAILURES_SHOWN_MS);
  const done = imports.filter((i) => i.stage === 'done' && now - (i.finishedAt ?? i.updatedAt) < DONE_SHOWN_MS).slice(0, 5);
  return html`<h2>Imports</h2>
${active.length === 0
  ? html`<p class="empty">No import is running.</p>`
  : html`<table class="imports active"><thead><tr><th>Platform</th><th>Stage</th><th>Progress</th><th>Started</th></tr></thead>
<tbody>${active.map(
      (i) => html`<tr data-import="${i.id}" data-stage="${i.stage}"><td>${importLabel(i)}</td><td><span class="badge state-setting_up">${i.stage}</span></td>
<td class="bar">${importBar(i)}</td><td>${isoTime(i.startedAt)}</td></tr>`,
    )}</tbody></table>`}
${failed.length === 0
  ? null
  : html`<h3>Failed imports</h3><table class="imports failed"><thead><tr><th>Platform</th><th>State</th><th>Ended</th><th>Error</th></tr></thead>
<tbody>${failed.map(
      (i) => html`<tr data-import="${i.id}" data-stage="${importState(i)}"><td>${importLabel(i)}</td><td><span class="badge state-failed">${importState(i)}</span></td>
<td>${isoTime(i.finishedAt ?? i.updatedAt)}</td><td class="error">${
        i.stale ? `the importing process (pid ${i.pid} on ${i.host}) stopped during ${i.stage}; nothing was left imported` : (i.error ?? '')
      }</td></tr>`,
    )}</tbody></table>`}
${done.length === 0
  ? null
  : html`<h3>Finished imports</h3><table class="imports done"><thead><tr><th>Platform</th><th>State</th><th>Took</th><th>Size</th></tr></thead>
<tbody>${done.map(
      (i) => html`<tr data-import="${i.id}" data-stage="done"><td>${importLabel(i)}</td><td><span class="badge state-done">done</span></td>
<td>${(((i.finishedAt ?? i.updatedAt) - i.startedAt) / 1000).toFixed(1)} s</td><td>${bytes(i.bytesTotal ?? i.bytesDone)}</td></tr>`,
    )}</tbody></table>`}`;
}

export function platformsPages(deps: DashboardDeps): Router {
  const r = Router();
  const imports = (): Html => importsSection(deps.store.platforms.imports(IMPORTS_READ), deps.store.now());
  r.get('/ui/platforms', (_req, res) => {
    const liveSince = deps.live.sentUpTo;
    const body = html`<h1>Platforms</h1>
<div id="platforms-table">${platformsTable(deps)}</div>
<section id="imports">${imports()}</section>`;
    res.type('html').send(page({ title: 'Platforms', section: 'platforms', csrfToken: sessionOf(res).csrfToken, script: 'platforms.js', liveSince }, body));
  });
  // Fragments for platforms.js: the table on a node's change, the imports while they run.
  r.get('/ui/platforms/table', (_req, res) => {
    res.set('Cache-Control', 'no-store').type('html').send(platformsTable(deps).value);
  });
  r.get('/ui/platforms/imports', (_req, res) => {
    res.set('Cache-Control', 'no-store').type('html').send(imports().value);
  });
  return r;
}
