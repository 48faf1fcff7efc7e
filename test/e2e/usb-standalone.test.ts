// End to end: the platform key (`fleetboot usb-image --standalone --platform STAMP --node NODE`)
// boots the lab's Linux test platform from a USB stick in QEMU with no network boot at all:
// the NIC's option ROM is removed (`romfile=`), no DHCP server runs on the segment and the
// head node is not running while the VMs boot. Two VMs at once, one key each:
//   node0: SeaBIOS, the key's syslinux;   node1: OVMF, the key's GRUB (EFI/BOOT/BOOTX64.EFI).
// Each comes up with the static address of its networking.json (its console says so and the
// address answers pings from the lab namespace); once `fleetboot serve` starts, each checks
// in on the key's platform with the module hashes fleetboot serves.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { execa } from 'execa';
import { addTap, createLabNetwork, deleteLabNetwork } from '../../src/lab/network.ts';
import { labMac, ovmfCode, ovmfVars, prepareVm } from '../../src/lab/vm.ts';
import { parseMac } from '../../src/mac.ts';
import { reportedModulesMatch } from '../../src/nodeconfig/render.ts';
import { storedSysinfoSchema } from '../../src/nodeconfig/sysinfo.ts';
import { Store } from '../../src/store/store.ts';
import { cliPath, tempDir, testNamespace } from '../fixtures.ts';
import { labBootNeeds, requires } from '../requires.ts';
import { buildPlatform, plainConsole, waitFor } from './lab-fixtures.ts';

const skip = requires({
  ...labBootNeeds,
  commands: [
    ...(labBootNeeds.commands ?? []),
    ovmfCode,
    ovmfVars,
    'mkfs.vfat',
    'mcopy',
    'syslinux',
    '/usr/lib/syslinux/mbr/mbr.bin',
    '/usr/lib/syslinux/modules/bios/mboot.c32',
    'grub-mkimage',
    '/usr/lib/grub/x86_64-efi/linux.mod',
  ],
});

const subnet = '10.99.61';
const headAddress = `${subnet}.1`;
const headUrl = `http://${headAddress}:8080`;
const stamp = 'fleetboot-test-A';
const vms = [
  { name: 'node0', firmware: 'bios', mac: labMac(0), ip: `${subnet}.40`, tap: 'tap0' },
  { name: 'node1', firmware: 'uefi', mac: labMac(1), ip: `${subnet}.41`, tap: 'tap1' },
] as const;

