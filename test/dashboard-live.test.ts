import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { connect } from 'node:net';
import { test, type TestContext } from 'node:test';
import express from 'express';
import { LiveFeed } from '../src/http/dashboard/live.ts';
import { silentLogger } from '../src/log.ts';
import { Store } from '../src/store/store.ts';
import { parseMac } from '../src/mac.ts';
import { startHeadNode, tempDir } from './fixtures.ts';
import { dashboardLogin } from './dashboard-fixtures.ts';
import { sampleRollout } from './rollout-journal-contract.ts';

interface SseMessage {
  id?: string;
  event: string;
  data: unknown;
}

/** An SSE reader over fetch (HTML Living Standard §9.2.6 event stream interpretation, the subset the feed sends). */
class SseReader {
  private buffer = '';
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  private readonly decoder = new TextDecoder();

  constructor(
    body: ReadableStream<Uint8Array>,
    private readonly abort: AbortController,
  ) {
    this.reader = body.getReader();
  }

  /** Reads messages until `pick` accepts one (or 10 s pass). */
  async until(pick: (m: SseMessage) => boolean): Promise<SseMessage> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      let end: number;
      while ((end = this.buffer.indexOf('\n\n')) >= 0) {
        const block = this.buffer.slice(0, end);
        this.buffer = this.buffer.slice(end + 2);
        const m: SseMessage = { event: 'message', data: null };
        let data: string | null = null;
        for (const line of block.split('\n')) {
          if (line.startsWith('id: ')) m.id = line.slice(4);
          else if (line.startsWith('event: ')) m.event = line.slice(7);
          else if (line.startsWith('data: ')) data = line.slice(6);
        }
        if (data === null) continue;
        m.data = JSON.parse(data);
        if (pick(m)) return m;
      }
      assert.ok(Date.now() < deadline, 'no matching SSE message within 10 s');
      const { value, done } = await this.reader.read();
      assert.ok(!done, 'the stream ended');
      this.buffer += this.decoder.decode(value, { stream: true });
    }
  }

  close(): void {
    this.abort.abort();
  }
}

async function open(url: string, cookie: string, lastEventId?: string): Promise<SseReader> {
  const abort = new AbortController();
  const res = await fetch(`${url}/ui/events`, { headers: { ...(cookie ? { cookie } : {}), accept: 'text/event-stream', ...(lastEventId ? { 'last-event-id': lastEventId } : {}) }, signal: abort.signal });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
  return new SseReader(res.body!, abort);
}

/** A LiveFeed alone on an express server (no head node), closed after the test. */
async function feedServer(t: TestContext, feed: LiveFeed): Promise<string> {
  const app = express();
  app.get('/ui/events', feed.handler());
  const server = createServer(app).listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  feed.start();
  t.after(() => {
    feed.stop();
    server.closeAllConnections();
    server.close();
  });
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}

test('the SSE stream delivers a boot event recorded after connecting, and the node row it changed', async (t) => {
  const { url, token, head } = await startHeadNode(t, tempDir(t));
  const mac = parseMac('52:54:00:aa:00:01')!;
  const { node } = head.store.nodes.discover({ mac });
  const cookie = (await dashboardLogin(url, token)).cookie;
  const sse = await open(url, cookie);
  t.after(() => sse.close());
  await new Promise((r) => setTimeout(r, 50));
  head.store.events.record({ event: 'dhcp_discover', mac, detail: { xid: 1 } });
  const boot = await sse.until((m) => m.event === 'boot');
  const data = boot.data as { id: number; nodeId: number; mac: string; event: string; at: string };
  assert.equal(data.event, 'dhcp_discover');
  assert.equal(data.mac, mac);
  assert.equal(data.nodeId, node.id);
  assert.equal(boot.id, String(data.id));
  head.store.nodes.update(node.id, { state: 'running', hostname: 'web-1' });
  head.store.events.record({ event: 'state', nodeId: node.id, detail: { from: 'discovered', to: 'running' } });
  const row = await sse.until((m) => m.event === 'node');
  assert.deepEqual([(row.data as { id: number }).id, (row.data as { state: string }).state, (row.data as { hostname: string }).hostname], [node.id, 'running', 'web-1']);
  assert.equal(head.live.clientCount, 1);
});

