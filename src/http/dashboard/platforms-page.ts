// GET /ui/platforms: each imported platform with the nodes that boot it next and the nodes that run it.
import { Router } from 'express';
import type { NodeRecord } from '../../store/nodes.ts';
import type { DashboardDeps } from './deps.ts';
import { html, type Html } from './html.ts';
import { page } from './layout.ts';
import { sessionOf } from './session.ts';

/** How many node links a cell lists before it says "and N more". */
const LINKS_SHOWN = 20;

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 * 1024 * 1024) return `${(n / (1024 * 1024)).toFixed(1)} MiB`;
  return `${(n / (1024 * 1024 * 1024)).toFixed(2)} GiB`;
}

function nodeLinks(nodes: NodeRecord[]): Html {
  if (nodes.length === 0) return html`<span class="muted">0</span>`;
  const shown = nodes.slice(0, LINKS_SHOWN);
  const more = nodes.length - shown.length;
  return html`<strong>${nodes.length}</strong>: ${shown.map(
    (n, i) => html`${i > 0 ? ', ' : ''}<a href="/ui/nodes/${n.id}">${n.hostname ?? `node ${n.id}`}</a>`,
  )}${more > 0 ? html` and ${more} more` : null}`;
}

export function platformsPages(deps: DashboardDeps): Router {
  const r = Router();
  r.get('/ui/platforms', (_req, res) => {
    const platforms = deps.store.platforms.list();
    // One pass over the registry, grouped by stamp, rather than a query per platform.
    const booting = new Map<string, NodeRecord[]>();
    const running = new Map<string, NodeRecord[]>();
    for (const n of deps.store.nodes.list()) {
      if (n.bootPlatform) booting.set(n.bootPlatform, [...(booting.get(n.bootPlatform) ?? []), n]);
      if (n.currentPlatform) running.set(n.currentPlatform, [...(running.get(n.currentPlatform) ?? []), n]);
    }
    const body = html`<h1>Platforms</h1>
${platforms.length === 0
  ? html`<p class="empty">No platform is imported: run <code>fleetboot platform import</code> on the head node.</p>`
  : html`<table class="platforms">
<thead><tr><th>Stamp</th><th>Kind</th><th>Size</th><th>Imported at</th><th>Boot it next</th><th>Run it</th></tr></thead>
<tbody>${platforms.map(
  (p) => html`<tr data-stamp="${p.stamp}"><td><code>${p.stamp}</code>${p.isDefault ? html` <span class="badge default">default</span>` : null}</td>
<td>${p.os}${p.version ? html` ${p.version}` : null}</td><td>${bytes(p.size)}</td>
<td><time datetime="${new Date(p.importedAt).toISOString()}">${new Date(p.importedAt).toISOString().replace('T', ' ').slice(0, 19)}</time></td>
<td>${nodeLinks(booting.get(p.stamp) ?? [])}</td><td>${nodeLinks(running.get(p.stamp) ?? [])}</td></tr>`,
)}</tbody></table>`}`;
    res.type('html').send(page({ title: 'Platforms', section: 'platforms', csrfToken: sessionOf(res).csrfToken }, body));
  });
  return r;
}
