// One node's boots drawn as waterfalls (src/boot/waterfall.ts cuts the timeline into boots and
// timed steps): a row per step, its bar placed on the boot's own time axis, with the time it
// took. Rendered on the server, so the node page and the fragment its script re-fetches while the
// node boots (GET /ui/nodes/:id/waterfall) are drawn by the same code.
import type { BootWaterfall, WaterfallSegment } from '../../boot/waterfall.ts';
import { html, type Html } from './html.ts';

/** Boots shown, newest first; older ones stay in the timeline table below. */
export const WATERFALL_BOOTS_SHOWN = 3;

const ms = (v: number): string => (v < 1000 ? `${Math.round(v)} ms` : `${(v / 1000).toFixed(v < 10_000 ? 2 : 1)} s`);

function bytes(n: number | undefined): string {
  if (n === undefined) return '';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / (1024 * 1024)).toFixed(1)} MiB`;
}

/** Percent of the axis, clamped, with one decimal: the bar's position is data, not layout. */
const pct = (v: number): string => `${Math.min(100, Math.max(0, v)).toFixed(1)}%`;

function segmentRow(s: WaterfallSegment, origin: number, span: number): Html {
  const took = s.endMs - s.startMs;
  const left = ((s.startMs - origin) / span) * 100;
  // A point in time (DHCP, check-in) still gets a sliver so it can be seen.
  const width = Math.max((took / span) * 100, 0.4);
  return html`<tr class="step step-${s.step}"><td class="label">${s.label}</td>
<td class="track"><div class="bar${s.measured ? '' : ' estimate'}" style="margin-left:${pct(left)};width:${pct(width)}" title="${s.label}: ${ms(took)}${s.measured ? '' : ' (until the next step)'}"></div></td>
<td class="took">${took > 0 ? ms(took) : ''}${s.measured ? '' : html` <span class="hint" title="no duration recorded: until the next step">≈</span>`}</td><td class="bytes">${bytes(s.bytes)}</td></tr>`;
}

function bootTable(w: BootWaterfall, now: number): Html {
  const end = w.endedAt ?? Math.max(now, ...w.segments.map((s) => s.endMs));
  const span = Math.max(end - w.startedAt, 1);
  const state = w.complete ? html`checked in after <strong>${ms(w.totalMs ?? span)}</strong>` : w.endedAt === null ? html`<span class="badge state-setting_up">in progress</span> ${ms(span)} so far` : html`<span class="badge state-failed">no check-in</span>`;
  return html`<div class="boot"><p>Boot at ${new Date(w.startedAt).toISOString()}: ${state}</p>
<table class="waterfall"><thead><tr><th>Step</th><th class="track">0 → ${ms(span)}</th><th>Took</th><th>Bytes</th></tr></thead>
<tbody>${w.segments.map((s) => segmentRow(s, w.startedAt, span))}</tbody></table></div>`;
}

/** The waterfall section's inner HTML: the newest boots first. */
export function waterfallSection(boots: readonly BootWaterfall[], now: number): Html {
  if (boots.length === 0) return html`<p class="hint">no boot recorded yet: the waterfall fills in as the node boots</p>`;
  return html`${boots.slice(-WATERFALL_BOOTS_SHOWN).reverse().map((w) => bootTable(w, now))}`;
}
