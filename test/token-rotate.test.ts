// `fleetboot token rotate`, run as an operator runs it beside a running head node: the new
// secret is written atomically with mode 0600, the old one stops working at once, and the
// running head node uses the new one without a restart.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseMac } from '../src/mac.ts';
import { setupNode } from '../src/nodeconfig/lifecycle.ts';
import { writeTokenFile } from '../src/config/token.ts';
import { currentNodeToken, newSalt, nodeKeysIn, settleNodeKey, tokenHashFor, tokenMatchesNode } from '../src/nodeconfig/secrets.ts';
import { importLinuxPlatform, readLinuxManifest } from '../src/platforms/import.ts';
import { Store } from '../src/store/store.ts';
import { runCli, startHeadNode, tempDir, type RunningHeadNode } from './fixtures.ts';
import { writeLinuxPlatform } from './platform-fixtures.ts';

const get = (h: RunningHeadNode, token: string): Promise<number> => fetch(`${h.url}/api/v1/nodes`, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.status);

test('token rotate api: the old token gets 401 from the running head node, the new one works; the file is 0600', async (t) => {
  const dir = tempDir(t);
  const h = await startHeadNode(t, dir);
  writeFileSync(join(dir, 'fleetboot.json'), JSON.stringify({ log: { level: 'silent' } }));
  const file = join(dir, 'var', 'api-token');
  const old = readFileSync(file, 'utf8').trim();
  assert.equal(await get(h, old), 200);

  const r = await runCli(['token', 'rotate', 'api'], dir);
  assert.equal(r.exitCode, 0, String(r.stderr));
  assert.match(String(r.stdout), /^new API token in .*var\/api-token \(mode 0600\); the old one no longer works\.\nA running head node uses the new one from its next request/);
  const fresh = readFileSync(file, 'utf8').trim();
  assert.notEqual(fresh, old);
  assert.ok(fresh.length >= 32);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.deepEqual(readdirSync(join(dir, 'var')).filter((f) => f.includes('.tmp')), [], 'no temporary file left');

  assert.equal(await get(h, old), 401);
  assert.equal(await get(h, fresh), 200);
  const bad = await runCli(['token', 'rotate', 'root'], dir);
  assert.equal(bad.exitCode, 2);
  assert.match(String(bad.stderr), /^fleetboot: token rotate: expected api or node-key, got "root"/);
});

test('token rotate node-key: node tokens are re-issued under the new key; the old token is refused, the new one is in the next boot script and works', async (t) => {
  const dir = tempDir(t);
  const h = await startHeadNode(t, dir);
  writeFileSync(join(dir, 'fleetboot.json'), JSON.stringify({ log: { level: 'silent' } }));
  const store = h.head.store;
  const m = readLinuxManifest(writeLinuxPlatform(join(dir, 'src'), { stamp: 'lab-6.1' }));
  await importLinuxPlatform(m.manifest, m.dir, { store, platformImagesDir: h.head.config.platformImagesDir });
  const mac = parseMac('52:54:00:43:00:01')!;
  const dataDir = join(dir, 'var');
  const node = setupNode(store, nodeKeysIn(dataDir), store.nodes.discover({ mac }).node, {
    network: { hostname: 'cn1', dnsDomain: 'lab.example', resolvers: ['10.43.0.1'], nics: [{ mac, tags: ['admin'] }], interfaces: [{ tag: 'admin', ip: '10.43.0.11', netmask: '255.255.255.0' }] },
  });
  const bootToken = async (): Promise<string | undefined> => /fleetboot_token=(\S+)/.exec(await (await fetch(`${h.url}/boot/node.ipxe?mac=${mac}&uuid=&serial=&arch=x86_64`)).text())?.[1];
  const checkin = (token: string): Promise<number> =>
    fetch(`${h.url}/api/v1/nodes/checkin`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ uuid: null, nics: [{ mac, name: 'net0', ip: '10.43.0.11' }], cpu: { model: 'QEMU', count: 1 }, ramBytes: 1 << 29, platform: 'lab-6.1', bootTime: 1_790_000_000 }),
    }).then((r) => r.status);
  const oldToken = currentNodeToken(nodeKeysIn(dataDir), node)!;
  assert.equal(await bootToken(), oldToken);
  assert.equal(await checkin(oldToken), 200);
  const oldKey = readFileSync(join(dataDir, 'node-key'), 'utf8');

  const r = await runCli(['token', 'rotate', 'node-key', '--json'], dir);
  assert.equal(r.exitCode, 0, String(r.stderr));
  assert.deepEqual(JSON.parse(String(r.stdout)), { rotated: 'node-key', file: join(dataDir, 'node-key'), reissuedNodeTokens: 1 });
  assert.notEqual(readFileSync(join(dataDir, 'node-key'), 'utf8'), oldKey);
  assert.equal(statSync(join(dataDir, 'node-key')).mode & 0o777, 0o600);
  assert.ok(!existsSync(join(dataDir, 'node-key.new')));

  // The request comes from 127.0.0.1, not the node's address: only a token can admit it.
  assert.equal(await checkin(oldToken), 403);
  const newToken = await bootToken();
  assert.ok(newToken && newToken !== oldToken, 'the running head node hands out a new token at the next boot');
  assert.equal(newToken, currentNodeToken(nodeKeysIn(dataDir), store.nodes.get(node.id)!));
  assert.equal(await checkin(newToken), 200);
});

test('a node-key rotation cut short is finished when the tokens were re-issued, and dropped when they were not', async (t) => {
  const dir = tempDir(t);
  const dataDir = join(dir, 'var');
  const store = Store.open(Store.fileIn(dataDir));
  t.after(() => store.close());
  const mac = parseMac('52:54:00:43:01:01')!;
  const node = setupNode(store, nodeKeysIn(dataDir), store.nodes.discover({ mac }).node, { network: { hostname: 'cn1', nics: [{ mac, tags: ['admin'] }] } });
  const keyFile = join(dataDir, 'node-key');
  const oldKey = readFileSync(keyFile, 'utf8');

  // Killed after writing node-key.new, before the transaction: the old key stays.
  writeTokenFile(`${keyFile}.new`);
  assert.equal(settleNodeKey(store, dataDir), 'dropped');
  assert.equal(readFileSync(keyFile, 'utf8'), oldKey);
  assert.ok(!existsSync(`${keyFile}.new`));
  assert.ok(tokenMatchesNode(currentNodeToken(nodeKeysIn(dataDir), node)!, store.nodes.get(node.id)!.tokenHash));

  // Killed after the transaction, before the rename: the new key goes into place.
  const pending = { key: writeTokenFile(`${keyFile}.new`) };
  store.nodes.update(node.id, { tokenHash: tokenHashFor(pending, node.id, newSalt()) });
  assert.equal(settleNodeKey(store, dataDir), 'finished');
  assert.equal(readFileSync(keyFile, 'utf8').trim(), pending.key);
  assert.ok(tokenMatchesNode(currentNodeToken(nodeKeysIn(dataDir), store.nodes.get(node.id)!)!, store.nodes.get(node.id)!.tokenHash));
});
