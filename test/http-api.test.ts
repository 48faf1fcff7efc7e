import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseMac } from '../src/mac.ts';
import { startHeadNode, tempDir } from './fixtures.ts';

test('the admin API refuses requests without the right bearer token, with a JSON error', async (t) => {
  const { url } = await startHeadNode(t, tempDir(t));
  for (const auth of [undefined, 'Bearer wrong-token-wrong-token', 'Basic abc']) {
    const res = await fetch(`${url}/api/v1/nodes`, { headers: auth ? { authorization: auth } : {} });
    assert.equal(res.status, 401);
    assert.match(res.headers.get('content-type') ?? '', /application\/json/);
    const body = (await res.json()) as { error: { code: string } };
    assert.equal(body.error.code, 'unauthorized');
  }
});

test('the admin API lists nodes and shows one by MAC, UUID or id', async (t) => {
  const { url, token, head } = await startHeadNode(t, tempDir(t));
  const mac = parseMac('52:54:00:12:34:56')!;
  const { node } = head.store.nodes.discover({ mac, uuid: '6b4a3e5c-0d3f-4f0e-9d7a-2f6c1b2a3c4d' });
  const auth = { authorization: `Bearer ${token}` };
  const list = (await (await fetch(`${url}/api/v1/nodes`, { headers: auth })).json()) as { nodes: { id: number; nics: { mac: string }[] }[] };
  assert.equal(list.nodes.length, 1);
  assert.equal(list.nodes[0]!.nics[0]!.mac, mac);
  for (const ref of [mac, '6b4a3e5c-0d3f-4f0e-9d7a-2f6c1b2a3c4d', String(node.id)]) {
    const res = await fetch(`${url}/api/v1/nodes/${encodeURIComponent(ref)}`, { headers: auth });
    assert.equal(res.status, 200, ref);
    assert.equal(((await res.json()) as { node: { id: number } }).node.id, node.id);
  }
  const missing = await fetch(`${url}/api/v1/nodes/nope`, { headers: auth });
  assert.equal(missing.status, 404);
  assert.equal(((await missing.json()) as { error: { code: string } }).error.code, 'not_found');
});

test('stage1.ipxe chains to the per-node script on the address the node used', async (t) => {
  const { url } = await startHeadNode(t, tempDir(t));
  const text = await (await fetch(`${url}/boot/stage1.ipxe`)).text();
  assert.ok(text.includes(`set fleetboot ${url}\n`), text);
  assert.ok(text.includes('chain --autofree ${fleetboot}/boot/node.ipxe?mac=${net0/mac}&uuid=${uuid}'), text);
});
