// The dashboard's one Server-Sent Events stream (HTML Living Standard §9.2). Changes are
// learnt by reading the boot_events journal past the last id seen, one range query per tick
// shared by every client, and the rollout journal's change stamp; each client gets them as
// `boot`, `node`, `rollout` and `counters` events. A client that cannot keep up is dropped
// and resumes with Last-Event-ID (§9.2.4). A page passes `?since=` the journal id it was
// rendered at, so what happened between the render and the stream's opening is replayed too.
// Replay comes from the recent buffer, else from the journal; past RESUME_KEEP events the
// client gets a `resync` event instead (its page is too stale to patch).
import type { Request, RequestHandler, Response } from 'express';
import type { Logger } from '../../log.ts';
import type { BootEvent, BootEventKind } from '../../store/events.ts';
import type { Store } from '../../store/store.ts';
import type { HeadNodeCounters } from '../admin-api.ts';
import { nodeView } from '../admin-api.ts';
import { sendError } from '../errors.ts';

export interface LiveFeedOptions {
  store: Store;
  log: Logger;
  counters?: () => HeadNodeCounters;
  /** Journal read interval (ms). */
  pollMs?: number;
  /** Events read per tick at most; the rest come next tick. */
  batch?: number;
  maxClients?: number;
  /** Bytes buffered on a client's socket past which it is dropped. */
  maxBufferedBytes?: number;
  heartbeatMs?: number;
  countersMs?: number;
  /** Rollout stamp read interval (ms). */
  rolloutPollMs?: number;
}

/** Events that change a node's row: the feed sends the fresh row after them. */
const NODE_CHANGING: ReadonlySet<BootEventKind> = new Set(['state', 'platform', 'power', 'checkin', 'rollout']);

interface Client {
  res: Response;
}

/** Boot events kept for Last-Event-ID resumption. */
const RESUME_KEEP = 2000;

export class LiveFeed {
  private readonly clients = new Set<Client>();
  private lastId = 0;
  private rolloutStamp = '';
  private rolloutCheckedAt = 0;
  /** Recent boot events, as sent, for resumption: [id, frame]. */
  private readonly recent: [number, string][] = [];
  private timers: NodeJS.Timeout[] = [];
  private readonly pollMs: number;
  private readonly batch: number;
  private readonly maxClients: number;
  private readonly maxBufferedBytes: number;
  /** Clients dropped for back-pressure since start. */
  dropped = 0;

  constructor(private readonly options: LiveFeedOptions) {
    this.pollMs = options.pollMs ?? 300;
    this.batch = options.batch ?? 500;
    this.maxClients = options.maxClients ?? 64;
    this.maxBufferedBytes = options.maxBufferedBytes ?? 1 << 20;
  }

  /** The newest journal id the feed has sent: a page rendered now is current up to it. */
  get sentUpTo(): number {
    return this.lastId;
  }

  get clientCount(): number {
    return this.clients.size;
  }

  start(): void {
    if (this.timers.length) return;
    this.lastId = this.options.store.events.lastId();
    this.rolloutStamp = this.options.store.rollouts.changeStamp();
    this.rolloutCheckedAt = this.options.store.now();
    const tick = setInterval(() => this.tick(), this.pollMs);
    const heartbeat = setInterval(() => this.broadcast(': heartbeat\n\n'), this.options.heartbeatMs ?? 15_000);
    const counters = setInterval(() => this.sendCounters(), this.options.countersMs ?? 2000);
    for (const t of [tick, heartbeat, counters]) t.unref();
    this.timers = [tick, heartbeat, counters];
  }

  stop(): void {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    for (const c of this.clients) c.res.end();
    this.clients.clear();
  }

