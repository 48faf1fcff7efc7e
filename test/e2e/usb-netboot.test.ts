// End to end: the netboot USB key (`fleetboot usb-image`) boots QEMU VMs whose NICs have no
// option ROM (`romfile=`), so the key is the only way into iPXE; each reaches the head node and
// checks in. Two labs run at once, each in its own namespace, to keep the group's wall time down:
//   lab "dhcp" (fleetboot's DHCP on): one DHCP key, whose first URL is a closed port, booted
//     under SeaBIOS and under OVMF as USB storage; both check in on their assigned platform;
//   lab "static" (fleetboot's DHCP off): a --static key booted under SeaBIOS and another under
//     OVMF; once each node has registered it is set up with its key's address, power-cycled, and
//     checks in from that address.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { labDown, labPowerDriver, labUp, startVms } from '../../src/lab/lab.ts';
import type { LabState, LabVm } from '../../src/lab/state.ts';
import { ovmfCode, ovmfVars } from '../../src/lab/vm.ts';
import type { Mac } from '../../src/mac.ts';
import type { NodeRecord } from '../../src/store/nodes.ts';
import { Store } from '../../src/store/store.ts';
import { syslinuxMbr } from '../../src/usb/disk.ts';
import { cliPath, testNamespace } from '../fixtures.ts';
import { labBootNeeds, requires } from '../requires.ts';
import { buildPlatform, labCli, labDiagnosis, plainConsole, waitFor } from './lab-fixtures.ts';

const skip = requires({
  ...labBootNeeds,
  commands: [...(labBootNeeds.commands ?? []), ovmfCode, ovmfVars, 'mkfs.vfat', 'mcopy', 'syslinux', syslinuxMbr, 'apt-get', 'dpkg-deb'],
});

const common = { memoryMiB: 512, diskMiB: 1024, vmTimeoutSeconds: 420, progress: () => undefined };

async function usbImage(cwd: string, args: string[]): Promise<void> {
  const r = await execa(process.execPath, [cliPath, 'usb-image', ...args], { cwd, reject: false, timeout: 180_000 });
  assert.equal(r.exitCode, 0, `usb-image ${args.join(' ')}: ${r.stderr}`);
}

