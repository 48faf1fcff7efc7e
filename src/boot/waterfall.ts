// A node's boot timeline as waterfalls: its boot events (oldest first) cut into boots, each a
// list of timed segments. docs/timeline.md describes the rules.
//
// A boot starts at a `power` event that powers the node on or cycles it, or at the first DHCP
// DISCOVER after the previous boot ended (a PXE client always begins with DISCOVER: PXE 2.1
// §2.2.1); it ends at the next `checkin`. Events outside a boot (a REQUEST renewing a lease
// from the booted OS, RFC 2131 §4.4.5) join no boot.
// A boot that a new start interrupts before its check-in is kept with `complete: false`.
//
// Durations: `tftp_get` records `ms` when the transfer ends (its event time is the end). HTTP
// steps (the boot script, kernel, initrd, modules, files) are recorded when their response ends,
// dated at the request's arrival, with `ms` (the end is at + ms). An event that carries no
// duration (older journals) gets a segment that starts at its event and lasts until the next
// event of the same boot; `measured: false` says so.
import type { BootEvent, BootEventKind } from '../store/events.ts';

export type WaterfallStep = 'power' | 'dhcp' | 'tftp' | 'script' | 'kernel' | 'initrd' | 'module' | 'file' | 'checkin';

export interface WaterfallSegment {
  step: WaterfallStep;
  label: string;
  startMs: number;
  endMs: number;
  bytes?: number;
  /** False when the event carried no duration and the end is the next event's time. */
  measured: boolean;
  detail: Record<string, unknown>;
}

export interface BootWaterfall {
  startedAt: number;
  endedAt: number | null;
  totalMs: number | null;
  segments: WaterfallSegment[];
  complete: boolean;
}

const stepOf: Partial<Record<BootEventKind, WaterfallStep>> = {
  power: 'power',
  dhcp_discover: 'dhcp',
  dhcp_offer: 'dhcp',
  dhcp_request: 'dhcp',
  dhcp_ack: 'dhcp',
  dhcp_nak: 'dhcp',
  tftp_get: 'tftp',
  script: 'script',
  kernel: 'kernel',
  initrd: 'initrd',
  module: 'module',
  file: 'file',
  checkin: 'checkin',
};

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/** Whether an event can open a boot when none is open. */
function startsBoot(e: BootEvent): boolean {
  if (e.event === 'power') {
    const action = str(e.detail['action']);
    return (action === 'on' || action === 'cycle' || action === 'reset') && e.detail['error'] === undefined;
  }
  return e.event === 'dhcp_discover';
}

function labelOf(e: BootEvent, step: WaterfallStep): string {
  const d = e.detail;
  if (step === 'dhcp') return e.event.slice('dhcp_'.length).toUpperCase();
  if (step === 'tftp') return str(d['file']) ?? 'tftp';
  if (step === 'power') return `power ${str(d['action']) ?? ''}`.trim();
  if (isWait(e)) return `waiting for a boot slot (${num(d['position']) ?? '?'} of ${num(d['waiting']) ?? '?'} waiting)`;
  return str(d['path']) ?? str(d['file']) ?? step;
}

/** A wait script (boot/boot-slots.ts): the node sleeps, then asks again; the wait lasts until it does. */
function isWait(e: BootEvent): boolean {
  return e.event === 'script' && e.detail['action'] === 'wait';
}

/** Boots of one node's timeline (events oldest first), newest last. */
export function waterfalls(events: readonly BootEvent[]): BootWaterfall[] {
  const boots: { events: BootEvent[]; complete: boolean }[] = [];
  let current: { events: BootEvent[]; complete: boolean } | null = null;
  // Journal order is append order; an HTTP step is appended when its response ends but dated at
  // its arrival, so time order is `at` (id breaks ties).
  const ordered = [...events].sort((a, b) => a.at - b.at || a.id - b.id);
  for (const e of ordered) {
    const step = stepOf[e.event];
    if (!step) continue;
    const sawDhcp = current?.events.some((x) => x.event === 'dhcp_discover') ?? false;
    // A second DISCOVER inside a boot that has already fetched something is a retry of the
    // whole boot (firmware reset); one before any fetch is a DHCP retransmission. Once the
    // kernel is fetched, a DISCOVER is the booted OS bringing up its own network (the Linux
    // initramfs's udhcpc, SmartOS's dhcpagent for an admin NIC on DHCP) and stays in the boot;
    // the firmware or iPXE starting over shows instead as a new TFTP fetch or boot script.
    const fetched = current?.events.some((x) => stepOf[x.event] !== 'dhcp' && x.event !== 'power') ?? false;
    const kernelFetched = current?.events.some((x) => x.event === 'kernel') ?? false;
    const loaderAgain = kernelFetched && (e.event === 'tftp_get' || e.event === 'script');
    const restart =
      current !== null && ((e.event === 'dhcp_discover' && sawDhcp && fetched && !kernelFetched) || loaderAgain || (e.event === 'power' && startsBoot(e)));
    // The DHCP exchange that came just before the loader started over was that new boot's own
    // (its firmware or iPXE asking for an address), not the old boot's OS: it moves along.
    let carried: BootEvent[] = [];
    if (restart && current) {
      if (loaderAgain) {
        const lastOther = current.events.findLastIndex((x) => stepOf[x.event] !== 'dhcp');
        carried = current.events.splice(lastOther + 1);
      }
      boots.push(current);
      current = null;
    }
    if (!current) {
      if (!startsBoot(e) && !loaderAgain) continue;
      current = { events: carried, complete: false };
    }
    current.events.push(e);
    if (e.event === 'checkin') {
      current.complete = true;
      boots.push(current);
      current = null;
    }
  }
  if (current) boots.push(current);
  return boots.map(toWaterfall);
}

function toWaterfall(b: { events: BootEvent[]; complete: boolean }): BootWaterfall {
  const segments: WaterfallSegment[] = [];
  b.events.forEach((e, i) => {
    const step = stepOf[e.event] as WaterfallStep;
    const ms = num(e.detail['ms']);
    const next = b.events[i + 1];
    let startMs = e.at;
    let endMs = e.at;
    let measured = true;
    if (step === 'tftp' && ms !== undefined) startMs = e.at - ms;
    // The wait runs from the wait script to the node's next request (or the wait it was told).
    else if (isWait(e)) endMs = next ? Math.max(e.at, next.at) : e.at + (num(e.detail['waitSeconds']) ?? 0) * 1000;
    else if (ms !== undefined) endMs = e.at + ms;
    else if (step !== 'dhcp' && step !== 'checkin' && step !== 'power') {
      endMs = next ? Math.max(e.at, next.at) : e.at;
      measured = false;
    }
    const bytes = num(e.detail['bytes']) ?? num(e.detail['size']);
    segments.push({ step, label: labelOf(e, step), startMs, endMs, ...(bytes !== undefined ? { bytes } : {}), measured, detail: e.detail });
  });
  const startedAt = Math.min(...segments.map((s) => s.startMs));
  const last = b.events[b.events.length - 1];
  const endedAt = b.complete && last ? last.at : null;
  return { startedAt, endedAt, totalMs: endedAt === null ? null : endedAt - startedAt, segments, complete: b.complete };
}
