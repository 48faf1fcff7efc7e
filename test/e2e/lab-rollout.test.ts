// Rolling upgrades end to end: three QEMU VMs, set up on the lab's test platform A, are rolled
// to platform B by the head node's rollout service through their qemu power drivers; then to a
// platform whose kernel boots but never checks in, and to one that checks in saying it runs
// another platform: each time the canary is rolled back to B and no other node is touched.
// Last, the head node is killed with -9 mid-wave and restarted: the rollout finishes with every
// node rebooted exactly once.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cliPath, labDown, labUp, startVms } from '../../src/lab/lab.ts';
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

describe('e2e: a rollout across three lab VMs', { skip: requires(labBootNeeds), timeout: 900_000 }, () => {
  let dir: string;
  let lab: LabState;
  let store: Store;
  let vms: LabVm[] = [];
  const ns = testNamespace('e2eroll');
  const cli = labCli(() => lab, () => dir);
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
      platforms: built,
      progress: () => undefined,
    });
    store = Store.open(Store.fileIn(join(dir, 'var')));
    vms = await startVms(lab, { firmware: 'bios', chainload: false, memoryMiB: 384, diskMiB: 512, vmTimeoutSeconds: 900, progress: () => undefined }, 0, 3);
  });

  after(async () => {
    store?.close();
    if (dir) {
      await labDown(dir);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('three discovered VMs are set up, with their qemu power drivers and a rack each', async () => {
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
      const set = await cli(['node', 'set', vm.mac, `traits.rack=${i < 2 ? 'r1' : 'r2'}`, 'power.kind=qemu', `power.qmpSocket=${vm.qmpSocket}`, 'power.guestResetWaitMs=20000']);
      assert.equal(set.exitCode, 0, set.stderr);
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
});
