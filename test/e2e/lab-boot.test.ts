// End to end: real QEMU VMs PXE-boot from a real head node (`fleetboot serve` as a child
// process) inside a network namespace made for this test (fleetboot lab). Two VMs boot at the
// same time to keep the group inside its time budget on two cores:
//   node0: SeaBIOS + QEMU's iPXE NIC ROM (the lab path: DHCP -> HTTP stage1 directly);
//   node1: OVMF with a NIC without the iPXE ROM (the real-hardware path: firmware PXE ->
//          TFTP snponly.efi -> iPXE -> HTTP), docs/netboot-notes.md pitfall 5.
// Both boot the lab's Linux test platform (lab/build-test-platform.sh), whose init runs the
// node agent fetched from the head node. Needs root, qemu-system-x86_64, OVMF and the Debian
// kernel package (downloaded once into ./lab-build/cache).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { labDown, labPowerDriver, labUp, startVms } from '../../src/lab/lab.ts';
import type { LabState, LabVm } from '../../src/lab/state.ts';
import { ovmfCode, ovmfVars } from '../../src/lab/vm.ts';
import type { Mac } from '../../src/mac.ts';
import type { BootEvent } from '../../src/store/events.ts';
import type { NodeRecord } from '../../src/store/nodes.ts';
import { Store } from '../../src/store/store.ts';
import { currentNodeToken, nodeKeysIn } from '../../src/nodeconfig/secrets.ts';
import { testNamespace } from '../fixtures.ts';
import { labBootNeeds, requires } from '../requires.ts';
import { buildPlatform, labCli, labDiagnosis, plainConsole, waitFor } from './lab-fixtures.ts';

const skip = requires({
  ...labBootNeeds,
  // The UEFI chainload VM: OVMF, and snponly.efi over TFTP; curl fetches modules inside the namespace.
  commands: [...(labBootNeeds.commands ?? []), ovmfCode, ovmfVars, '/usr/lib/ipxe/snponly.efi', 'curl'],
});

const started = Date.now();
const elapsed = (): string => `${((Date.now() - started) / 1000).toFixed(1)} s`;

/** Event kinds in boot order; a step may repeat (several initrds), never go back. */
const stepOrder = ['dhcp', 'tftp', 'script', 'kernel', 'initrd', 'checkin'] as const;
type Step = (typeof stepOrder)[number];
function stepOf(e: BootEvent): Step | null {
  if (e.event.startsWith('dhcp_')) return 'dhcp';
  if (e.event === 'tftp_get') return 'tftp';
  if (e.event === 'script' || e.event === 'kernel' || e.event === 'initrd' || e.event === 'checkin') return e.event;
  if (e.event === 'module' || e.event === 'file') return 'initrd'; // config modules ride as named initrds
  return null;
}

/**
 * The events of the node's most recent boot: from the firmware's first DHCP/TFTP step before
 * the last boot script, to the last check-in. (The booted OS's own DHCP sits between its initrds
 * and its check-in.)
 */
function lastBoot(events: BootEvent[]): BootEvent[] {
  const checkin = events.findLastIndex((e) => e.event === 'checkin');
  const script = events.slice(0, checkin + 1).findLastIndex((e) => e.event === 'script');
  let start = events.slice(0, script).findLastIndex((e) => stepOf(e) === 'dhcp');
  if (checkin < 0 || script < 0 || start < 0) return [];
  while (start > 0 && (stepOf(events[start - 1]!) === 'dhcp' || stepOf(events[start - 1]!) === 'tftp')) start--;
  return events.slice(start, checkin + 1);
}

function assertInOrder(events: BootEvent[], expected: Step[], label: string): void {
  const steps = events.map(stepOf).filter((s): s is Step => s !== null);
  const seen = steps.filter((s, i) => i === 0 || s !== steps[i - 1]);
  let at = -1;
  for (const step of expected) {
    const next = seen.indexOf(step, at + 1);
    assert.ok(next > at, `${label}: step ${step} missing or out of order in ${JSON.stringify(seen)}`);
    at = next;
  }
  // From the boot script on, nothing goes back: kernel, then initrds and modules, then the
  // check-in (the booted OS's own DHCP aside).
  const afterScript = seen.slice(seen.lastIndexOf('script')).filter((s) => s !== 'dhcp');
  assert.deepEqual(
    afterScript,
    [...afterScript].sort((x, y) => stepOrder.indexOf(x) - stepOrder.indexOf(y)),
    `${label}: steps after the boot script out of order: ${JSON.stringify(seen)}`,
  );
}

