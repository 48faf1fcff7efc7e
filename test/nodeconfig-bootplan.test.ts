// The node's config modules as its boot script lists them (through the
// boot plan): every module URL in the script answers for that node, and the hash module
// matches the bytes of networking.json.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { parseMac } from '../src/mac.ts';
import { setupNode } from '../src/nodeconfig/lifecycle.ts';
import { nodeKeysIn } from '../src/nodeconfig/secrets.ts';
import { startHeadNode, tempDir } from './fixtures.ts';

const mac = parseMac('52:54:00:ab:00:01')!;
const sha1 = (s: string): string => createHash('sha1').update(s).digest('hex');
const network = {
  hostname: 'cn8',
  nics: [{ mac, tags: ['admin'] }, { mac: '52:54:00:ab:00:02' }, { mac: '52:54:00:ab:00:03' }],
  aggregations: [{ name: 'aggr0', macs: ['52:54:00:ab:00:02', '52:54:00:ab:00:03'], tags: ['external'] }],
  interfaces: [{ tag: 'admin', ip: '10.99.0.28', netmask: '255.255.255.0' }],
};

for (const os of ['linux', 'smartos'] as const) {
  test(`a set-up node's ${os} boot script lists its config modules, and each URL serves that node`, async (t) => {
    const h = await startHeadNode(t, tempDir(t));
    const store = h.head.store;
    const stamp = os === 'linux' ? 'linux-test' : '20250101T000000Z';
    const files =
      os === 'linux'
        ? [{ path: 'vmlinuz', size: 1, role: 'kernel' as const, sha256: '0'.repeat(64) }, { path: 'initrd.img', size: 1, role: 'initrd' as const, sha256: '0'.repeat(64) }]
        : [
            { path: 'platform/i86pc/kernel/amd64/unix', size: 1, role: 'kernel' as const, sha256: '0'.repeat(64) },
            { path: 'platform/i86pc/amd64/boot_archive', size: 1, role: 'boot_archive' as const, sha256: '0'.repeat(64) },
            { path: 'platform/i86pc/amd64/boot_archive.hash', size: 1, role: 'boot_archive_hash' as const, sha256: '0'.repeat(64) },
          ];
    store.platforms.insert({ stamp, os, version: null, files, size: 2, kernelArgs: os === 'linux' ? 'quiet' : null, makeDefault: true }, () => {}, () => {});
    const node = setupNode(store, nodeKeysIn(h.head.config.dataDir), store.nodes.discover({ mac }).node, { network });

    const script = await (await fetch(`${h.url}/boot/node.ipxe?mac=${mac}&uuid=&serial=&arch=x86_64`)).text();
    const modules =
      os === 'linux'
        ? [...script.matchAll(/^initrd --name (\S+) (\S+\/nodes\/\S+)$/gm)].map((m) => ({ name: m[1]!, url: m[2]! }))
        : [...script.matchAll(/^module (\S+\/nodes\/\S+) type=(\w+) name=(\S+)$/gm)].map((m) => ({ name: m[2] === 'hash' ? `${m[3]!}.hash` : m[3]!, url: m[1]! }));
    assert.deepEqual(modules.map((m) => m.name), ['networking.json', 'networking.json.hash', 'answers.json', 'node.json'], script);
    assert.match(script, /fleetboot_token=[\w-]{20,}/);
    assert.match(script, new RegExp(`fleetboot_node=${node.id}\\b`));
    if (os === 'smartos') {
      assert.match(script, /aggr0_aggr="52:54:00:ab:00:02,52:54:00:ab:00:03"/);
      assert.match(script, /external_nic=aggr0/);
      assert.match(script, /admin_nic=52:54:00:ab:00:01/);
    }
    // Loopback is no node's address here: the token in each URL is what opens it.
    const bodies = new Map<string, string>();
    for (const m of modules) {
      const res = await fetch(m.url);
      assert.equal(res.status, 200, m.url);
      bodies.set(m.name, await res.text());
      assert.equal((await fetch(m.url.replace(/\?token=.*$/, ''))).status, 403);
    }
    assert.equal(bodies.get('networking.json.hash'), sha1(bodies.get('networking.json')!));
    assert.equal((JSON.parse(bodies.get('answers.json')!) as { hostname: string }).hostname, 'cn8');
  });
}

test('under full DHCP, a script asked for by another address carries no node token', async (t) => {
  const h = await startHeadNode(t, tempDir(t), {
    dhcp: { mode: 'full', listen: '127.0.0.1', port: 0, proxyPort: 0 },
    networks: [{ name: 'admin', subnet: '127.0.0.0/8', serverAddress: '127.0.0.1', range: { start: '127.0.0.100', end: '127.0.0.200' } }],
  });
  const store = h.head.store;
  store.platforms.insert(
    { stamp: 'linux-test', os: 'linux', version: null, files: [{ path: 'vmlinuz', size: 1, role: 'kernel' as const, sha256: '0'.repeat(64) }], size: 1, kernelArgs: null, makeDefault: true },
    () => {},
    () => {},
  );
  const node = setupNode(store, nodeKeysIn(h.head.config.dataDir), store.nodes.discover({ mac }).node, { network });
  const url = `${h.url}/boot/node.ipxe?mac=${mac}&uuid=&serial=&arch=x86_64`;
  // 127.0.0.1 is not this node's address: someone who only knows its MAC gets no secret.
  const stranger = await (await fetch(url)).text();
  assert.match(stranger, new RegExp(`fleetboot_node=${node.id}\\b`));
  assert.doesNotMatch(stranger, /token/);
  // The same request from the node's own address (its static admin IP) carries the token.
  store.nodes.upsertNic(node.id, { mac, ip: '127.0.0.1', isAdmin: true });
  const own = await (await fetch(url)).text();
  assert.match(own, /fleetboot_token=[\w-]{20,}/);
});
