// Rolling upgrades end to end: three QEMU VMs, set up on the lab's test platform A, are rolled
// to platform B by the head node's rollout service through their ipmi power drivers, each VM
// behind its own simulated BMC (ipmi_sim, as on real hardware); then to a
// platform whose kernel boots but never checks in, and to one that checks in saying it runs
// another platform: each time the canary is rolled back to B and no other node is touched.
// Last, the head node is killed with -9 mid-wave and restarted: the rollout finishes with every
// node rebooted exactly once. Through all of it, the BMCs' password appears in no log line, API
// answer or CLI output.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { cliPath, labDown, labStatus, labUp, startVms } from '../../src/lab/lab.ts';
import { isAlive, spawnDetached } from '../../src/lab/process.ts';
import { readLabState, writeLabState, type LabState, type LabVm } from '../../src/lab/state.ts';
import type { Mac } from '../../src/mac.ts';
import type { RolloutRecord, RolloutStep } from '../../src/rollout/journal.ts';
import type { NodeRecord } from '../../src/store/nodes.ts';
import { Store } from '../../src/store/store.ts';
import { testNamespace } from '../fixtures.ts';
import { labBootNeeds, requires } from '../requires.ts';
import { buildPlatform, labCli, labDiagnosis, waitFor } from './lab-fixtures.ts';

const inFlightStates = new Set(['assigned', 'power_cycling', 'power_cycled', 'rolling_back', 'rollback_cycling', 'rollback_cycled']);

const skip = requires({ ...labBootNeeds, commands: [...(labBootNeeds.commands ?? []), 'ipmi_sim', 'ipmitool', 'curl'] });