describe('e2e: QEMU lab PXE boot', { skip, timeout: 300_000 }, () => {
  let dir: string;
  let lab: LabState;
  let store: Store;
  let platformA: string;
  let platformB: string;
  let bios: LabVm;
  let uefi: LabVm;
  const ns = testNamespace('e2e1');
  const cli = labCli(() => lab, () => dir);
  const diagnose = (): string => labDiagnosis(dir, [bios, uefi]);

  const node = (vm: LabVm): NodeRecord | undefined => store.nodes.findByMac(vm.mac as Mac);

  /**
   * The config modules the agent found in its initramfs root (put there by iPXE) against what
   * fleetboot serves to that node: same SHA-1 for each, and the hash module matches.
   */
  const assertModulesAsServed = async (vm: LabVm, running: NodeRecord, hostname: string, opts: { firstBoot: boolean }): Promise<void> => {
    // What the agent found in / (put there by iPXE `initrd --name`) against what fleetboot serves:
    // fetch each module the way the node does, with the node's token. A script asked for from
    // the head node's address carries no token (it is not the node's), so derive it from the
    // head node's key the way the boot plan does.
    const reported = (running.sysinfo as { modules: Record<string, string> }).modules;
    assert.ok(reported['networking.json'], `agent reported modules ${JSON.stringify(reported)}`);
    const script = await execa('ip', ['netns', 'exec', ns, 'curl', '-fsS', `http://${lab.address}:${lab.httpPort}/boot/node.ipxe?mac=${vm.mac}&uuid=${vm.uuid}&arch=i386`]);
    assert.doesNotMatch(script.stdout, /fleetboot_token=/, 'a script for this MAC asked for by another address must not carry its token');
    const token = currentNodeToken(nodeKeysIn(join(dir, 'var')), running);
    // answers.json is a first-boot module: once the node runs it is no longer served, so only its
    // delivery is checked; the modules served on every boot must match byte for byte.
    if (opts.firstBoot) assert.ok(reported['answers.json'], 'the first boot after setup carried answers.json');
    for (const name of ['networking.json', 'node.json'].filter((m) => m in reported)) {
      const url = `http://${lab.address}:${lab.httpPort}/nodes/${vm.mac}/${name}`;
      const args = token ? ['-H', `Authorization: Bearer ${token}`] : [];
      const body = await execa('ip', ['netns', 'exec', ns, 'curl', '-fsS', ...args, url], { encoding: 'buffer', stripFinalNewline: false });
      const sha1 = createHash('sha1').update(body.stdout).digest('hex');
      assert.equal(reported[name], sha1, `${name}: the node booted with SHA-1 ${reported[name]}, fleetboot serves ${sha1}`);
      if (name === 'networking.json') {
        const hash = await execa('ip', ['netns', 'exec', ns, 'curl', '-fsS', ...args, `${url}.hash`]);
        assert.equal(hash.stdout.trim(), sha1, 'networking.json.hash is the SHA-1 of networking.json');
        assert.equal((JSON.parse(Buffer.from(body.stdout).toString('utf8')) as { hostname?: string }).hostname, hostname);
      }
    }
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fleetboot-e2e-'));
    [platformA, platformB] = await Promise.all([buildPlatform('A'), buildPlatform('B')]);
    lab = await labUp({
      dir,
      namespace: ns,
      nodes: 0,
      firmware: 'bios',
      chainload: false,
      subnet: '10.99.0.0/24',
      httpPort: 8080,
      memoryMiB: 512,
      diskMiB: 2048,
      vmTimeoutSeconds: 240,
      logLevel: 'info',
      platforms: [platformA, platformB], // A is the default: unknown nodes boot it to register
      progress: () => undefined,
    });
    store = Store.open(Store.fileIn(join(dir, 'var')));
    const common = { memoryMiB: 512, diskMiB: 2048, vmTimeoutSeconds: 240, progress: () => undefined };
    bios = (await startVms(lab, { ...common, firmware: 'bios', chainload: false }, 0, 1))[0]!;
    uefi = (await startVms(lab, { ...common, firmware: 'uefi', chainload: true }, 1, 1))[0]!;
  });

  after(async () => {
    store?.close();
    if (dir) {
      await labDown(dir);
      rmSync(dir, { recursive: true, force: true });
    }
    const left = await execa('ip', ['netns', 'list'], { reject: false });
    assert.ok(!left.stdout.includes(ns), `namespace ${ns} left behind`);
  });

  it('an unknown BIOS VM PXE-boots, is discovered, checks in and shows in `node list` with MAC, UUID, RAM and disks', async (t) => {
    const checkedIn = await waitFor(`${bios.name} to check in`, 150_000, () => {
      const n = node(bios);
      return n && n.lastSeen !== null ? n : undefined;
    }, diagnose);
    t.diagnostic(`BIOS VM discovered and checked in after ${elapsed()}`);
    assert.equal(checkedIn.state, 'discovered');
    const list = await cli(['node', 'list', '--json']);
    assert.equal(list.exitCode, 0, list.stderr);
    const text = list.stdout;
    assert.ok(text.includes(bios.mac), `node list shows ${bios.mac}:\n${text}`);
    assert.ok(text.includes(bios.uuid), `node list shows UUID ${bios.uuid}:\n${text}`);
    const shown = await cli(['node', 'show', bios.mac, '--json']);
    assert.equal(shown.exitCode, 0, shown.stderr);
    const sysinfo = checkedIn.sysinfo as { ramBytes: number; disks: { name: string; sizeBytes: number }[]; uuid: string | null };
    assert.equal(sysinfo.uuid, bios.uuid);
    // 512 MiB of VM RAM, less what the firmware and kernel keep.
    assert.ok(sysinfo.ramBytes > 300 * 2 ** 20 && sysinfo.ramBytes <= 512 * 2 ** 20, `RAM ${sysinfo.ramBytes}`);
    assert.deepEqual(sysinfo.disks.map((d) => [d.name, d.sizeBytes]), [['vda', 2048 * 2 ** 20]]);
    assert.ok(shown.stdout.includes('"ramBytes"') && shown.stdout.includes('vda'), `node show lists RAM and disks:\n${shown.stdout}`);
  });

  it('set up with a network config, it power-cycles over QMP and runs its assigned platform with the modules fleetboot rendered', async (t) => {
    const n = node(bios)!;
    const networkFile = join(dir, 'node0-network.json');
    writeFileSync(
      networkFile,
      JSON.stringify({
        hostname: 'lab0',
        dnsDomain: 'lab.example',
        resolvers: ['10.99.0.1'],
        nics: [{ mac: bios.mac, tags: ['admin'] }],
        interfaces: [{ tag: 'admin', ip: '10.99.0.50', netmask: '255.255.255.0', gateway: '10.99.0.1' }],
      }),
    );
    const setup = await cli(['node', 'setup', bios.mac, '--network', networkFile]);
    assert.equal(setup.exitCode, 0, `node setup: ${setup.stderr}`);
    const assign = await cli(['node', 'set-platform', bios.mac, 'fleetboot-test-B']);
    assert.equal(assign.exitCode, 0, `node set-platform: ${assign.stderr}`);

    const cycledAt = Date.now();
    const power = labPowerDriver(dir, bios.name);
    assert.equal(await power.status(), 'on');
    await power.powerCycle();
    const running = await waitFor(`${bios.name} to run fleetboot-test-B after the power cycle`, 150_000, () => {
      const cur = node(bios);
      return cur && cur.lastSeen !== null && cur.lastSeen > cycledAt && cur.state === 'running' ? cur : undefined;
    }, diagnose);
    t.diagnostic(`power cycle to running on B: ${((Date.now() - cycledAt) / 1000).toFixed(1)} s (total ${elapsed()})`);
    assert.equal(running.id, n.id);
    assert.equal(running.currentPlatform, 'fleetboot-test-B');
    assert.equal(running.bootPlatform, 'fleetboot-test-B');

    await assertModulesAsServed(bios, running, 'lab0', { firstBoot: true });
  });

  it('UEFI firmware PXE (no iPXE NIC ROM) chainloads iPXE over TFTP, then boots over HTTP and checks in', async (t) => {
    const checkedIn = await waitFor(`${uefi.name} to check in`, 150_000, () => {
      const n = node(uefi);
      return n && n.lastSeen !== null ? n : undefined;
    }, diagnose);
    t.diagnostic(`UEFI chainload VM checked in after ${elapsed()}`);
    const events = store.events.timeline(checkedIn.id);
    const tftp = events.filter((e) => e.event === 'tftp_get').map((e) => String(e.detail.file));
    assert.ok(tftp.some((f) => /(snponly|ipxe)\.efi$/.test(f)), `TFTP served an iPXE EFI binary: ${JSON.stringify(tftp)}`);
    const dhcp = events.filter((e) => e.event.startsWith('dhcp_'));
    assert.ok(dhcp.length >= 2, 'the firmware and then iPXE each ran DHCP');
    const console = plainConsole(uefi.serialLog);
    assert.match(console, /iPXE/, 'iPXE ran on the UEFI VM');
    assert.equal(checkedIn.currentPlatform, 'fleetboot-test-A');
  });

  it('a UEFI Linux node set up with a network config gets its modules through the EFI stub (initrd= + cpio) after a power cycle', async (t) => {
    const n = node(uefi)!;
    const networkFile = join(dir, 'node1-network.json');
    writeFileSync(
      networkFile,
      JSON.stringify({
        hostname: 'lab1',
        dnsDomain: 'lab.example',
        resolvers: ['10.99.0.1'],
        nics: [{ mac: uefi.mac, tags: ['admin'] }],
        interfaces: [{ tag: 'admin', ip: '10.99.0.51', netmask: '255.255.255.0', gateway: '10.99.0.1' }],
      }),
    );
    const setup = await cli(['node', 'setup', uefi.mac, '--network', networkFile]);
    assert.equal(setup.exitCode, 0, `node setup: ${setup.stderr}`);
    const cycledAt = Date.now();
    await labPowerDriver(dir, uefi.name).powerCycle();
    const running = await waitFor(`${uefi.name} to check in again after the power cycle`, 150_000, () => {
      const cur = node(uefi);
      return cur && cur.lastSeen !== null && cur.lastSeen > cycledAt && cur.state === 'running' ? cur : undefined;
    }, diagnose);
    t.diagnostic(`UEFI power cycle to running: ${((Date.now() - cycledAt) / 1000).toFixed(1)} s (total ${elapsed()})`);
    assert.equal(running.id, n.id);
    await assertModulesAsServed(uefi, running, 'lab1', { firstBoot: true });
  });

  it("each node's boot timeline shows DHCP, TFTP (chainload only), script, kernel, initrd/modules, check-in in order", (t) => {
    const biosBoot = lastBoot(store.events.timeline(node(bios)!.id));
    const show = (events: BootEvent[]): string => events.map((e) => (e.event === 'tftp_get' || e.event === 'module' ? `${e.event}(${String(e.detail.file ?? e.detail.name)})` : e.event)).join(' ');
    assertInOrder(biosBoot, ['dhcp', 'script', 'kernel', 'initrd', 'checkin'], 'BIOS');
    assert.ok(!biosBoot.some((e) => e.event === 'tftp_get'), 'the iPXE NIC ROM needs no TFTP');
    assert.ok(biosBoot.some((e) => e.event === 'module'), `config modules are in the BIOS node's boot: ${JSON.stringify(biosBoot.map((e) => e.event))}`);
    const uefiBoot = lastBoot(store.events.timeline(node(uefi)!.id));
    t.diagnostic(`BIOS boot: ${show(biosBoot)}`);
    t.diagnostic(`UEFI boot: ${show(uefiBoot)}`);
    assertInOrder(uefiBoot, ['dhcp', 'tftp', 'dhcp', 'script', 'kernel', 'initrd', 'checkin'], 'UEFI');
  });
});
