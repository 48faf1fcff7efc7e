// End to end: a lab VM behind a real (simulated) BMC. `lab up --bmc ipmi` starts OpenIPMI's
// ipmi_sim for the VM inside the lab namespace; ipmitool -I lanplus, run inside that namespace,
// reads and cycles the VM's power through it, and the VM really boots again (a new firmware
// start on its serial console, a new check-in at the head node). Then the same through the
// node's stored `ipmi` power spec: `fleetboot node power NODE cycle` and the ipmi driver.
// Needs root, qemu-system-x86_64, ipmi_sim (openipmi) and ipmitool.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { assignLabPower, labDown, labStatus, labUp } from '../../src/lab/lab.ts';
import { isAlive } from '../../src/lab/process.ts';
import { readLabState, type LabBmc, type LabState, type LabVm } from '../../src/lab/state.ts';
import type { Mac } from '../../src/mac.ts';
import type { NodeRecord } from '../../src/store/nodes.ts';
import { Store } from '../../src/store/store.ts';
import { cliPath, testNamespace } from '../fixtures.ts';
import { labBootNeeds, requires } from '../requires.ts';
import { labOptions, waitFor } from './lab-fixtures.ts';

const skip = requires({ ...labBootNeeds, commands: [...(labBootNeeds.commands ?? []), 'ipmi_sim', 'ipmitool'] });

const read = (file: string): string => (existsSync(file) ? readFileSync(file, 'utf8') : '');
/** Firmware starts on the VM's console: SeaBIOS's iPXE NIC ROM prints this once per boot. */
const firmwareStarts = (vm: LabVm): number => read(vm.serialLog).split('iPXE initialising devices').length - 1;

