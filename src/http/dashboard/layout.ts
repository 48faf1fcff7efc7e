// The frame every dashboard page shares: head (css, the live feed script), nav, body.
import { html, type Html } from './html.ts';

export type Section = 'nodes' | 'platforms' | 'rollouts' | 'headnode';

export interface PageContext {
  title: string;
  section: Section;
  csrfToken: string;
  /** Page script under /ui/assets/ (e.g. "nodes.js"), loaded after live.js. */
  script?: string;
  /** The live feed's position when the page was read (LiveFeed.sentUpTo): the stream replays what came after. */
  liveSince?: number;
}

const SECTIONS: readonly { section: Section; href: string; label: string }[] = [
  { section: 'nodes', href: '/', label: 'Nodes' },
  { section: 'platforms', href: '/ui/platforms', label: 'Platforms' },
  { section: 'rollouts', href: '/ui/rollouts', label: 'Rollouts' },
  { section: 'headnode', href: '/ui/headnode', label: 'Head node' },
];

/** The whole page: head (css, /ui/assets/live.js), nav (Nodes, Platforms, Rollouts, Head node, log out form), body. */
export function page(ctx: PageContext, body: Html): string {
  return `<!doctype html>\n${html`<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="csrf-token" content="${ctx.csrfToken}">
${ctx.liveSince !== undefined ? html`<meta name="fb-live-since" content="${String(ctx.liveSince)}">` : null}
<title>${ctx.title} · fleetboot</title>
<link rel="stylesheet" href="/ui/assets/dashboard.css">
<script src="/ui/assets/live.js" defer></script>
${ctx.script ? html`<script src="/ui/assets/${ctx.script}" defer></script>` : null}
</head>
<body>
<nav class="top">
<span class="brand">fleetboot</span>
${SECTIONS.map((s) => html`<a href="${s.href}"${s.section === ctx.section ? html` class="active" aria-current="page"` : null}>${s.label}</a>`)}
<span class="spacer"></span>
<span id="live-status" class="live-status">connecting</span>
<form method="post" action="/ui/logout" class="logout"><input type="hidden" name="_csrf" value="${ctx.csrfToken}"><button type="submit">Log out</button></form>
</nav>
<main>
${body}
</main>
</body>
</html>`}`;
}

/** A page outside the session (login): no nav, no live feed. */
export function barePage(title: string, body: Html): string {
  return `<!doctype html>\n${html`<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · fleetboot</title>
<link rel="stylesheet" href="/ui/assets/dashboard.css">
</head>
<body class="bare"><main>${body}</main></body>
</html>`}`;
}
