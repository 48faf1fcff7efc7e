import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseMac, type Mac } from '../src/mac.ts';
import { setupNode } from '../src/nodeconfig/lifecycle.ts';
import { HeadNode } from '../src/headnode.ts';
import { createLogger } from '../src/log.ts';
import { currentNodeToken, nodeKeysIn, rootPassword } from '../src/nodeconfig/secrets.ts';
import { startHeadNode, tempDir, testConfig, type RunningHeadNode } from './fixtures.ts';
import { checkinReport } from './node-fixtures.ts';

const macA = parseMac('52:54:00:aa:00:01')!;
const macB = parseMac('52:54:00:bb:00:01')!;

const report = checkinReport;

const network = (mac: Mac, host: string, ip?: string): Record<string, unknown> => ({
  hostname: host,
  dnsDomain: 'lab.example',
  resolvers: ['10.99.0.1'],
  nics: [{ mac, tags: ['admin'] }],
  interfaces: ip ? [{ tag: 'admin', ip, netmask: '255.0.0.0' }] : [],
});

async function post(h: RunningHeadNode, body: unknown, token?: string): Promise<Response> {
  return fetch(`${h.url}/api/v1/nodes/checkin`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

test('a malformed check-in is refused with 400 naming the field, and the store is untouched', async (t) => {
  const dir = tempDir(t);
  const h = await startHeadNode(t, dir);
  const before = h.head.store.db.prepare('SELECT (SELECT count(*) FROM nodes) AS n, (SELECT count(*) FROM boot_events) AS e, (SELECT count(*) FROM nics) AS c').get();
  const cases: [unknown, RegExp][] = [
    [report(macA, { nics: [{ mac: 'zz:zz', name: 'eth0', ip: null }] }), /nics\.0\.mac/],
    [report(macA, { ramBytes: -1 }), /ramBytes/],
    [report(macA, { disks: [{ name: 'vda', sizeBytes: 'big', ssd: false }] }), /disks\.0\.sizeBytes/],
    [report(macA, { modules: { 'networking.json': 'not-a-sha1' } }), /modules\.networking\.json/],
    [report(macA, { cpu: undefined }), /cpu/],
    [report(macA, { surprise: 1 }), /surprise/],
    ['{"nics": [', /JSON|Unexpected|Expected/i],
  ];
  for (const [body, field] of cases) {
    const res = await post(h, body);
    assert.equal(res.status, 400, JSON.stringify(body));
    const err = ((await res.json()) as { error: { code: string; message: string } }).error;
    assert.equal(err.code, 'bad_request');
    assert.match(err.message, field);
  }
  const after = h.head.store.db.prepare('SELECT (SELECT count(*) FROM nodes) AS n, (SELECT count(*) FROM boot_events) AS e, (SELECT count(*) FROM nics) AS c').get();
  assert.deepEqual(after, before);
});

test('first check-in registers a machine as discovered; after setup only its token or its own address is accepted', async (t) => {
  const dir = tempDir(t);
  const h = await startHeadNode(t, dir);
  const first = await post(h, report(macA));
  assert.equal(first.status, 201);
  const created = ((await first.json()) as { node: { id: number; state: string } }).node;
  assert.equal(created.state, 'discovered');
  const store = h.head.store;
  let node = store.nodes.get(created.id)!;
  assert.equal(node.currentPlatform, 'linux-test');
  assert.equal(node.lastBoot, 1_790_000_000_000);
  assert.ok(node.lastSeen !== null);
  assert.equal(store.events.timeline(node.id).filter((e) => e.event === 'checkin').length, 1);

  const keys = nodeKeysIn(h.head.config.dataDir);
  node = setupNode(store, keys, node, { network: network(macA, 'cn-a') });
  assert.equal(node.state, 'setting_up');
  const token = currentNodeToken(keys, node)!;
  // Once configured, a check-in without a token from an address that is not the node's is refused: loopback is not trusted.
  const anon = await post(h, report(macA));
  assert.equal(anon.status, 403);
  const wrong = await post(h, report(macA), 'not-the-token');
  assert.equal(wrong.status, 403);
  const ok = await post(h, report(macA, { node: String(node.id) }), token);
  assert.equal(ok.status, 200);
  assert.equal(((await ok.json()) as { node: { state: string } }).node.state, 'running');
  // The token is never written to the store in clear.
  const raw = JSON.stringify(store.db.prepare('SELECT * FROM nodes').all()) + JSON.stringify(store.db.prepare('SELECT * FROM boot_events').all());
  assert.ok(!raw.includes(token));
});

test('a node reads only its own config modules: another node\'s token or address gets 403', async (t) => {
  const dir = tempDir(t);
  const h = await startHeadNode(t, dir);
  const store = h.head.store;
  const keys = nodeKeysIn(h.head.config.dataDir);
  // Node A holds 127.0.0.1 as its static admin address, so loopback requests are node A's.
  const a = setupNode(store, keys, store.nodes.discover({ mac: macA }).node, { network: network(macA, 'cn-a', '127.0.0.1') });
  const b = setupNode(store, keys, store.nodes.discover({ mac: macB }).node, { network: network(macB, 'cn-b', '10.99.0.22') });
  const tokenA = currentNodeToken(keys, a)!;
  const tokenB = currentNodeToken(keys, b)!;

  const own = await fetch(`${h.url}/nodes/${macA}/networking.json`);
  assert.equal(own.status, 200);
  const text = await own.text();
  const hash = await (await fetch(`${h.url}/nodes/${macA}/networking.json.hash`)).text();
  const { createHash } = await import('node:crypto');
  assert.equal(hash, createHash('sha1').update(text).digest('hex'));

  // By address: loopback is node A, so B's config is refused.
  for (const file of ['networking.json', 'networking.json.hash', 'answers.json', 'node.json']) {
    const res = await fetch(`${h.url}/nodes/${macB}/${file}`);
    assert.equal(res.status, 403, file);
  }
  // By token: A's token does not open B's config, B's does (query or bearer).
  assert.equal((await fetch(`${h.url}/nodes/${macB}/node.json?token=${tokenA}`)).status, 403);
  assert.equal((await fetch(`${h.url}/nodes/${macB}/node.json`, { headers: { authorization: `Bearer ${tokenA}` } })).status, 403);
  const withB = await fetch(`${h.url}/nodes/${macB}/answers.json?token=${encodeURIComponent(tokenB)}`);
  assert.equal(withB.status, 200);
  const answers = (await withB.json()) as Record<string, unknown>;
  assert.equal(answers.hostname, 'cn-b');
  assert.equal(typeof answers.root_password, 'string');
  // A check-in claiming B's MAC from A's address is refused too.
  assert.equal((await post(h, report(macB))).status, 403);
  // A's own address still proves A when its token is stale (setup re-run while it runs).
  assert.equal((await post(h, report(macA), 'stale-token-from-an-earlier-setup')).status, 200);
  assert.equal(store.events.timeline(a.id).filter((e) => e.event === 'checkin').at(-1)?.detail.auth, 'address');
  // Retired nodes lose their token.
  store.nodes.update(b.id, { state: 'retired', tokenHash: null });
  assert.equal((await fetch(`${h.url}/nodes/${macB}/node.json?token=${encodeURIComponent(tokenB)}`)).status, 403);
});

test('tokens and root passwords never reach the log', async (t) => {
  const dir = tempDir(t);
  const lines: string[] = [];
  const log = createLogger('debug', { write: (s: string) => void lines.push(s) });
  const head = new HeadNode(testConfig(dir), { log });
  await head.start();
  t.after(() => head.stop());
  const url = `http://127.0.0.1:${head.http.address()!.port}`;
  const keys = nodeKeysIn(head.config.dataDir);
  const node = setupNode(head.store, keys, head.store.nodes.discover({ mac: macA }).node, { network: network(macA, 'cn-a') });
  const token = currentNodeToken(keys, node)!;
  const password = rootPassword(keys, node)!;
  const answers = (await (await fetch(`${url}/nodes/${macA}/answers.json?token=${encodeURIComponent(token)}`)).json()) as { root_password: string };
  assert.equal(answers.root_password, password);
  assert.equal((await fetch(`${url}/nodes/${macB}/answers.json?token=${encodeURIComponent(token)}`)).status, 403);
  const h: RunningHeadNode = { head, url, token: head.apiToken };
  assert.equal((await post(h, report(macA), token)).status, 200);
  assert.equal((await post(h, report(macA), `${token}x`)).status, 403);
  const text = lines.join('');
  assert.match(text, /"event":"checkin"/);
  assert.match(text, /"event":"config_module"/);
  assert.ok(!text.includes(token), 'token in log');
  assert.ok(!text.includes(password), 'root password in log');
});