describe('e2e: the netboot USB key under SeaBIOS and OVMF, with DHCP and with a static address', { skip, timeout: 600_000 }, () => {
  let dir: string;
  let dhcpLab: LabState;
  let staticLab: LabState;
  let dhcpStore: Store;
  let staticStore: Store;
  let bios: LabVm;
  let uefi: LabVm;
  let fixed: LabVm;
  let fixedUefi: LabVm;
  const nsDhcp = testNamespace('usbdhcp');
  const nsStatic = testNamespace('usbstatic');
  const dhcpDir = (): string => join(dir, 'lab-dhcp');
  const staticDir = (): string => join(dir, 'lab-static');
  const staticCli = labCli(() => staticLab, () => dir);
  const node = (store: Store, vm: LabVm): NodeRecord | undefined => store.nodes.findByMac(vm.mac as Mac);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fleetboot-e2e-usb-'));
    const platformA = await buildPlatform('A');
    // A closed port on the head node first: the key falls through to the next URL.
    await usbImage(dir, ['--out', join(dir, 'dhcp.img'), '--url', 'http://10.97.0.1:9', '--url', 'http://10.97.0.1:8080']);
    await usbImage(dir, ['--out', join(dir, 'static.img'), '--url', 'http://10.98.0.1:8080', '--static', '10.98.0.60/24', '--gateway', '10.98.0.1', '--dns', '10.98.0.1']);
    await usbImage(dir, ['--out', join(dir, 'static-uefi.img'), '--url', 'http://10.98.0.1:8080', '--static', '10.98.0.61/24', '--gateway', '10.98.0.1', '--dns', '10.98.0.1']);
    const labOptions = { nodes: 0, chainload: false, httpPort: 8080, memoryMiB: 512, diskMiB: 1024, vmTimeoutSeconds: 420, logLevel: 'info', platforms: [platformA], progress: () => undefined };
    [dhcpLab, staticLab] = await Promise.all([
      labUp({ ...labOptions, dir: dhcpDir(), namespace: nsDhcp, firmware: 'bios', subnet: '10.97.0.0/24' }),
      labUp({ ...labOptions, dir: staticDir(), namespace: nsStatic, firmware: 'bios', subnet: '10.98.0.0/24', dhcp: 'off' }),
    ]);
    dhcpStore = Store.open(Store.fileIn(join(dhcpDir(), 'var')));
    staticStore = Store.open(Store.fileIn(join(staticDir(), 'var')));
    const dhcpKey = join(dir, 'dhcp.img');
    bios = (await startVms(dhcpLab, { ...common, firmware: 'bios', chainload: false, usbKey: dhcpKey }, 0, 1))[0]!;
    uefi = (await startVms(dhcpLab, { ...common, firmware: 'uefi', chainload: false, usbKey: dhcpKey }, 1, 1))[0]!;
    fixed = (await startVms(staticLab, { ...common, firmware: 'bios', chainload: false, usbKey: join(dir, 'static.img') }, 0, 1))[0]!;
    fixedUefi = (await startVms(staticLab, { ...common, firmware: 'uefi', chainload: false, usbKey: join(dir, 'static-uefi.img') }, 1, 1))[0]!;
  });

  after(async () => {
    dhcpStore?.close();
    staticStore?.close();
    if (dir) {
      await Promise.all([labDown(dhcpDir()), labDown(staticDir())]);
      rmSync(dir, { recursive: true, force: true });
    }
    const left = await execa('ip', ['netns', 'list'], { reject: false });
    assert.ok(!left.stdout.includes(nsDhcp) && !left.stdout.includes(nsStatic), 'lab namespaces left behind');
  });

  it('every VM boots from the key: the NIC has no ROM and the key is its first boot device', () => {
    for (const vm of [bios, uefi, fixed, fixedUefi]) {
      const nic = vm.argv.find((a) => a.startsWith('virtio-net-pci,'))!;
      assert.match(nic, /romfile=$/, `${vm.name} NIC ${nic}`);
      assert.doesNotMatch(nic, /bootindex/);
      assert.ok(vm.argv.some((a) => /^usb-storage,.*bootindex=1$/.test(a)), `${vm.name} has the key as boot device 1`);
    }
  });

  const checksInFromKey = async (vm: LabVm, label: string): Promise<NodeRecord> => {
    const n = await waitFor(`${vm.name} (${label}) to check in`, 300_000, () => {
      const r = node(dhcpStore, vm);
      return r && r.lastSeen !== null ? r : undefined;
    }, () => labDiagnosis(dhcpDir(), [vm]));
    assert.equal(n.currentPlatform, 'fleetboot-test-A', `${label} checked in on its assigned platform`);
    const events = dhcpStore.events.timeline(n.id);
    assert.ok(events.some((e) => e.event === 'script'), 'it asked for its boot script');
    assert.deepEqual(events.filter((e) => e.event === 'tftp_get'), [], 'no firmware PXE: nothing came over TFTP');
    // Joined: the firmware console wraps at 80 columns.
    const console = plainConsole(vm.serialLog).replace(/\n/g, '');
    assert.match(console, /fleetboot key: DHCP on net0, head node http:\/\/10\.97\.0\.1:9 then http:\/\/10\.97\.0\.1:8080/, `${label}: the key's script ran`);
    assert.match(console, /http:\/\/10\.97\.0\.1:9\/boot\/stage1\.ipxe\.\.\. Connection (reset|refused)/, `${label}: the first URL was tried and refused`);
    assert.match(console, /http:\/\/10\.97\.0\.1:8080\/boot\/stage1\.ipxe\.\.\. ok/, `${label}: the second URL answered`);
    return n;
  };

  it('the DHCP key under SeaBIOS (syslinux -> ipxe.lkrn) falls through the closed first URL and checks in on its platform', async (t) => {
    await checksInFromKey(bios, 'SeaBIOS');
    t.diagnostic(`SeaBIOS key checked in`);
  });

  it('the DHCP key under OVMF (EFI/BOOT/BOOTX64.EFI runs autoexec.ipxe) checks in on its platform', async (t) => {
    await checksInFromKey(uefi, 'OVMF');
    t.diagnostic(`OVMF key checked in`);
  });

  /** Registers over the key's static address, is set up with it, and after a power cycle checks in from it. */
  const checksInStatic = async (vm: LabVm, ip: string, label: string): Promise<void> => {
    const registered = await waitFor(`${vm.name} (${label}) to ask for its boot script over the static address`, 300_000, () => node(staticStore, vm), () => labDiagnosis(staticDir(), [vm]));
    assert.match(plainConsole(vm.serialLog).replace(/\n/g, ''), new RegExp(`fleetboot key: static ${ip.replace(/\./g, '\\.')}/24 gateway 10\\.98\\.0\\.1 on net0`));
    const networkFile = join(dir, `${vm.name}-network.json`);
    writeFileSync(networkFile, JSON.stringify({
      hostname: `usbstatic${registered.id}`,
      dnsDomain: 'lab.example',
      resolvers: ['10.98.0.1'],
      nics: [{ mac: vm.mac, tags: ['admin'] }],
      interfaces: [{ tag: 'admin', ip, netmask: '255.255.255.0', gateway: '10.98.0.1' }],
    }));
    const setup = await staticCli(['node', 'setup', vm.mac, '--network', networkFile]);
    assert.equal(setup.exitCode, 0, `node setup: ${setup.stderr}`);
    const cycledAt = Date.now();
    await labPowerDriver(staticDir(), vm.name).powerCycle();
    const n = await waitFor(`${vm.name} (${label}) to check in from ${ip}`, 300_000, () => {
      const r = node(staticStore, vm);
      return r && r.lastSeen !== null && r.lastSeen > cycledAt ? r : undefined;
    }, () => labDiagnosis(staticDir(), [vm]));
    const nics = (n.sysinfo as { nics: { mac: string; ip: string | null }[] }).nics;
    assert.ok(nics.some((x) => x.mac === vm.mac && x.ip === ip), `${label}: the node reports its static address: ${JSON.stringify(nics)}`);
    assert.equal(n.currentPlatform, 'fleetboot-test-A');
    const events = staticStore.events.timeline(n.id);
    assert.deepEqual(events.filter((e) => e.event.startsWith('dhcp_') || e.event === 'tftp_get'), [], 'fleetboot answered no DHCP (it is off) and served nothing over TFTP');
  };

  it('the static keys on a network without DHCP, under SeaBIOS and OVMF: each node registers, is set up with its address, and checks in from it', async (t) => {
    await Promise.all([checksInStatic(fixed, '10.98.0.60', 'SeaBIOS'), checksInStatic(fixedUefi, '10.98.0.61', 'OVMF')]);
    t.diagnostic('both static keys checked in');
  });
});
