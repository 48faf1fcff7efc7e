import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError, loadConfig } from '../src/config/load.ts';
import { tempDir } from './fixtures.ts';

test('no config file means the embedded defaults: state under ./var, HTTP on loopback, DHCP and TFTP off', (t) => {
  const dir = tempDir(t);
  const { config, path } = loadConfig(undefined, dir);
  assert.equal(path, null);
  assert.equal(config.dataDir, join(dir, 'var'));
  assert.equal(config.http.listen, '127.0.0.1');
  assert.equal(config.dhcp.mode, 'off');
  assert.equal(config.tftp.enabled, false);
  assert.equal(config.unknownNodePolicy, 'discover');
});

const bad: [string, unknown, RegExp][] = [
  ['a subnet that is not CIDR', { networks: [{ name: 'admin', subnet: '10.0.0.0' }] }, /^cfg\.json: networks\.0\.subnet: expected a CIDR subnet/],
  ['a range outside its subnet', { networks: [{ name: 'admin', subnet: '10.0.0.0/24', range: { start: '10.0.1.5', end: '10.0.1.9' } }] }, /networks\.0\.range\.start: 10\.0\.1\.5 is outside subnet/],
  ['an unknown DHCP mode', { dhcp: { mode: 'sometimes' } }, /^cfg\.json: dhcp\.mode: /],
  ['DHCP on with no network', { dhcp: { mode: 'full' } }, /dhcp\.mode: "full" needs at least one entry in networks/],
  ['a port out of range', { http: { port: 70000 } }, /^cfg\.json: http\.port: /],
  ['an unknown-node policy typo', { unknownNodePolicy: 'allowlist' }, /^cfg\.json: unknownNodePolicy: /],
];
for (const [what, json, message] of bad) {
  test(`config refused: ${what}`, (t) => {
    const dir = tempDir(t);
    writeFileSync(join(dir, 'cfg.json'), JSON.stringify(json));
    assert.throws(() => loadConfig('cfg.json', dir), (err: unknown) => err instanceof ConfigError && message.test(err.message) && !err.message.includes('\n'));
  });
}

test('config refused: not JSON', (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'cfg.json'), '{ "dhcp": ');
  assert.throws(() => loadConfig('cfg.json', dir), /^ConfigError: cfg\.json: not valid JSON/);
});
