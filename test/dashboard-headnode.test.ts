// The head node page's live parts on the server side: the counters carry the keys headnode.js
// patches, the rate charts' frames carry the counters they start from, uPlot's browser build is
// served from the npm package, and the boots-in-flight fragment follows the registry.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import { parseMac } from '../src/mac.ts';
import { importLinuxPlatform, readLinuxManifest } from '../src/platforms/import.ts';
import { dashboardLogin } from './dashboard-fixtures.ts';
import { startHeadNode, tempDir } from './fixtures.ts';
import { writeLinuxPlatform } from './platform-fixtures.ts';

const requireHere = createRequire(import.meta.url);

test('the head node page carries counter keys and a seeded chart frame; uPlot is served from its package; the boots-in-flight fragment follows the registry', async (t) => {
  const h = await startHeadNode(t, tempDir(t), { tftp: { enabled: true, listen: '127.0.0.1', port: 0 } });
  const { cookie } = await dashboardLogin(h.url, h.token);
  const get = (path: string): Promise<Response> => fetch(`${h.url}${path}`, { headers: { cookie } });

  const page = await (await get('/ui/headnode')).text();
  assert.match(page, /<td data-counter="tftp\.requests">0<\/td>/);
  assert.match(page, /<td data-counter="store\.indexedEvents">\d+<\/td>/);
  assert.ok(!/data-counter="dhcp\./.test(page), 'DHCP is off: no counters to patch');
  const seed = /<section id="rates" class="rates" data-seed="([^"]+)">/.exec(page)?.[1];
  assert.ok(seed, 'the charts are seeded');
  const parsed = JSON.parse(seed.replace(/&quot;/g, '"').replace(/&amp;/g, '&')) as { at: string; tftp: { requests: number }; dhcp: null };
  assert.equal(parsed.tftp.requests, 0);
  assert.equal(parsed.dhcp, null);
  assert.ok(Number.isFinite(Date.parse(parsed.at)));
  for (const id of ['chart-packets', 'chart-bytes', 'chart-inflight']) assert.match(page, new RegExp(`<div id="${id}"></div>`));
  // uPlot before the page script, both deferred, so headnode.js finds window.uPlot.
  assert.match(page, /<script src="\/ui\/assets\/uplot\/uPlot\.iife\.min\.js" defer><\/script>\s*<script src="\/ui\/assets\/headnode\.js" defer><\/script>/);

  const js = await get('/ui/assets/uplot/uPlot.iife.min.js');
  assert.equal(js.status, 200);
  assert.match(js.headers.get('content-type') ?? '', /javascript/);
  assert.equal(await js.text(), readFileSync(requireHere.resolve('uplot/dist/uPlot.iife.min.js'), 'utf8'));
  const css = await get('/ui/assets/uplot/uPlot.min.css');
  assert.match(css.headers.get('content-type') ?? '', /text\/css/);
  assert.equal(await css.text(), readFileSync(requireHere.resolve('uplot/dist/uPlot.min.css'), 'utf8'));
  for (const other of ['uPlot.cjs.js', 'constructor', '..%2Fpackage.json']) assert.equal((await get(`/ui/assets/uplot/${other}`)).status, 404, other);
  assert.equal((await get('/ui/assets/headnode.js')).status, 200);
  assert.equal((await fetch(`${h.url}/ui/headnode/inflight`, { redirect: 'manual' })).status, 401, 'the fragment needs a session');

  assert.match(await (await get('/ui/headnode/inflight')).text(), /^<p class="empty">No node is setting up or rebooting\.<\/p>$/);
  const { node } = h.head.store.nodes.discover({ mac: parseMac('52:54:00:cc:02:01')! });
  const since = Date.now() - 7000;
  h.head.store.nodes.update(node.id, { hostname: 'vm-<1>', state: 'rebooting', lastBoot: since });
  const busy = await (await get('/ui/headnode/inflight')).text();
  assert.match(busy, new RegExp(`^<table class="inflight">[\\s\\S]*<tr data-node="${node.id}"><td><a href="/ui/nodes/${node.id}">vm-&lt;1&gt;</a></td><td><span class="badge state-rebooting">rebooting</span></td>\\s*<td data-since="${since}">[78] s</td></tr>`));
  h.head.store.nodes.update(node.id, { state: 'running' });
  assert.match(await (await get('/ui/headnode/inflight')).text(), /No node is setting up or rebooting/);
});

test('the counters carry the platform bytes HTTP sent, and the head node page shows them for headnode.js to chart', async (t) => {
  const dir = tempDir(t);
  const h = await startHeadNode(t, dir);
  const { cookie } = await dashboardLogin(h.url, h.token);
  assert.deepEqual(h.head.counters().http, { platformBytesSent: 0 });
  const m = readLinuxManifest(writeLinuxPlatform(dir, { stamp: 'lab-6.1' }));
  const p = await importLinuxPlatform(m.manifest, m.dir, { store: h.head.store, platformImagesDir: h.head.config.platformImagesDir });
  const kernel = p.files.find((f) => f.role === 'kernel')!;
  const res = await fetch(`${h.url}/os/lab-6.1/${kernel.path}`);
  assert.equal(res.status, 200);
  assert.equal((await res.arrayBuffer()).byteLength, kernel.size);
  // Counted when the response has finished on the server, which may be just after the body arrived.
  const deadline = Date.now() + 10_000;
  while (h.head.counters().http?.platformBytesSent !== kernel.size && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(h.head.counters().http, { platformBytesSent: kernel.size });
  const page = await (await fetch(`${h.url}/ui/headnode`, { headers: { cookie } })).text();
  assert.match(page, new RegExp(`<h2>HTTP <span class="badge state-running">on</span></h2>\\s*<table class="counters" data-service="HTTP"><tbody><tr><th>platformBytesSent</th><td data-counter="http.platformBytesSent">${kernel.size}</td>`));
});