describe('e2e: a lab VM powered through its simulated BMC (ipmi_sim + ipmitool)', { skip, timeout: 420_000 }, () => {
  const ns = testNamespace('ipmi1');
  let dir: string;
  let lab: LabState;
  let vm: LabVm;
  let bmc: LabBmc;
  let store: Store;

  const node = (): NodeRecord | undefined => store.nodes.findByMac(vm.mac as Mac);
  const diagnose = (): string =>
    [
      `--- ${vm.name} console (last 15 lines):\n${read(vm.serialLog).replace(/\r/g, '').split('\n').slice(-15).join('\n')}`,
      `--- BMC chassis log:\n${read(bmc.eventLog)}`,
      `--- ipmi_sim log:\n${read(join(bmc.dir, 'ipmi_sim.log')).split('\n').slice(-10).join('\n')}`,
      `--- head node log (last 10 lines):\n${read(join(dir, 'headnode.log')).split('\n').slice(-10).join('\n')}`,
    ].join('\n');
  const ipmitool = (args: string[], passwordFile = bmc.passwordFile) =>
    execa('ip', ['netns', 'exec', ns, 'ipmitool', '-I', 'lanplus', '-H', bmc.host, '-p', String(bmc.port), '-U', bmc.user, '-f', passwordFile, '-C', '3', '-N', '2', '-R', '1', ...args], {
      reject: false,
      timeout: 30_000,
      stdin: 'ignore',
    });
  const checkInAfter = (since: number, what: string): Promise<NodeRecord> =>
    waitFor(what, 150_000, () => {
      const n = node();
      return n && n.lastSeen !== null && n.lastSeen > since ? n : undefined;
    }, diagnose);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fleetboot-e2e-ipmi-'));
    lab = await labUp(labOptions(dir, ns, { bmc: 'ipmi' }));
    vm = lab.vms[0]!;
    bmc = vm.bmc!;
    store = Store.open(Store.fileIn(join(dir, 'var')));
  });

  after(async () => {
    store?.close();
    if (dir) {
      try {
        const state = readLabState(dir);
        await labDown(dir); // ends QEMU and ipmi_sim by the PIDs lab.json recorded
        for (const v of state?.vms ?? []) {
          assert.ok(!isAlive(v.process), `${v.name}'s QEMU ended`);
          assert.ok(!isAlive(v.bmc?.process ?? null), `${v.name}'s ipmi_sim ended`);
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
    const left = await execa('ip', ['netns', 'list'], { reject: false });
    assert.ok(!left.stdout.includes(ns), `namespace ${ns} left behind`);
  });

  it('lab up --bmc ipmi records ipmi_sim in lab.json and shows the ipmi power spec in lab status', () => {
    assert.ok(isAlive(bmc.process), 'ipmi_sim runs');
    const recorded = readLabState(dir)!.vms[0]!.bmc!;
    assert.equal(recorded.process?.pid, bmc.process?.pid);
    const [status] = labStatus(readLabState(dir)!);
    assert.deepEqual(status?.power, { kind: 'ipmi', host: '127.0.0.1', port: bmc.port, user: 'admin', passwordFile: bmc.passwordFile, cipherSuite: 3, firmware: 'bios' });
  });

  it('ipmitool reads the power through ipmi_sim inside the lab namespace; a wrong password is refused', async () => {
    const on = await ipmitool(['chassis', 'power', 'status']);
    assert.equal(on.exitCode, 0, String(on.stderr));
    assert.match(String(on.stdout), /Chassis Power is on/);
    const wrongFile = join(dir, 'wrong-password');
    await execa('sh', ['-c', 'umask 077; echo not-the-password > "$1"', 'sh', wrongFile]);
    const wrong = await ipmitool(['chassis', 'power', 'status'], wrongFile);
    assert.notEqual(wrong.exitCode, 0, 'a wrong password gets no session');
    // Outside the namespace nothing answers there: the BMC exists only on the lab's loopback.
    const outside = await execa('ipmitool', ['-I', 'lanplus', '-H', bmc.host, '-p', String(bmc.port), '-U', bmc.user, '-f', bmc.passwordFile, '-C', '3', '-N', '1', '-R', '1', 'chassis', 'power', 'status'], {
      reject: false,
      timeout: 30_000,
      stdin: 'ignore',
    });
    assert.notEqual(outside.exitCode, 0, 'no BMC on the host\'s own loopback');
  });

  it('chassis bootdev pxe + chassis power cycle through ipmi_sim reboots the VM: a new firmware start and a new check-in', async (t) => {
    const first = await checkInAfter(0, `${vm.name} to check in`);
    t.diagnostic(`first check-in as node ${first.id}`);
    const bootsBefore = firmwareStarts(vm);
    const cycledAt = Date.now();
    const bootdev = await ipmitool(['chassis', 'bootdev', 'pxe']);
    assert.equal(bootdev.exitCode, 0, String(bootdev.stderr));
    const cycle = await ipmitool(['chassis', 'power', 'cycle']);
    assert.equal(cycle.exitCode, 0, String(cycle.stderr));
    assert.match(String(cycle.stdout), /Chassis Power Control: Cycle/);
    const again = await checkInAfter(cycledAt, `${vm.name} to check in again after the IPMI power cycle`);
    t.diagnostic(`checked in again ${((Date.now() - cycledAt) / 1000).toFixed(1)} s after the cycle`);
    assert.equal(again.id, first.id);
    assert.ok(firmwareStarts(vm) > bootsBefore, `the firmware started again (${bootsBefore} -> ${firmwareStarts(vm)})`);
    const log = read(bmc.eventLog);
    assert.match(log, /set boot pxe/);
    assert.match(log, /set power 0\n.*set power 1/);
    assert.equal(read(bmc.bootFile).trim(), 'pxe');
  });

  it("the lab gives the node its BMC as power; fleetboot node power cycle (run in the namespace) reboots it through the ipmi driver", async (t) => {
    const n = node()!;
    const config = lab.configFile;
    // What `lab up` in the foreground does once the node has registered (the same as
    // `fleetboot node set NODE power.kind=ipmi power.host=... ...`).
    assert.deepEqual(assignLabPower(readLabState(dir)!).map((a) => [a.vm, a.nodeId]), [[vm.name, n.id]]);
    assert.deepEqual(store.nodes.findByMac(vm.mac as Mac)?.power, labStatus(readLabState(dir)!)[0]?.power);
    assert.deepEqual(assignLabPower(readLabState(dir)!), [], 'set once; a node with power settings is left alone');
    const bootsBefore = firmwareStarts(vm);
    const cycledAt = Date.now();
    const power = await execa('ip', ['netns', 'exec', ns, process.execPath, cliPath, '--config', config, 'node', 'power', vm.mac, 'cycle', '--json'], { reject: false, timeout: 120_000 });
    assert.equal(power.exitCode, 0, `${String(power.stderr)}\n${diagnose()}`);
    assert.equal((JSON.parse(String(power.stdout)) as { driver: string; state: string }).driver, 'ipmi');
    const again = await checkInAfter(cycledAt, `${vm.name} to check in after fleetboot node power cycle`);
    t.diagnostic(`checked in ${((Date.now() - cycledAt) / 1000).toFixed(1)} s after node power cycle`);
    assert.equal(again.id, n.id);
    assert.ok(firmwareStarts(vm) > bootsBefore, 'the firmware started again');
    const events = store.events.timeline(n.id).filter((e) => e.event === 'power');
    assert.deepEqual(events.at(-1)?.detail, { action: 'cycle', driver: 'ipmi', state: 'on' });
    const passwordText = read(bmc.passwordFile).trim();
    assert.ok(!String(power.stdout).includes(passwordText) && !String(power.stderr).includes(passwordText), 'the password is not in the output');
  });
});
