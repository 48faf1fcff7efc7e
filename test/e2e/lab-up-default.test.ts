// `fleetboot lab up` with no --platform, as an operator runs it: the lab imports its test
// platform A (building it first when lab-build has none) as the default, and a VM PXE-boots it
// and checks in, instead of waiting at "no platform to boot".
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { labStatus } from '../../src/lab/lab.ts';
import { readLabState } from '../../src/lab/state.ts';
import { runCli, tempLab, testNamespace } from '../fixtures.ts';
import { labBootNeeds, requires } from '../requires.ts';

test('lab up without --platform imports test platform A as the default and a VM boots it and checks in', { skip: requires(labBootNeeds), timeout: 420_000 }, async (t) => {
  const ns = testNamespace('labdefault');
  const { dir, labDir } = tempLab(t, ns); // lab down runs however the test ends
  // The first build downloads a kernel package: give it time.
  const up = await runCli(['lab', 'up', '--detach', '--nodes', '1', '--dir', labDir, '--namespace', ns, '--vm-timeout', '300'], dir, {}, 300_000);
  assert.equal(up.exitCode, 0, String(up.stderr));
  assert.match(String(up.stderr), /importing platform .*fleetboot-test-A/);

  const state = readLabState(labDir);
  assert.ok(state, 'lab up recorded its state');
  const list = await runCli(['--config', state.configFile, 'platform', 'list', '--json'], dir);
  assert.equal(list.exitCode, 0, String(list.stderr));
  const platforms = (JSON.parse(String(list.stdout)) as { platforms: { stamp: string; default: boolean }[] }).platforms;
  assert.deepEqual(platforms.map((p) => [p.stamp, p.default]), [['fleetboot-test-A', true]]);

  // Under TCG a BIOS boot to check-in takes 10-25 s; allow for a loaded machine.
  const started = Date.now();
  for (;;) {
    const vm = labStatus(state)[0];
    if (vm?.lastSeen !== null && vm?.lastSeen !== undefined) {
      assert.equal(vm.currentPlatform, 'fleetboot-test-A');
      t.diagnostic(`node0 checked in on fleetboot-test-A ${((Date.now() - started) / 1000).toFixed(1)} s after lab up`);
      break;
    }
    if (Date.now() - started > 150_000) {
      const serial = await runCli(['lab', 'console', 'node0', '--dir', labDir], dir);
      assert.fail(`node0 did not check in within 150 s; its console ends:\n${String(serial.stdout).split('\n').slice(-25).join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, 500));
  }

  // The dashboard, from the host: 127.0.0.1:PORT is forwarded to the head node in the lab
  // namespace, and dashboard-url reaches it through its unix socket.
  assert.match(String(up.stderr), /lab: dashboard at http:\/\/127\.0\.0\.1:\d+\//);
  const port = readLabState(labDir)!.dashboard!.port;
  const status = await runCli(['lab', 'status', '--dir', labDir], dir);
  assert.match(String(status.stdout), new RegExp(`^dashboard http://127\\.0\\.0\\.1:${port}/ `, 'm'));
  const link = await runCli(['--config', state.configFile, 'dashboard-url', '--base-url', `http://127.0.0.1:${port}`, '--json'], dir);
  assert.equal(link.exitCode, 0, String(link.stderr));
  const { url } = JSON.parse(String(link.stdout)) as { url: string };
  const login = await fetch(url, { redirect: 'manual' });
  assert.equal(login.status, 303);
  const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0]!;
  assert.match(cookie, /^fleetboot_session=/);
  const nodes = await fetch(`http://127.0.0.1:${port}/`, { headers: { cookie, accept: 'text/html' } });
  assert.equal(nodes.status, 200);
  assert.ok((await nodes.text()).includes(state.vms[0]!.mac), 'the lab VM is on the dashboard seen from the host');
});