test('standalone keys boot the Linux test platform from USB with no network boot, come up on their static addresses, and check in once the head node runs', { skip, timeout: 600_000 }, async (t) => {
  const started = Date.now();
  const elapsed = (): string => `${((Date.now() - started) / 1000).toFixed(1)} s`;
  const ns = testNamespace('usbkey');
  const children: ChildProcess[] = [];
  // Registered before the temporary folder's own hook, so the processes end before it goes.
  t.after(async () => {
    for (const c of children) {
      if (c.exitCode === null && c.signalCode === null) {
        const gone = new Promise((r) => c.once('exit', r));
        c.kill('SIGTERM');
        await Promise.race([gone, new Promise((r) => setTimeout(r, 10_000))]);
        if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      }
    }
    await deleteLabNetwork(ns);
  });
  const dir = tempDir(t);

  const platformDir = await buildPlatform('A');
  const configFile = join(dir, 'fleetboot.json');
  writeFileSync(
    configFile,
    JSON.stringify({
      dataDir: './var',
      platformImagesDir: './platform-images',
      // HTTP only: no DHCP or TFTP answers on the lab segment, so nothing but the key can boot a VM.
      http: { listen: headAddress, port: 8080, publicUrl: headUrl },
      dhcp: { mode: 'off' },
      tftp: { enabled: false },
      log: { level: 'info' },
    }),
  );
  const cli = async (args: string[]): Promise<string> => {
    const r = await execa(process.execPath, [cliPath, '--config', configFile, ...args], { cwd: dir, reject: false, timeout: 120_000 });
    assert.equal(r.exitCode, 0, `fleetboot ${args.join(' ')}:\n${r.stderr}\n${r.stdout}`);
    return r.stdout;
  };
  await cli(['platform', 'import', platformDir]);
  mkdirSync(join(dir, 'var'), { recursive: true });
  const keys: string[] = [];
  for (const vm of vms) {
    // The machines were racked and registered before (a discovery boot, or a check-in).
    const store = Store.open(Store.fileIn(join(dir, 'var')));
    try {
      store.nodes.discover({ mac: parseMac(vm.mac)! });
    } finally {
      store.close();
    }
    const networkFile = join(dir, `${vm.name}.json`);
    writeFileSync(
      networkFile,
      JSON.stringify({
        hostname: vm.name,
        dnsDomain: 'lab.test',
        resolvers: [headAddress],
        nics: [{ mac: vm.mac, tags: ['admin'] }],
        interfaces: [{ tag: 'admin', ip: vm.ip, netmask: '255.255.255.0', gateway: headAddress }],
      }),
    );
    await cli(['node', 'setup', vm.mac, '--network', networkFile]);
    const key = join(dir, `${vm.name}.key`);
    await cli(['usb-image', '--standalone', '--platform', stamp, '--node', vm.mac, '--out', key]);
    keys.push(key);
  }
  t.diagnostic(`keys built at ${elapsed()}`);

  await createLabNetwork(ns, headAddress, 24);
  const consoles: string[] = [];
  for (const [i, vm] of vms.entries()) {
    await addTap(ns, vm.tap);
    // The lab's own VM: its key on qemu-xhci as boot device 1, the NIC without its ROM.
    const lab = prepareVm(ns, dir, { index: i, firmware: vm.firmware, chainload: false, memoryMiB: 512, diskMiB: 64, timeoutSeconds: 540, usbKey: keys[i]!, nicRom: false }, 61);
    assert.equal(lab.mac, vm.mac);
    assert.equal(lab.tap, vm.tap);
    consoles.push(lab.serialLog);
    const child = spawn(lab.argv[0]!, lab.argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    child.once('exit', (code) => t.diagnostic(`${vm.name} QEMU exited (${code}) at ${elapsed()}${stderr ? `: ${stderr.trim()}` : ''}`));
    children.push(child);
  }
  const diagnose = (): string => vms.map((vm, i) => `--- ${vm.name} console (last 25 lines):\n${plainConsole(consoles[i]!).split('\n').slice(-25).join('\n')}`).join('\n');

  // From inside: each VM's init took its address from the key's /networking.json (no DHCP here).
  for (const [i, vm] of vms.entries()) {
    await waitFor(`${vm.name} (${vm.firmware}) up on ${vm.ip} from its key`, 300_000, () => new RegExp(`static ${vm.ip.replace(/\./g, '\\.')}/24 on \\w+ from /networking\\.json`).test(plainConsole(consoles[i]!)), diagnose);
    t.diagnostic(`${vm.name} (${vm.firmware}) on ${vm.ip} at ${elapsed()}`);
  }
  // From outside: the configured addresses answer on the lab segment.
  for (const vm of vms) {
    let answered = false;
    for (let n = 0; n < 30 && !answered; n++) {
      answered = (await execa('ip', ['netns', 'exec', ns, '/bin/busybox', 'ping', '-c', '1', '-W', '1', vm.ip], { reject: false })).exitCode === 0;
    }
    assert.ok(answered, `${vm.ip} (${vm.name}) answers ping from the lab namespace\n${diagnose()}`);
  }
  // The head node has not been running: each agent is still waiting for it.
  for (const [i, vm] of vms.entries()) {
    await waitFor(`${vm.name} waiting for the head node`, 120_000, () => plainConsole(consoles[i]!).includes(`head node ${headUrl} not reachable yet`), diagnose);
  }

  const head = spawn('ip', ['netns', 'exec', ns, process.execPath, cliPath, '--config', configFile, 'serve'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let headOut = '';
  head.stdout!.on('data', (b: Buffer) => (headOut += b.toString()));
  head.stderr!.on('data', (b: Buffer) => (headOut += b.toString()));
  children.unshift(head);
  t.diagnostic(`head node started at ${elapsed()}`);

  for (const [i, vm] of vms.entries()) {
    const node = await waitFor(
      `${vm.name} to check in on ${stamp}`,
      180_000,
      () => {
        const store = Store.open(Store.fileIn(join(dir, 'var')));
        try {
          const n = store.nodes.find(vm.mac);
          return n && n.state === 'running' && n.currentPlatform === stamp ? n : null;
        } finally {
          store.close();
        }
      },
      () => `${diagnose()}\n--- head node output (last 15 lines):\n${headOut.split('\n').slice(-15).join('\n')}`,
    );
    t.diagnostic(`${vm.name} checked in at ${elapsed()}`);
    // What a rollout checks: the modules the node booted with are the ones fleetboot serves it.
    assert.ok(reportedModulesMatch(node, { rootPassword: null, ntpHost: null }), `${vm.name} booted with the config modules fleetboot serves: ${JSON.stringify(storedSysinfoSchema.parse(node.sysinfo).modules)}`);
    assert.match(storedSysinfoSchema.parse(node.sysinfo).modules['networking.json'] ?? '', /^[0-9a-f]{40}$/);
    assert.ok(plainConsole(consoles[i]!).includes(`checked in to ${headUrl}`), `${vm.name}'s agent says it checked in`);
    assert.equal(node.nics.find((n) => n.isAdmin)?.ip, vm.ip);
  }
});