test('a client reconnecting with Last-Event-ID gets the events it missed', async (t) => {
  const { url, token, head } = await startHeadNode(t, tempDir(t));
  const mac = parseMac('52:54:00:aa:00:02')!;
  head.store.nodes.discover({ mac });
  const cookie = (await dashboardLogin(url, token)).cookie;
  const first = await open(url, cookie);
  await new Promise((r) => setTimeout(r, 50));
  head.store.events.record({ event: 'dhcp_discover', mac });
  const seen = await first.until((m) => m.event === 'boot');
  first.close();
  const deadline = Date.now() + 5000;
  while (head.live.clientCount > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  head.store.events.record({ event: 'dhcp_offer', mac });
  head.store.events.record({ event: 'dhcp_request', mac });
  // Let a tick read them while nobody is connected.
  await new Promise((r) => setTimeout(r, 700));
  const again = await open(url, cookie, seen.id);
  t.after(() => again.close());
  const a = await again.until((m) => m.event === 'boot');
  const b = await again.until((m) => m.event === 'boot');
  assert.deepEqual([(a.data as { event: string }).event, (b.data as { event: string }).event], ['dhcp_offer', 'dhcp_request']);
  assert.equal(Number(a.id), Number(seen.id) + 1);
});

test('the live feed refuses clients past its cap and is closed with the head node', async (t) => {
  const { url, token, head } = await startHeadNode(t, tempDir(t));
  const cookie = (await dashboardLogin(url, token)).cookie;
  const readers: SseReader[] = [];
  t.after(() => readers.forEach((r) => r.close()));
  for (let i = 0; i < 64; i++) readers.push(await open(url, cookie));
  const over = await fetch(`${url}/ui/events`, { headers: { cookie } });
  assert.equal(over.status, 503);
  assert.equal(head.live.clientCount, 64);
  const started = Date.now();
  await head.stop();
  assert.ok(Date.now() - started < 3000, 'open streams do not hold the stop');
  assert.equal(head.live.clientCount, 0);
});

test('a client that stops reading is dropped once its socket buffer is full', async (t) => {
  const store = Store.open(':memory:');
  t.after(() => store.close());
  const feed = new LiveFeed({ store, log: silentLogger, pollMs: 20, batch: 200, maxBufferedBytes: 64 * 1024 });
  const port = Number(new URL(await feedServer(t, feed)).port);
  const sock = connect(port, '127.0.0.1');
  t.after(() => sock.destroy());
  sock.write('GET /ui/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n');
  sock.pause();
  const deadline = Date.now() + 5000;
  while (feed.clientCount === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.equal(feed.clientCount, 1);
  const detail = { pad: 'x'.repeat(4000) };
  while (feed.dropped === 0 && Date.now() < deadline + 20_000) {
    store.db.transaction(() => {
      for (let i = 0; i < 200; i++) store.events.record({ event: 'file', detail });
    })();
    await new Promise((r) => setTimeout(r, 25));
  }
  assert.equal(feed.dropped, 1);
  assert.equal(feed.clientCount, 0);
});


test('a page carries the feed position it was rendered at, and its stream replays what came between', async (t) => {
  const { url, token, head } = await startHeadNode(t, tempDir(t));
  const mac = parseMac('52:54:00:aa:00:03')!;
  const { node } = head.store.nodes.discover({ mac });
  head.store.events.record({ event: 'dhcp_discover', nodeId: node.id, mac });
  const cookie = (await dashboardLogin(url, token)).cookie;
  const deadline = Date.now() + 5000;
  while (head.live.sentUpTo < head.store.events.lastId() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const rendered = await (await fetch(`${url}/ui/nodes/${node.id}`, { headers: { cookie, accept: 'text/html' } })).text();
  const since = /<meta name="fb-live-since" content="(\d+)">/.exec(rendered)?.[1];
  assert.equal(since, String(head.store.events.lastId()));
  // The node's boot goes on before the browser opens the stream; the feed sends it to nobody.
  head.store.events.record({ event: 'dhcp_offer', nodeId: node.id, mac });
  head.store.events.record({ event: 'dhcp_request', nodeId: node.id, mac });
  await new Promise((r) => setTimeout(r, 700));
  assert.equal(head.live.sentUpTo, head.store.events.lastId());
  const abort = new AbortController();
  const res = await fetch(`${url}/ui/events?since=${since}`, { headers: { cookie }, signal: abort.signal });
  const sse = new SseReader(res.body!, abort);
  t.after(() => sse.close());
  const a = await sse.until((m) => m.event === 'boot');
  const b = await sse.until((m) => m.event === 'boot');
  assert.deepEqual([(a.data as { event: string }).event, (b.data as { event: string }).event], ['dhcp_offer', 'dhcp_request']);
  for (const path of ['/', '/ui/rollouts', '/ui/platforms', '/ui/headnode']) {
    const page = await (await fetch(`${url}${path}`, { headers: { cookie, accept: 'text/html' } })).text();
    assert.match(page, /<meta name="fb-live-since" content="\d+">/, path);
    // The head node page lists the boot slots with the other counters, patched live like them.
    if (path === '/ui/headnode') assert.match(page, /<td data-counter="bootSlots\.waiting">0<\/td>/);
  }
});

test('a feed started on an existing journal replays from the journal, and a client too far behind is told to resync', async (t) => {
  const store = Store.open(':memory:');
  t.after(() => store.close());
  store.db.transaction(() => {
    for (let i = 0; i < 100; i++) store.events.record({ event: 'file', detail: { n: i } });
  })();
  const feed = new LiveFeed({ store, log: silentLogger, pollMs: 20 });
  const url = await feedServer(t, feed);
  // A browser that was reading the previous head node process reconnects: its events are not in this feed's buffer.
  const near = await open(url, '', '90');
  t.after(() => near.close());
  const first = await near.until((m) => m.event === 'boot');
  assert.equal(first.id, '91');
  const last = await near.until((m) => m.id === '100');
  assert.equal((last.data as { detail: { n: number } }).detail.n, 99);

  store.db.transaction(() => {
    for (let i = 0; i < 2100; i++) store.events.record({ event: 'file', detail: { n: i } });
  })();
  const deadline = Date.now() + 10_000;
  while (feed.sentUpTo < store.events.lastId() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const far = await open(url, '', '50');
  t.after(() => far.close());
  const resync = await far.until((m) => m.event === 'resync' || m.event === 'boot');
  assert.equal(resync.event, 'resync');
  assert.deepEqual(resync.data, { from: 50, upTo: store.events.lastId() });
});

test('rollout changes reach the stream as rollout events', async (t) => {
  const store = Store.open(':memory:');
  t.after(() => store.close());
  const feed = new LiveFeed({ store, log: silentLogger, pollMs: 20, rolloutPollMs: 50 });
  const url = await feedServer(t, feed);
  const sse = await open(url, '');
  t.after(() => sse.close());
  await new Promise((r) => setTimeout(r, 50));
  const r = store.rollouts.create(sampleRollout(store.now()));
  const created = await sse.until((m) => m.event === 'rollout');
  assert.deepEqual(created.data, { id: r.id, state: 'running' });
  assert.equal(store.rollouts.updateRollout(r.id, 'running', { state: 'paused', at: store.now(), reason: 'paused by an operator' }), true);
  const paused = await sse.until((m) => m.event === 'rollout' && (m.data as { state: string }).state === 'paused');
  assert.equal((paused.data as { id: number }).id, r.id);
});
