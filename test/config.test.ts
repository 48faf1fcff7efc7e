import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigError, loadConfig } from '../src/config/load.ts';
import { intToIpv4, ipv4ToInt } from '../src/config/schema.ts';
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

test('dotted quads to numbers and back (the DHCP server and lease book rely on both)', () => {
  for (const ip of ['0.0.0.0', '10.50.0.1', '192.168.255.254', '255.255.255.255']) assert.equal(intToIpv4(ipv4ToInt(ip)), ip);
  assert.equal(ipv4ToInt('10.0.0.1'), 0x0a000001);
  assert.equal(ipv4ToInt('255.255.255.0'), 0xffffff00);
  // Short or non-numeric input (never past the schema, but never a throw): missing parts are 0.
  assert.equal(ipv4ToInt('1.2.3'), 0x01020300);
  assert.equal(ipv4ToInt('1.2.x.4'), 0x01020004);
  assert.equal(ipv4ToInt(''), 0);
});