  /** Reads what changed since the last tick and sends it to every client. */
  tick(): void {
    try {
      const events = this.options.store.events.after(this.lastId, this.batch);
      const changedNodes = new Set<number>();
      for (const e of events) {
        this.lastId = e.id;
        const frame = bootFrame(e);
        this.recent.push([e.id, frame]);
        this.broadcast(frame);
        if (this.clients.size && e.nodeId !== null && NODE_CHANGING.has(e.event)) changedNodes.add(e.nodeId);
      }
      if (this.recent.length > RESUME_KEEP) this.recent.splice(0, this.recent.length - RESUME_KEEP);
      for (const id of changedNodes) {
        const n = this.options.store.nodes.get(id);
        if (n) this.broadcast(frameOf('node', nodeView(n)));
      }
      const now = this.options.store.now();
      if (now - this.rolloutCheckedAt >= (this.options.rolloutPollMs ?? 1000)) {
        const stamp = this.options.store.rollouts.changeStamp();
        if (stamp !== this.rolloutStamp) {
          for (const r of this.options.store.rollouts.changedSince(this.rolloutCheckedAt - this.pollMs)) this.broadcast(frameOf('rollout', r));
          this.rolloutStamp = stamp;
        }
        this.rolloutCheckedAt = now;
      }
    } catch (err) {
      this.options.log.warn({ event: 'dashboard_live_error', err }, 'live feed could not read the journal');
    }
  }

  private sendCounters(): void {
    if (!this.options.counters || this.clients.size === 0) return;
    const c = this.options.counters();
    this.broadcast(frameOf('counters', { at: new Date().toISOString(), ...c }));
  }

  private broadcast(frame: string): void {
    for (const c of this.clients) this.write(c, frame);
  }

  /** Writes, or drops a client whose socket buffer is full (it reconnects and resumes). */
  private write(c: Client, frame: string): void {
    const socket = c.res.socket;
    if (socket && socket.writableLength > this.maxBufferedBytes) {
      this.dropped++;
      this.clients.delete(c);
      this.options.log.info({ event: 'dashboard_live_dropped', buffered: socket.writableLength }, 'slow live-feed client dropped');
      c.res.destroy();
      return;
    }
    c.res.write(frame);
  }

  /** Sends a resuming client the boot events after `from` it has not seen, up to what the feed has sent. */
  private replay(res: Response, from: number): void {
    if (from >= this.lastId) return;
    const oldest = this.recent[0]?.[0];
    if (oldest !== undefined && from >= oldest - 1) {
      for (const [id, frame] of this.recent) if (id > from) res.write(frame);
      return;
    }
    const missed = this.options.store.events.after(from, RESUME_KEEP + 1).filter((e) => e.id <= this.lastId);
    if (missed.length > RESUME_KEEP) {
      res.write(frameOf('resync', { from, upTo: this.lastId }));
      return;
    }
    for (const e of missed) res.write(bootFrame(e));
  }

  /** GET /ui/events: the SSE stream. */
  handler(): RequestHandler {
    return (req: Request, res: Response) => {
      if (this.clients.size >= this.maxClients) {
        res.setHeader('Retry-After', '10');
        sendError(res, 503, 'too_many_clients', `the live feed serves at most ${this.maxClients} clients`);
        return;
      }
      res.writeHead(200, {
        'Content-Type': 'text/event-stream; charset=utf-8',
        'Cache-Control': 'no-store',
        Connection: 'keep-alive',
        'X-Accel-Buffering': 'no',
      });
      // §9.2.6: `retry` sets the reconnection time.
      res.write('retry: 3000\n\n');
      const client: Client = { res };
      const from = resumePoint(req);
      if (from !== null) this.replay(res, from);
      this.clients.add(client);
      req.socket.setNoDelay(true);
      res.on('close', () => this.clients.delete(client));
    };
  }
}

/** Where a client resumes: Last-Event-ID (a reconnect, §9.2.4) or else `?since=` (a page's render point). */
function resumePoint(req: Request): number | null {
  for (const raw of [req.get('last-event-id'), typeof req.query['since'] === 'string' ? req.query['since'] : undefined]) {
    if (raw === undefined || !/^\d{1,15}$/.test(raw)) continue;
    return Number(raw);
  }
  return null;
}

function frameOf(event: string, data: unknown, id?: number): string {
  return `${id !== undefined ? `id: ${id}\n` : ''}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

function bootFrame(e: BootEvent): string {
  return frameOf('boot', { id: e.id, nodeId: e.nodeId, mac: e.mac, event: e.event, at: new Date(e.at).toISOString(), detail: e.detail }, e.id);
}
