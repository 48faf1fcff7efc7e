// The operator side over HTTP (behind the bearer token): setup, set, retire, rendered config.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseMac } from '../src/mac.ts';
import { startHeadNode, tempDir } from './fixtures.ts';

const mac = parseMac('52:54:00:ee:00:01')!;

test('admin API: setup, set, retire and config need the bearer token; bad input is a 400 naming the field', async (t) => {
  const h = await startHeadNode(t, tempDir(t));
  const { node } = h.head.store.nodes.discover({ mac });
  const auth = { authorization: `Bearer ${h.token}`, 'content-type': 'application/json' };
  const call = (path: string, body?: unknown, headers: Record<string, string> = auth): Promise<Response> =>
    fetch(`${h.url}/api/v1/nodes/${node.id}/${path}`, body === undefined ? { headers } : { method: 'POST', headers, body: JSON.stringify(body) });
  const network = { hostname: 'cn3', nics: [{ mac, tags: ['admin'] }], interfaces: [{ tag: 'admin', ip: '10.99.0.23', netmask: '255.255.255.0' }] };

  assert.equal((await call('setup', { network }, { 'content-type': 'application/json' })).status, 401);
  const bad = await call('setup', { network: { ...network, interfaces: [{ tag: 'admin', ip: '10.99.0.23' }] } });
  assert.equal(bad.status, 400);
  assert.match(((await bad.json()) as { error: { message: string } }).error.message, /network\.interfaces\.0\.netmask/);
  const badZpool = await call('setup', { network, zpool: 'raidz9' });
  assert.equal(badZpool.status, 400);
  assert.match(((await badZpool.json()) as { error: { message: string } }).error.message, /zpool\.class/);
  assert.equal(h.head.store.nodes.get(node.id)!.networkConfig, null, 'nothing written by refused setups');

  // First boot builds only disklayout's default (smartos_prompt_config.sh promptpool).
  const explicit = await call('setup', { network, zpool: { class: 'mirror' } });
  assert.equal(explicit.status, 400);
  assert.match(((await explicit.json()) as { error: { message: string } }).error.message, /^zpool\.class: SmartOS first-boot setup builds only disklayout's default pool/);
  const ok = await call('setup', { network, zpool: { class: 'default' } });
  assert.equal(ok.status, 200);
  const set = (await (await call('set', { set: ['traits.role=compute'] })).json()) as { node: { state: string; traits: Record<string, string> } };
  assert.deepEqual([set.node.state, set.node.traits], ['setting_up', { role: 'compute' }]);
  const config = (await (await call('config')).json()) as { bootArgs: Record<string, string>; modules: { path: string }[]; zpoolError: string };
  assert.equal(config.bootArgs.admin_nic, mac);
  assert.match(config.zpoolError, /no disks reported yet/);
  assert.equal(config.modules.length, 4);
  const retired = (await (await call('retire', {})).json()) as { node: { state: string } };
  assert.equal(retired.node.state, 'retired');
  assert.equal((await fetch(`${h.url}/api/v1/nodes/nope/retire`, { method: 'POST', headers: auth, body: '{}' })).status, 404);
});

test('the agent script is served with the head node URL as its fallback', async (t) => {
  const h = await startHeadNode(t, tempDir(t));
  const res = await fetch(`${h.url}/agent.sh`);
  assert.equal(res.status, 200);
  const text = await res.text();
  assert.match(text, /^#!\/bin\/sh\n/);
  assert.ok(text.includes(`DEFAULT_URL='${h.url}'`));
});
