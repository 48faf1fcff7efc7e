// `fleetboot lab`: bad input is refused before anything is created; a detached lab is removed
// completely by `lab down` from its state file (the path a crashed `lab up` leaves behind).
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { execa } from 'execa';
import { parseConfig } from '../src/config/load.ts';
import { labAddresses, labConfig } from '../src/lab/lab.ts';
import { isAlive } from '../src/lab/process.ts';
import { labStateSchema, stateFileIn } from '../src/lab/state.ts';
import { runCli, tempDir, tempLab, testNamespace } from './fixtures.ts';
import { labNeeds, requires } from './requires.ts';

async function namespaces(): Promise<string> {
  return (await execa('ip', ['netns', 'list'], { reject: false })).stdout;
}

test('the generated head-node config is one fleetboot accepts: full DHCP on br0, TFTP on, HTTP on the lab address', (t) => {
  const dir = tempDir(t);
  const config = parseConfig(labConfig(dir, '10.99.0.0/24', 8080, 'info'), dir, 'lab');
  assert.equal(config.dhcp.mode, 'full');
  assert.equal(config.tftp.enabled, true);
  assert.equal(config.http.listen, '10.99.0.1');
  assert.deepEqual(config.networks[0]?.range, { start: '10.99.0.100', end: '10.99.0.199' });
  assert.equal(config.networks[0]?.interface, 'br0');
  assert.deepEqual(labAddresses('10.50.0.0/26'), { address: '10.50.0.1', prefix: 26, rangeStart: '10.50.0.32', rangeEnd: '10.50.0.62' });
  assert.deepEqual(labAddresses('10.99.0.0/24'), { address: '10.99.0.1', prefix: 24, rangeStart: '10.99.0.100', rangeEnd: '10.99.0.199' });
  assert.deepEqual(labAddresses('10.96.0.0/22'), { address: '10.96.0.1', prefix: 22, rangeStart: '10.96.0.100', rangeEnd: '10.96.3.254' });
});

test('lab up refuses bad flags with exit code 2 and creates nothing', { skip: requires({ root: 'lab up makes a network namespace', commands: ['ip'] }) }, async (t) => {
  const dir = tempDir(t);
  const ns = testNamespace('labcli1');
  for (const [args, message] of [
    [['--firmware', 'arm'], /--firmware arm: expected bios or uefi/],
    [['--nodes', 'two'], /--nodes two: expected a whole number/],
    [['--subnet', '10.99.0.0'], /--subnet 10.99.0.0: expected a CIDR/],
    [['--chainload'], /--chainload needs --firmware uefi/],
  ] as const) {
    const r = await runCli(['lab', 'up', '--dir', join(dir, 'lab'), '--namespace', ns, '--detach', ...args], dir);
    assert.equal(r.exitCode, 2, `${args.join(' ')}: ${String(r.stderr)}`);
    assert.match(String(r.stderr), message);
    assert.ok(!(await namespaces()).includes(ns), 'no namespace was created');
    assert.ok(!existsSync(stateFileIn(join(dir, 'lab'))), 'no state file was written');
  }
});

test('lab status and console without a lab say how to start one', async (t) => {
  const dir = tempDir(t);
  const status = await runCli(['lab', 'status', '--dir', dir], dir);
  assert.equal(status.exitCode, 2);
  assert.match(String(status.stderr), /no lab in .* \(start one with 'fleetboot lab up'\)/);
  const console = await runCli(['lab', 'console', 'node0', '--dir', dir], dir);
  assert.equal(console.exitCode, 2);
});

test('a detached lab is removed by lab down: processes, namespace, bridge and files', { skip: requires(labNeeds) }, async (t) => {
  const ns = testNamespace('labcli2');
  const { dir, labDir } = tempLab(t, ns);
  const up = await runCli(['lab', 'up', '--nodes', '0', '--dir', labDir, '--namespace', ns, '--detach'], dir);
  assert.equal(up.exitCode, 0, String(up.stderr));
  const state = labStateSchema.parse(JSON.parse(readFileSync(stateFileIn(labDir), 'utf8')));
  assert.ok(isAlive(state.headNode) && isAlive(state.radvd), 'head node and radvd run');
  assert.ok((await namespaces()).includes(ns));
  const br = await execa('ip', ['-n', ns, '-4', 'addr', 'show', 'br0']);
  assert.match(br.stdout, /inet 10\.99\.0\.1\/24/);

  const status = await runCli(['lab', 'status', '--dir', labDir, '--json'], dir);
  assert.equal(status.exitCode, 0, String(status.stderr));
  assert.equal((JSON.parse(String(status.stdout)) as { namespace: string }).namespace, ns);

  const down = await runCli(['lab', 'down', '--dir', labDir], dir);
  assert.equal(down.exitCode, 0, String(down.stderr));
  assert.ok(!isAlive(state.headNode) && !isAlive(state.radvd), 'head node and radvd ended');
  assert.ok(!(await namespaces()).includes(ns), 'namespace deleted');
  assert.ok(!existsSync(labDir), 'lab folder removed');
  const again = await runCli(['lab', 'down', '--dir', labDir], dir);
  assert.equal(again.exitCode, 0);
  assert.match(String(again.stdout), /no lab recorded/);
});
