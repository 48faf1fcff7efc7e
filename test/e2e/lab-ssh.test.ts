// End to end: a lab VM boots the test platform built with --ssh-authorized-key (dropbear on port
// 22, root's key only), checks in, and `fleetboot node power NODE cycle` reboots it through the
// node's stored `ssh` power spec: OpenSSH's ssh, run in the lab namespace, logs in with the key,
// checks the host key against a pinned known_hosts and runs `reboot`; the VM goes through its
// firmware again and checks in a second time. The VM runs with a simulated BMC (lab up --bmc
// ipmi) only because such a VM runs without QEMU's -no-reboot: a guest's own reboot restarts it
// instead of ending QEMU. The BMC is not used. Needs root, QEMU, dropbear-bin, openssh-client.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { labDown, labUp } from '../../src/lab/lab.ts';
import { isAlive } from '../../src/lab/process.ts';
import { readLabState, type LabState, type LabVm } from '../../src/lab/state.ts';
import type { Mac } from '../../src/mac.ts';
import type { NodeRecord } from '../../src/store/nodes.ts';
import { Store } from '../../src/store/store.ts';
import { cliPath, testNamespace } from '../fixtures.ts';
import { labBootNeeds, requires } from '../requires.ts';
import { buildPlatform, labDiagnosis, labOptions, plainConsole, waitFor } from './lab-fixtures.ts';

const skip = requires({ ...labBootNeeds, commands: [...(labBootNeeds.commands ?? []), 'ipmi_sim', 'ssh', 'ssh-keygen', 'dropbear', 'dropbearkey'] });

/** Firmware starts on the VM's console: SeaBIOS's iPXE NIC ROM prints this once per boot. */
const firmwareStarts = (vm: LabVm): number => plainConsole(vm.serialLog).split('iPXE initialising devices').length - 1;

describe('e2e: a lab VM rebooted through the ssh power driver (dropbear in the test platform)', { skip, timeout: 480_000 }, () => {
  const ns = testNamespace('ssh1');
  let dir: string | undefined;
  let lab: LabState;
  let vm: LabVm;
  let store: Store | undefined;
  let key: string;

  const node = (): NodeRecord | undefined => store!.nodes.findByMac(vm.mac as Mac);
  const diagnose = (): string => labDiagnosis(dir!, [vm]);
  const checkinsOf = (n: NodeRecord) => store!.events.timeline(n.id).filter((e) => e.event === 'checkin');

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fleetboot-e2e-ssh-'));
    key = join(dir, 'id_ed25519');
    await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'fleetboot-e2e', '-f', key]);
    const platform = await buildPlatform('SSH', ['--ssh-authorized-key', `${key}.pub`, '--ssh-host-key', join(dir, 'ssh_host_ed25519_key')]);
    lab = await labUp(labOptions(dir, ns, { vmTimeoutSeconds: 450, bmc: 'ipmi', platforms: [platform] }));
    vm = lab.vms[0]!;
    store = Store.open(Store.fileIn(join(dir, 'var')));
  });

  after(async () => {
    store?.close();
    if (dir) {
      try {
        const state = readLabState(dir);
        await labDown(dir); // ends QEMU and ipmi_sim by the PIDs lab.json recorded
        for (const v of state?.vms ?? []) assert.ok(!isAlive(v.process), `${v.name}'s QEMU ended`);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
    await execa('ip', ['netns', 'del', ns], { reject: false });
  });

  it('node power NODE cycle logs in with the key, runs reboot, and the VM boots again and checks in a second time', async (t) => {
    const first = await waitFor(`${vm.name} to check in`, 200_000, () => {
      const n = node();
      return n && checkinsOf(n).length > 0 ? n : undefined;
    }, diagnose);
    const ip = String(checkinsOf(first).at(-1)!.detail.ip);
    assert.match(ip, /^10\.99\.0\.\d+$/, 'the node checked in from its lab address');
    await waitFor('the platform to start its sshd', 60_000, () => plainConsole(vm.serialLog).includes('sshd (dropbear) listening on port 22'), diagnose);

    // The host key the build put in the platform, pinned for the node's address.
    const hostPub = (await execa('dropbearkey', ['-y', '-f', join(dir!, 'ssh_host_ed25519_key')])).stdout.split('\n').find((l) => l.startsWith('ssh-ed25519'))!;
    const knownHosts = join(dir!, 'known_hosts');
    writeFileSync(knownHosts, `${ip} ${hostPub.split(' ').slice(0, 2).join(' ')}\n`);

    const cli = (args: string[], netns: boolean) =>
      execa(netns ? 'ip' : process.execPath, [...(netns ? ['netns', 'exec', ns, process.execPath] : []), cliPath, '--config', lab.configFile, ...args], { reject: false, timeout: 240_000 });
    const set = await cli(['node', 'set', vm.mac, 'power.kind=ssh', `power.host=${ip}`, `power.keyFile=${key}`, `power.knownHostsFile=${knownHosts}`], false);
    assert.equal(set.exitCode, 0, String(set.stderr));
    // ssh runs where the node is reachable: inside the lab namespace, like the head node.
    const status = await cli(['node', 'power', vm.mac, 'status', '--json'], true);
    assert.equal(status.exitCode, 0, `${String(status.stderr)}\n${diagnose()}`);
    assert.deepEqual(JSON.parse(String(status.stdout)), { node: first.id, action: 'status', driver: 'ssh', state: 'on' });

    const bootsBefore = firmwareStarts(vm);
    const checkinsBefore = checkinsOf(first).length;
    const cycledAt = Date.now();
    const power = await cli(['node', 'power', vm.mac, 'cycle', '--json'], true);
    assert.equal(power.exitCode, 0, `${String(power.stderr)}\n${diagnose()}`);
    // After the node went down: `unknown` while it boots, `on` once its sshd is back (a quick VM).
    const cycled = JSON.parse(String(power.stdout)) as { state: string };
    assert.deepEqual({ ...cycled, state: undefined }, { node: first.id, action: 'cycle', driver: 'ssh', state: undefined });
    assert.ok(['unknown', 'on'].includes(cycled.state), cycled.state);
    const again = await waitFor(`${vm.name} to check in again after the ssh reboot`, 200_000, () => {
      const n = node();
      return n && checkinsOf(n).length > checkinsBefore ? n : undefined;
    }, diagnose);
    t.diagnostic(`checked in again ${((Date.now() - cycledAt) / 1000).toFixed(1)} s after node power cycle`);
    assert.equal(again.id, first.id);
    assert.ok(firmwareStarts(vm) > bootsBefore, `the firmware started again (${bootsBefore} -> ${firmwareStarts(vm)})`);
    // busybox reboot signalled PID 1, the platform's init, which rebooted the machine.
    assert.match(plainConsole(vm.serialLog), /fleetboot-test-platform: reboot\n/);
    // The power event is written once the driver is done (after its status read), which a quick
    // VM's new check-in can beat: its place on the timeline is not checked, its content is.
    const powerEvents = store!.events.timeline(first.id).filter((e) => e.event === 'power');
    assert.deepEqual(powerEvents.at(-1)!.detail, { action: 'cycle', driver: 'ssh', state: cycled.state });
    const material = readFileSync(key, 'utf8').split('\n')[1]!;
    assert.ok(!String(power.stdout).includes(material) && !String(power.stderr).includes(material), 'no key material in the output');
    const headLog = join(dir!, 'headnode.log');
    assert.ok(!existsSync(headLog) || !readFileSync(headLog, 'utf8').includes(material), 'nor in the head node log');
  });
});
