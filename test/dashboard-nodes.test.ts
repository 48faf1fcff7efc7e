import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HeadNode } from '../src/headnode.ts';
import { silentLogger } from '../src/log.ts';
import { parseMac, type Mac } from '../src/mac.ts';
import { importLinuxPlatform, readLinuxManifest } from '../src/platforms/import.ts';
import type { DriverFactory } from '../src/rollout/node-power.ts';
import type { PowerDriver } from '../src/rollout/power.ts';
import { startHeadNode, tempDir, testConfig } from './fixtures.ts';
import { writeLinuxPlatform } from './platform-fixtures.ts';
import { dashboardLogin } from './dashboard-fixtures.ts';

const macOf = (i: number): Mac => parseMac(`52:54:01:${((i >> 16) & 255).toString(16).padStart(2, '0')}:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`)!;

test('the nodes page renders 5,000 nodes paged, fast, with filter, search and counts', async (t) => {
  const dir = tempDir(t);
  const { url, token, head } = await startHeadNode(t, dir);
  const store = head.store;
  for (const stamp of ['linux-a', 'linux-b']) {
    const m = readLinuxManifest(writeLinuxPlatform(dir, { stamp }));
    await importLinuxPlatform(m.manifest, m.dir, { store, platformImagesDir: head.config.platformImagesDir });
  }
  store.db.transaction(() => {
    for (let i = 0; i < 5000; i++) {
      const n = store.nodes.create({ nics: [{ mac: macOf(i), isAdmin: true, ip: `10.9.${i >> 8}.${i & 255}` }], hostname: `node-${String(i).padStart(4, '0')}`, state: i % 10 === 0 ? 'failed' : 'running' });
      store.nodes.update(n.id, { traits: { rack: `r${i % 40}` }, bootPlatform: 'linux-b', currentPlatform: i === 7 ? 'linux-a' : 'linux-b', lastSeen: Date.now() - 60_000 });
    }
  })();
  const { cookie } = await dashboardLogin(url, token);
  const started = performance.now();
  const res = await fetch(`${url}/`, { headers: { cookie } });
  const body = await res.text();
  const took = performance.now() - started;
  assert.equal(res.status, 200);
  assert.ok(took < 1500, `GET / took ${Math.round(took)} ms with 5,000 nodes`);
  assert.ok(body.length < 400_000, `page is ${body.length} bytes`);
  assert.equal((body.match(/<tr data-node=/g) ?? []).length, 100);
  assert.match(body, /all 5000/);
  assert.match(body, /state-failed">failed<\/span> 500/);
  assert.match(body, /page 1 of 50/);
  // Drift: assigned linux-b, running linux-a.
  assert.match(body, /drift-flag" title="running linux-a">≠ linux-a/);

  const failed = await (await fetch(`${url}/?state=failed&page=2`, { headers: { cookie } })).text();
  assert.match(failed, /500 nodes · page 2 of 5/);
  assert.ok(!/state-running">running<\/span><\/td>/.test(failed));
  const byMac = await (await fetch(`${url}/?q=${encodeURIComponent(macOf(1234))}`, { headers: { cookie } })).text();
  assert.equal((byMac.match(/<tr data-node=/g) ?? []).length, 1);
  assert.match(byMac, /node-1234/);
  const byTrait = await (await fetch(`${url}/?q=rack%3Dr39&sort=hostname`, { headers: { cookie } })).text();
  assert.match(byTrait, /125 nodes/);
  const byIp = await (await fetch(`${url}/?q=10.9.4.210`, { headers: { cookie } })).text();
  assert.match(byIp, /node-1234/);
  // Hostnames are escaped, never markup.
  store.nodes.update(1, { hostname: '<script>x</script>' });
  const escaped = await (await fetch(`${url}/?q=1&sort=id`, { headers: { cookie } })).text();
  assert.ok(!escaped.includes('<script>x</script>'));
  assert.ok(escaped.includes('&lt;script&gt;x&lt;/script&gt;'));
});

test('node page actions call the domain operations: power cycle, set platform, retire', async (t) => {
  const dir = tempDir(t);
  const cycles: string[] = [];
  const driverFor: DriverFactory = (spec) => {
    const driver: PowerDriver = {
      kind: 'fake',
      powerCycle: async () => void cycles.push(String((spec as { qmpSocket: string }).qmpSocket)),
      powerOff: async () => undefined,
      powerOn: async () => undefined,
      status: async () => 'on',
    };
    return driver;
  };
  const head = new HeadNode(testConfig(dir), { log: silentLogger, powerDriverFor: driverFor });
  await head.start();
  t.after(() => head.stop());
  const url = `http://127.0.0.1:${head.http.address()!.port}`;
  const m = readLinuxManifest(writeLinuxPlatform(dir, { stamp: 'linux-test-b' }));
  await importLinuxPlatform(m.manifest, m.dir, { store: head.store, platformImagesDir: head.config.platformImagesDir });
  const mac = parseMac('52:54:00:bb:00:01')!;
  const { node } = head.store.nodes.discover({ mac });
  head.store.nodes.update(node.id, { power: { kind: 'qemu', qmpSocket: '/fake/vm1' }, sysinfo: { 'Product': 'Lab VM' } });
  head.store.events.record({ event: 'dhcp_discover', mac });
  const { cookie, csrf } = await dashboardLogin(url, head.apiToken);
  const nodePage = await (await fetch(`${url}/ui/nodes/${node.id}`, { headers: { cookie } })).text();
  assert.match(nodePage, /Lab VM/);
  assert.match(nodePage, /<option value="linux-test-b"/);
  assert.match(nodePage, /<td>dhcp_discover<\/td>/);
  assert.match(nodePage, /data-confirm="Power-cycle this node\?"/);
  assert.equal((await fetch(`${url}/ui/nodes/99999`, { headers: { cookie } })).status, 404);

  const post = (action: string, fields: Record<string, string>): Promise<Response> =>
    fetch(`${url}/ui/nodes/${node.id}/${action}`, { method: 'POST', headers: { cookie, 'content-type': 'application/x-www-form-urlencoded', origin: url }, body: new URLSearchParams({ _csrf: csrf, ...fields }).toString(), redirect: 'manual' });

  const cycled = await post('power', { action: 'cycle' });
  assert.equal(cycled.status, 303);
  assert.deepEqual(cycles, ['/fake/vm1']);
  assert.ok(head.store.events.timeline(node.id).some((e) => e.event === 'power'), 'powerNode recorded its power event');

  const assigned = await post('platform', { stamp: 'linux-test-b' });
  assert.equal(assigned.status, 303);
  assert.equal(head.store.nodes.get(node.id)!.bootPlatform, 'linux-test-b');
  const unknown = await post('platform', { stamp: 'no-such-platform' });
  assert.match(decodeURIComponent(unknown.headers.get('location') ?? ''), /no-such-platform/);
  assert.equal(head.store.nodes.get(node.id)!.bootPlatform, 'linux-test-b');

  const retired = await post('retire', {});
  assert.equal(retired.status, 303);
  assert.equal(head.store.nodes.get(node.id)!.state, 'retired');
});