describe('e2e: a rollout across three lab VMs behind simulated BMCs', { skip, timeout: 900_000 }, () => {
  let dir: string;
  let lab: LabState;
  let store: Store;
  let vms: LabVm[] = [];
  const ns = testNamespace('e2eroll');
  const runCli = labCli(() => lab, () => dir);
  /** Everything the CLI printed in this file: searched for secrets at the end. */
  const printed: string[] = [];
  const cli: typeof runCli = async (args) => {
    const r = await runCli(args);
    printed.push(r.stdout, r.stderr);
    return r;
  };
  const diagnose = (): string => labDiagnosis(dir, vms);
  const node = (vm: LabVm): NodeRecord => store.nodes.findByMac(vm.mac as Mac)!;
  const rollout = (id: number): RolloutRecord => store.rollouts.get(id)!;
  const steps = (id: number): RolloutStep[] => store.rollouts.steps(id);
  /** Reboots the orchestrator made of this node for this rollout (its `power` boot events). */
  const cyclesOf = (vm: LabVm, id: number): number =>
    store.events.timeline(node(vm).id, 1000).filter((e) => e.event === 'power' && e.detail.rollout === id && e.detail.action === 'cycle' && e.detail.state !== undefined).length;

  async function start(args: string[]): Promise<number> {
    const r = await cli(['rollout', 'start', ...args, '--json']);
    assert.equal(r.exitCode, 0, `rollout start ${args.join(' ')}: ${r.stderr}`);
    return (JSON.parse(r.stdout) as { rollout: { id: number } }).rollout.id;
  }

  /** Waits for the rollout to end, checking the in-flight limits on every look. */
  async function finish(id: number, timeoutMs: number, limits: { maxInFlight: number; perRack?: number }): Promise<RolloutRecord> {
    return waitFor(`rollout ${id} to end`, timeoutMs, () => {
      const live = steps(id).filter((s) => inFlightStates.has(s.state));
      assert.ok(live.length <= limits.maxInFlight, `rollout ${id}: ${live.length} nodes in flight, limit ${limits.maxInFlight}`);
      if (limits.perRack !== undefined) {
        for (const rack of new Set(live.map((s) => s.domain))) {
          assert.ok(live.filter((s) => s.domain === rack).length <= limits.perRack, `rollout ${id}: rack ${rack} over its limit`);
        }
      }
      const r = rollout(id);
      return ['done', 'failed', 'paused', 'cancelled'].includes(r.state) ? r : undefined;
    }, () => `${JSON.stringify(steps(id).map((s) => [s.label, s.state]))}\n${diagnose()}`);
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fleetboot-e2e-rollout-'));
    const built = await Promise.all([
      buildPlatform('A'),
      buildPlatform('B'),
      buildPlatform('silent', ['--stamp', 'fleetboot-test-silent', '--no-checkin']),
      buildPlatform('liar', ['--stamp', 'fleetboot-test-liar', '--reports', 'fleetboot-test-A']),
    ]);
    lab = await labUp({
      dir,
      namespace: ns,
      nodes: 0,
      firmware: 'bios',
      chainload: false,
      subnet: '10.99.0.0/24',
      httpPort: 8080,
      memoryMiB: 384,
      diskMiB: 512,
      vmTimeoutSeconds: 900,
      logLevel: 'info',
      bmc: 'ipmi',
      platforms: built,
      progress: () => undefined,
    });
    store = Store.open(Store.fileIn(join(dir, 'var')));
    vms = await startVms(lab, { firmware: 'bios', chainload: false, memoryMiB: 384, diskMiB: 512, vmTimeoutSeconds: 900, bmc: 'ipmi', progress: () => undefined }, 0, 3);
  });

  after(async () => {
    store?.close();
    if (dir) {
      await labDown(dir);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('three discovered VMs are set up, with their BMCs as ipmi power drivers and a rack each', async () => {
    for (const vm of vms) {
      await waitFor(`${vm.name} to check in`, 240_000, () => store.nodes.findByMac(vm.mac as Mac)?.lastSeen, diagnose);
    }
    for (const [i, vm] of vms.entries()) {
      const file = join(dir, `${vm.name}-network.json`);
      writeFileSync(
        file,
        JSON.stringify({
          hostname: `cn${i}`,
          dnsDomain: 'lab.test',
          resolvers: ['10.99.0.1'],
          nics: [{ mac: vm.mac, tags: ['admin'] }],
          interfaces: [{ tag: 'admin', ip: `10.99.0.${60 + i}`, netmask: '255.255.255.0', gateway: '10.99.0.1' }],
        }),
      );
      const setup = await cli(['node', 'setup', vm.mac, '--network', file]);
      assert.equal(setup.exitCode, 0, setup.stderr);
      // Two nodes share rack r1: they must never reboot together.
      const bmc = vm.bmc!;
      const set = await cli(['node', 'set', vm.mac, `traits.rack=${i < 2 ? 'r1' : 'r2'}`, 'power.kind=ipmi', `power.host=${bmc.host}`, `power.port=${bmc.port}`, `power.user=${bmc.user}`, `power.passwordFile=${bmc.passwordFile}`]);
      assert.equal(set.exitCode, 0, set.stderr);
      assert.deepEqual(node(vm).power, labStatus(readLabState(dir)!)[i]?.power, 'the spec lab up would give it');
    }
    const plan = await cli(['rollout', 'plan', '--target', 'fleetboot-test-B', '--canary', '1', '--max-in-flight', '2', '--domain', 'rack:1', '--soak', '0s']);
    assert.equal(plan.exitCode, 0, plan.stderr);
    assert.match(plan.stdout, /wave/i);
    assert.deepEqual(store.rollouts.list(), [], 'a plan stores nothing');
  });

  it('rolls all three to B: canary first, never two of rack r1 or more than two at once, each verified on B after one reboot', async (t) => {
    const began = Date.now();
    const id = await start(['--target', 'fleetboot-test-B', '--canary', '1', '--max-in-flight', '2', '--domain', 'rack:1', '--soak', '0s', '--deadline', '240s', '--auto']);
    // While it runs, node show names the rollout each node is in.
    const shown = await cli(['node', 'show', vms[2]!.mac]);
    assert.match(shown.stdout, new RegExp(`^  rollout: +${id} to fleetboot-test-B`, 'm'));
    const done = await finish(id, 600_000, { maxInFlight: 2, perRack: 1 });
    t.diagnostic(`rollout to B: ${((Date.now() - began) / 1000).toFixed(1)} s`);
    assert.equal(done.state, 'done', done.reason ?? '');
    assert.deepEqual(steps(id).map((s) => s.state), ['verified', 'verified', 'verified']);
    assert.equal(steps(id).filter((s) => s.canary).length, 1);
    for (const vm of vms) {
      const n = node(vm);
      assert.equal(n.currentPlatform, 'fleetboot-test-B', vm.name);
      assert.equal(n.bootPlatform, 'fleetboot-test-B');
      assert.equal(n.state, 'running');
      assert.equal(cyclesOf(vm, id), 1, `${vm.name} rebooted once`);
      const viaBmc = store.events.timeline(n.id, 1000).filter((e) => e.event === 'power' && e.detail.rollout === id);
      assert.ok(viaBmc.every((e) => e.detail.driver === 'ipmi'), `${vm.name}: rebooted through its BMC: ${JSON.stringify(viaBmc.map((e) => e.detail))}`);
      assert.match(readFileSync(vm.bmc!.eventLog, 'utf8'), /set boot pxe/, `${vm.name}: its BMC was told to boot from the network first`);
      const timeline = store.events.timeline(n.id, 1000).map((e) => e.event);
      const from = timeline.lastIndexOf('platform');
      // assigned, power-cycled, then the boot itself, then the check-in and the verdict.
      const boot = timeline.slice(from);
      for (const step of ['power', 'dhcp_discover', 'script', 'kernel', 'checkin', 'rollout']) assert.ok((boot as string[]).includes(step), `${vm.name}: ${step} in ${JSON.stringify(boot)}`);
    }
  });

  for (const broken of [
    { stamp: 'fleetboot-test-silent', what: 'never checks in', deadline: '60s' },
    { stamp: 'fleetboot-test-liar', what: 'checks in reporting platform A', deadline: '240s' },
  ]) {
    it(`a canary on a platform that ${broken.what} is rolled back to B and running, and no other node is touched`, async (t) => {
      const before = new Map(vms.map((vm) => [vm.name, node(vm)]));
      const began = Date.now();
      const id = await start(['--target', broken.stamp, '--canary', '1', '--max-in-flight', '1', '--soak', '0s', '--deadline', broken.deadline, '--auto']);
      const ended = await finish(id, 600_000, { maxInFlight: 1 });
      t.diagnostic(`rollout to ${broken.stamp}: ${ended.state} after ${((Date.now() - began) / 1000).toFixed(1)} s: ${ended.reason}`);
      assert.equal(ended.state, 'failed', 'a canary failure stops the rollout before its first wave');
      const canary = steps(id).find((s) => s.canary)!;
      assert.equal(canary.state, 'rolled_back');
      for (const vm of vms) {
        const n = node(vm);
        assert.equal(n.bootPlatform, 'fleetboot-test-B', `${vm.name} boots B`);
        if (n.id === canary.nodeId) {
          // Rebooted twice by this rollout (the upgrade and the rollback) and back on B.
          assert.equal(n.currentPlatform, 'fleetboot-test-B');
          assert.equal(n.state, 'running');
          assert.ok(n.lastSeen! > began, 'checked in again after the rollback');
          assert.equal(cyclesOf(vm, id), 2);
        } else {
          assert.equal(cyclesOf(vm, id), 0, `${vm.name} was not rebooted`);
          assert.equal(n.lastBoot, before.get(vm.name)!.lastBoot, `${vm.name} kept running`);
        }
      }
    });
  }

  it('a head node killed with -9 mid-wave resumes on restart: every node is rebooted once and verified on A', async (t) => {
    const began = Date.now();
    const id = await start(['--target', 'fleetboot-test-A', '--canary', '0', '--max-in-flight', '1', '--soak', '0s', '--deadline', '240s', '--auto']);
    // Between the first node's reboot and its check-in: the window a crash must survive.
    await waitFor('the first node to be power-cycled', 120_000, () => steps(id).some((s) => s.state === 'power_cycled'), diagnose);
    const head = readLabState(dir)!.headNode!;
    process.kill(head.pid, 'SIGKILL');
    await waitFor('the killed head node to be gone', 10_000, () => !isAlive(head), diagnose);
    const log = join(dir, 'headnode.log');
    const mark = readFileSync(log, 'utf8').length;
    const state = readLabState(dir)!;
    state.headNode = spawnDetached(['ip', 'netns', 'exec', ns, process.execPath, cliPath, '--config', state.configFile, 'serve'], log);
    writeLabState(state); // lab down ends the new one too
    await waitFor('the head node to start again', 30_000, () => readFileSync(log, 'utf8').slice(mark).includes('"event":"headnode_started"'), diagnose);

    const done = await finish(id, 600_000, { maxInFlight: 1 });
    t.diagnostic(`rollout to A across a kill -9: ${((Date.now() - began) / 1000).toFixed(1)} s`);
    assert.equal(done.state, 'done', done.reason ?? '');
    for (const vm of vms) {
      assert.equal(node(vm).currentPlatform, 'fleetboot-test-A', vm.name);
      assert.equal(cyclesOf(vm, id), 1, `${vm.name} rebooted exactly once across the crash`);
    }
  });

  it('no log line, API answer or CLI output of the whole run holds the BMC password or the API token', async () => {
    const password = readFileSync(vms[0]!.bmc!.passwordFile, 'utf8').split('\n')[0]!;
    const token = readFileSync(join(dir, 'var', 'api-token'), 'utf8').trim();
    assert.ok(password.length >= 12 && token.length >= 16);
    const api = async (path: string): Promise<string> => {
      const r = await execa('ip', ['netns', 'exec', ns, 'curl', '-sS', '--max-time', '20', '-H', `Authorization: Bearer ${token}`, `http://10.99.0.1:8080/api/v1${path}`], { reject: false });
      assert.equal(r.exitCode, 0, `GET ${path}: ${r.stderr}`);
      return String(r.stdout);
    };
    const answers = [await api('/nodes'), await api('/rollouts'), await api('/counters')];
    for (const vm of vms) {
      const id = node(vm).id;
      const shown = await api(`/nodes/${id}`);
      assert.match(shown, /"kind":"ipmi"/, 'the API shows the power spec');
      assert.ok(shown.includes(vm.bmc!.passwordFile), 'by its file reference');
      answers.push(shown);
      await cli(['node', 'show', vm.mac]);
      await cli(['node', 'show', vm.mac, '--json']);
      await cli(['node', 'power', vm.mac, 'status']);
    }
    for (const r of store.rollouts.list()) {
      answers.push(await api(`/rollouts/${r.id}`));
      await cli(['rollout', 'status', String(r.id)]);
    }
    await cli(['node', 'list', '--json']);
    const logs = [readFileSync(join(dir, 'headnode.log'), 'utf8'), ...vms.map((vm) => readFileSync(join(vm.bmc!.dir, 'ipmi_sim.log'), 'utf8'))];
    const events = vms.flatMap((vm) => store.events.timeline(node(vm).id, 1000)).map((e) => JSON.stringify(e));
    const dbFile = Store.fileIn(join(dir, 'var'));
    const database = Buffer.concat([dbFile, `${dbFile}-wal`].filter((f) => existsSync(f)).map((f) => readFileSync(f)));
    for (const [what, texts] of [['API answer', answers], ['CLI output', printed], ['log', logs], ['boot event', events]] as const) {
      for (const text of texts) {
        assert.ok(!text.includes(password), `the BMC password is in a ${what}: ${text.slice(0, 300)}`);
        assert.ok(!text.includes(token), `the API token is in a ${what}`);
      }
    }
    assert.equal(database.indexOf(password), -1, 'the BMC password is not in the registry');
    assert.ok(printed.length > 20 && logs[0]!.length > 10_000, 'there was output to search');
  });
});
