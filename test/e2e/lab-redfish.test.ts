// End to end: a lab VM behind the Redfish BMC emulator (test/redfish-bmc.ts) whose power backend
// is the VM's QMP socket. The node's stored `redfish` power spec and `fleetboot node power NODE
// cycle` go through the redfish driver over HTTPS: boot once from the network, PowerCycle, and the
// VM really boots again (a new firmware start on its console, a new check-in at the head node).
// Needs root, qemu-system-x86_64 and openssl.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { labDown, labPowerDriver, labUp } from '../../src/lab/lab.ts';
import { readLabState, type LabState, type LabVm } from '../../src/lab/state.ts';
import type { Mac } from '../../src/mac.ts';
import type { NodeRecord } from '../../src/store/nodes.ts';
import { Store } from '../../src/store/store.ts';
import { testNamespace } from '../fixtures.ts';
import { QmpMachine, RedfishBmc, makeCertificate } from '../redfish-bmc.ts';
import { labBootNeeds, requires } from '../requires.ts';
import { labCli, labDiagnosis, labOptions, plainConsole, waitFor } from './lab-fixtures.ts';

const skip = requires({ ...labBootNeeds, commands: [...(labBootNeeds.commands ?? []), 'openssl'] });

/** Firmware starts on the VM's console: SeaBIOS's iPXE NIC ROM prints this once per boot. */
const firmwareStarts = (vm: LabVm): number => plainConsole(vm.serialLog).split('iPXE initialising devices').length - 1;

describe('e2e: a lab VM powered through a Redfish BMC (the emulator over its QMP socket) and the redfish driver', { skip, timeout: 420_000 }, () => {
  const ns = testNamespace('redfish1');
  let dir: string;
  let lab: LabState;
  let vm: LabVm;
  let store: Store;
  let bmc: RedfishBmc;

  const node = (): NodeRecord | undefined => store.nodes.findByMac(vm.mac as Mac);
  const diagnose = (): string => labDiagnosis(dir, [vm]) + `\n--- Redfish requests (last 15):\n${bmc.requests.slice(-15).map((q) => `${q.method} ${q.path} ${q.status}`).join('\n')}\n--- backend errors: ${bmc.system.backendErrors.join('; ')}`;
  const checkInAfter = (since: number, what: string): Promise<NodeRecord> =>
    waitFor(what, 150_000, () => {
      const n = node();
      return n && n.lastSeen !== null && n.lastSeen > since ? n : undefined;
    }, diagnose);
  const cli = labCli(() => lab, () => dir);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fleetboot-e2e-redfish-'));
    lab = await labUp(labOptions(dir, ns));
    vm = lab.vms[0]!;
    store = Store.open(Store.fileIn(join(dir, 'var')));
    bmc = new RedfishBmc(await makeCertificate(dir, 'bmc'), { backend: new QmpMachine(labPowerDriver(dir, vm.name)) });
    await bmc.start();
  });

  after(async () => {
    await bmc?.stop();
    store?.close();
    if (dir) {
      try {
        if (readLabState(dir)) await labDown(dir); // ends QEMU by the PID lab.json recorded
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
    const left = await execa('ip', ['netns', 'list'], { reject: false });
    assert.ok(!left.stdout.includes(ns), `namespace ${ns} left behind`);
  });

  it('fleetboot node power NODE cycle over redfish sets boot once from the network, power cycles the VM, and it checks in again', async (t) => {
    const first = await checkInAfter(0, `${vm.name} to check in`);
    const passwordFile = join(dir, 'bmc-password');
    writeFileSync(passwordFile, `${bmc.password}\n`, { mode: 0o600 });
    const set = await cli(['node', 'set', vm.mac, 'power.kind=redfish', `power.url=${bmc.url}`, `power.user=${bmc.user}`, `power.passwordFile=${passwordFile}`, `power.caFile=${bmc.certificate.certFile}`]);
    assert.equal(set.exitCode, 0, set.stderr);

    const status = await cli(['node', 'power', vm.mac, 'status', '--json']);
    assert.equal(status.exitCode, 0, status.stderr);
    assert.deepEqual(JSON.parse(status.stdout), { node: first.id, action: 'status', driver: 'redfish', state: 'on' });

    const bootsBefore = firmwareStarts(vm);
    const cycledAt = Date.now();
    const cycle = await cli(['node', 'power', vm.mac, 'cycle', '--json']);
    assert.equal(cycle.exitCode, 0, `${cycle.stderr}\n${diagnose()}`);
    assert.deepEqual(JSON.parse(cycle.stdout), { node: first.id, action: 'cycle', driver: 'redfish', state: 'on' });
    const again = await checkInAfter(cycledAt, `${vm.name} to check in again after the Redfish power cycle`);
    t.diagnostic(`checked in again ${((Date.now() - cycledAt) / 1000).toFixed(1)} s after the cycle`);
    assert.equal(again.id, first.id);
    assert.ok(firmwareStarts(vm) > bootsBefore, `the firmware started again (${bootsBefore} -> ${firmwareStarts(vm)})`);
    assert.deepEqual(bmc.system.boots, [{ after: 'PowerCycle', target: 'Pxe', mode: 'Legacy' }]);
    assert.deepEqual(bmc.system.backendErrors, []);
    assert.equal(bmc.sessions.size, 0, 'every session was deleted');
    assert.deepEqual(store.events.timeline(first.id).filter((e) => e.event === 'power').at(-1)?.detail, { action: 'cycle', driver: 'redfish', state: 'on' });
    assert.ok(!cycle.stdout.includes(bmc.password) && !cycle.stderr.includes(bmc.password), 'the password is not in the output');
  });
});
