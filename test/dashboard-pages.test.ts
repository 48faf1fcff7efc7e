import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseMac } from '../src/mac.ts';
import { importLinuxPlatform, readLinuxManifest } from '../src/platforms/import.ts';
import { startHeadNode, tempDir } from './fixtures.ts';
import { writeLinuxPlatform } from './platform-fixtures.ts';
import { dashboardLogin } from './dashboard-fixtures.ts';

test('the platforms page: empty registry, then platforms with the nodes that boot and run them', async (t) => {
  const dir = tempDir(t);
  const { url, token, head } = await startHeadNode(t, dir);
  const cookie = (await dashboardLogin(url, token)).cookie;
  assert.equal((await fetch(`${url}/ui/platforms`, { redirect: 'manual', headers: { accept: 'text/html' } })).status, 303);
  const empty = await (await fetch(`${url}/ui/platforms`, { headers: { cookie } })).text();
  assert.match(empty, /No platform is imported/);

  for (const stamp of ['linux-a', 'linux-b']) {
    const m = readLinuxManifest(writeLinuxPlatform(dir, { stamp }));
    await importLinuxPlatform(m.manifest, m.dir, { store: head.store, platformImagesDir: head.config.platformImagesDir });
  }
  head.store.platforms.setDefault('linux-b');
  for (let i = 0; i < 3; i++) {
    const { node } = head.store.nodes.discover({ mac: parseMac(`52:54:00:cc:00:0${i}`)! });
    head.store.nodes.update(node.id, { hostname: i === 0 ? '<b>x</b>' : `vm${i}`, bootPlatform: 'linux-b', currentPlatform: i === 2 ? 'linux-a' : 'linux-b' });
  }
  const body = await (await fetch(`${url}/ui/platforms`, { headers: { cookie } })).text();
  assert.equal((body.match(/<tr data-stamp=/g) ?? []).length, 2);
  assert.match(body, /<code>linux-b<\/code> <span class="badge default">default<\/span>/);
  assert.ok(!/<code>linux-a<\/code> <span class="badge default">/.test(body));
  // linux-b: three boot it next, two run it; linux-a: none boot it, one runs it.
  assert.match(body, /data-stamp="linux-b">[\s\S]*?<strong>3<\/strong>[\s\S]*?<strong>2<\/strong>/);
  assert.match(body, /data-stamp="linux-a">[\s\S]*?<span class="muted">0<\/span>[\s\S]*?<strong>1<\/strong>: <a href="\/ui\/nodes\/3">vm2<\/a>/);
  assert.ok(!body.includes('<b>x</b>'));
  assert.ok(body.includes('&lt;b&gt;x&lt;/b&gt;'));
});

test('the head node page: services with counters, boots in flight with how long, WAL size', async (t) => {
  const dir = tempDir(t);
  const { url, token, head } = await startHeadNode(t, dir);
  const cookie = (await dashboardLogin(url, token)).cookie;
  const quiet = await (await fetch(`${url}/ui/headnode`, { headers: { cookie } })).text();
  assert.match(quiet, /No node is setting up or rebooting/);
  assert.match(quiet, /Write-ahead log: <span id="wal-bytes">\d+<\/span> bytes/);
  assert.match(quiet, /<h2>Store <span class="badge state-running">on<\/span><\/h2>/);

  const { node } = head.store.nodes.discover({ mac: parseMac('52:54:00:cc:01:01')! });
  head.store.nodes.update(node.id, { hostname: 'booting-vm', state: 'setting_up', lastBoot: Date.now() - 12_000 });
  const busy = await (await fetch(`${url}/ui/headnode`, { headers: { cookie } })).text();
  assert.match(busy, /<a href="\/ui\/nodes\/\d+">booting-vm<\/a><\/td><td><span class="badge state-setting_up">setting_up<\/span><\/td>\s*<td data-since="\d+">1[2-4] s<\/td>/);
});
