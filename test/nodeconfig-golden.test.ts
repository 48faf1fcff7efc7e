// Golden networking.json (+ .hash), answers.json, node.json and -B args for representative
// nodes. Inputs and expected outputs are files in test/golden/; after a deliberate format
// change, regenerate with `UPDATE_GOLDEN=1 node --import tsx --test test/nodeconfig-golden.test.ts`
// and review the diff.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { nodeConfigContribution } from '../src/nodeconfig/boot-modules.ts';
import { nicRowsFor, parseNodeNetwork } from '../src/nodeconfig/network.ts';
import { renderConfigModule } from '../src/nodeconfig/render.ts';
import { rootPassword, tokenHashFor, type NodeKeys } from '../src/nodeconfig/secrets.ts';
import { parseZpoolLayout } from '../src/nodeconfig/zpool.ts';
import type { NodeRecord } from '../src/store/nodes.ts';
import { nodeRecord } from './node-fixtures.ts';

const goldenDir = join(import.meta.dirname, 'golden');
const cases = ['one-nic', 'two-nics-tags', 'aggr-vlans', 'static-routes'];
const keys: NodeKeys = { key: 'golden-test-key-not-a-secret-0123456789' };

function nodeFor(input: { network: unknown; zpool: unknown; disks: unknown[] }, id: number): NodeRecord {
  const network = parseNodeNetwork(input.network);
  const nics = nicRowsFor(network, []).map((n) => ({ mac: n.mac, nodeId: id, nicTag: n.nicTag ?? null, ip: n.ip ?? null, network: null, vlan: n.vlan ?? null, mtu: n.mtu ?? null, isAdmin: n.isAdmin ?? false }));
  return nodeRecord({
    id,
    uuid: `00000000-0000-4000-8000-00000000000${id}`,
    hostname: network.hostname,
    state: 'setting_up',
    bootPlatform: '20250101T000000Z',
    sysinfo: { disks: input.disks },
    networkConfig: network,
    zpoolConfig: parseZpoolLayout(input.zpool),
    tokenHash: tokenHashFor(keys, id, `golden${id}`),
    nics,
  });
}

function checkGolden(file: string, actual: string): void {
  const path = join(goldenDir, file);
  if (process.env.UPDATE_GOLDEN === '1') writeFileSync(path, actual);
  assert.ok(existsSync(path), `missing golden ${file} (run with UPDATE_GOLDEN=1 and review it)`);
  assert.equal(actual, readFileSync(path, 'utf8'), `${file} differs from its golden`);
}

cases.forEach((name, i) => {
  test(`golden config modules: ${name}`, () => {
    const input = JSON.parse(readFileSync(join(goldenDir, `${name}.input.json`), 'utf8')) as { network: unknown; zpool: unknown; disks: unknown[] };
    const node = nodeFor(input, i + 1);
    const secrets = { rootPassword: rootPassword(keys, node), ntpHost: '10.99.0.1' };
    const networking = renderConfigModule('networking.json', node, secrets)!;
    const hash = renderConfigModule('networking.json.hash', node, secrets)!;
    assert.equal(hash, createHash('sha1').update(networking).digest('hex'), 'the .hash module is the SHA-1 of the exact bytes served');
    checkGolden(`${name}.networking.json`, networking);
    checkGolden(`${name}.networking.json.hash`, `${hash}\n`);
    checkGolden(`${name}.answers.json`, renderConfigModule('answers.json', node, secrets)!);
    checkGolden(`${name}.node.json`, renderConfigModule('node.json', node, secrets)!);
    const contribution = nodeConfigContribution(node);
    checkGolden(`${name}.boot.json`, `${JSON.stringify(contribution, null, 2)}\n`);
    // answers.json is a first-boot module only.
    const running = { ...node, state: 'running' as const };
    assert.equal(renderConfigModule('answers.json', running, secrets), null);
    assert.ok(!nodeConfigContribution(running).modules.some((m) => m.name === 'answers.json'));
  });
});
