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
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { execa } from 'execa';
import { addTap, createLabNetwork, deleteLabNetwork } from '../../src/lab/network.ts';
import { labMac, ovmfCode, ovmfVars, prepareVm } from '../../src/lab/vm.ts';
import { parseMac } from '../../src/mac.ts';
import { reportedModulesMatch } from '../../src/nodeconfig/render.ts';
import { storedSysinfoSchema } from '../../src/nodeconfig/sysinfo.ts';
import { Store } from '../../src/store/store.ts';
import type { StandaloneKeySummary } from '../../src/usb/standalone.ts';
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

const sha1 = (s: string): string => createHash('sha1').update(s).digest('hex');
const subnet = '10.99.61';
const headAddress = `${subnet}.1`;
const headUrl = `http://${headAddress}:8080`;
const stamp = 'fleetboot-test-A';
const vms = [
  { name: 'node0', firmware: 'bios', mac: labMac(0), ip: `${subnet}.40`, tap: 'tap0' },
  { name: 'node1', firmware: 'uefi', mac: labMac(1), ip: `${subnet}.41`, tap: 'tap1' },
] as const;

interface KeyLab {
  dir: string;
  ns: string;
  configFile: string;
  /** `fleetboot --config <the lab's config> ARGS`, which must succeed. */
  cli: (args: string[]) => Promise<string>;
  /** Registers a machine by MAC (as a discovery boot or a first check-in would) and sets it up with a static admin address. */
  setUp: (vm: KeyVm) => Promise<void>;
  /** Sets up each VM's node and writes its key with `usb-image --standalone --platform STAMP --node MAC`. */
  nodeKeys: (vms: readonly KeyVm[], stamp: string) => Promise<{ vm: KeyVm; key: string }[]>;
  /** Boots each key in a lab VM (index i: labMac(i), tap<i>); returns their serial logs. */
  boot: (keys: { vm: KeyVm; key: string }[]) => Promise<string[]>;
  children: ChildProcess[];
  elapsed: () => string;
}

interface KeyVm {
  name: string;
  firmware: 'bios' | 'uefi';
  mac: string;
  ip: string;
  tap: string;
}

/** A lab network with no DHCP, TFTP or head node on it, a config for `fleetboot` and VMs that boot USB keys. */
async function keyLab(t: TestContext, tag: string): Promise<KeyLab> {
  const started = Date.now();
  const elapsed = (): string => `${((Date.now() - started) / 1000).toFixed(1)} s`;
  const ns = testNamespace(tag);
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
  mkdirSync(join(dir, 'var'), { recursive: true });
  const cli = async (args: string[]): Promise<string> => {
    const r = await execa(process.execPath, [cliPath, '--config', configFile, ...args], { cwd: dir, reject: false, timeout: 120_000 });
    assert.equal(r.exitCode, 0, `fleetboot ${args.join(' ')}:\n${r.stderr}\n${r.stdout}`);
    return r.stdout;
  };
  const setUp = async (vm: KeyVm): Promise<void> => {
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
  };
  const boot = async (keys: { vm: KeyVm; key: string }[]): Promise<string[]> => {
    await createLabNetwork(ns, headAddress, 24);
    const consoles: string[] = [];
    for (const [i, { vm, key }] of keys.entries()) {
      await addTap(ns, vm.tap);
      // The lab's own VM: its key on qemu-xhci as boot device 1, the NIC without its ROM.
      const lab = prepareVm(ns, dir, { index: i, firmware: vm.firmware, chainload: false, memoryMiB: 512, diskMiB: 64, timeoutSeconds: 540, usbKey: key, nicRom: false }, 61);
      assert.equal(lab.mac, vm.mac);
      assert.equal(lab.tap, vm.tap);
      consoles.push(lab.serialLog);
      const child = spawn(lab.argv[0]!, lab.argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
      child.once('exit', (code) => t.diagnostic(`${vm.name} QEMU exited (${code}) at ${elapsed()}${stderr ? `: ${stderr.trim()}` : ''}`));
      children.push(child);
    }
    return consoles;
  };
  const nodeKeys = async (list: readonly KeyVm[], platform: string): Promise<{ vm: KeyVm; key: string }[]> => {
    const keys: { vm: KeyVm; key: string }[] = [];
    for (const vm of list) {
      await setUp(vm);
      const key = join(dir, `${vm.name}.key`);
      await cli(['usb-image', '--standalone', '--platform', platform, '--node', vm.mac, '--out', key]);
      keys.push({ vm, key });
    }
    return keys;
  };
  return { dir, ns, configFile, cli, setUp, nodeKeys, boot, children, elapsed };
}

const consoleTails = (vms: readonly KeyVm[], consoles: string[]) => (): string =>
  vms.map((vm, i) => `--- ${vm.name} console (last 25 lines):\n${plainConsole(consoles[i]!).split('\n').slice(-25).join('\n')}`).join('\n');

test('standalone keys boot the Linux test platform from USB with no network boot, come up on their static addresses, and check in once the head node runs', { skip, timeout: 600_000 }, async (t) => {
  const lab = await keyLab(t, 'usbkey');
  const { dir, ns, elapsed } = lab;
  const platformDir = await buildPlatform('A');
  await lab.cli(['platform', 'import', platformDir]);
  const keys = await lab.nodeKeys(vms, stamp);
  t.diagnostic(`keys built at ${elapsed()}`);
  const consoles = await lab.boot(keys);
  const diagnose = consoleTails(vms, consoles);
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

  const head = spawn('ip', ['netns', 'exec', ns, process.execPath, cliPath, '--config', lab.configFile, 'serve'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let headOut = '';
  head.stdout!.on('data', (b: Buffer) => (headOut += b.toString()));
  head.stderr!.on('data', (b: Buffer) => (headOut += b.toString()));
  lab.children.unshift(head);
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
    // The agent prints its line once the head node's answer is back, just after the registry has it.
    await waitFor(`${vm.name}'s agent to say it checked in`, 30_000, () => plainConsole(consoles[i]!).includes(`checked in to ${headUrl}`), diagnose);
    assert.equal(node.nics.find((n) => n.isAdmin)?.ip, vm.ip);
  }
});

const multibootNeeds = requires({ commands: ['gcc', 'ld', 'tar'] });
const kernelSources = join(import.meta.dirname, 'multiboot-kernel');

/** Compiles the multiboot test kernel (multiboot-kernel/) into `dir/unix`. */
async function multibootKernel(dir: string): Promise<string> {
  const out = join(dir, 'unix');
  const cc = async (args: string[]): Promise<void> => {
    const r = await execa(args[0]!, args.slice(1), { reject: false });
    assert.equal(r.exitCode, 0, `${args.join(' ')}:\n${r.stderr}`);
  };
  await cc(['gcc', '-m32', '-ffreestanding', '-fno-pic', '-fno-stack-protector', '-O1', '-c', join(kernelSources, 'mbkernel.c'), '-o', join(dir, 'k.o')]);
  await cc(['gcc', '-m32', '-c', join(kernelSources, 'entry.S'), '-o', join(dir, 'e.o')]);
  await cc(['ld', '-m', 'elf_i386', '--no-warn-rwx-segments', '-T', join(kernelSources, 'link.ld'), '-o', out, join(dir, 'e.o'), join(dir, 'k.o')]);
  return out;
}

test("a SmartOS platform key's loaders hand the kernel the network boot's -B line and every module with its type, name and bytes (syslinux mboot.c32 under SeaBIOS, GRUB multiboot2 under OVMF)", { skip: skip || multibootNeeds, timeout: 600_000 }, async (t) => {
  const lab = await keyLab(t, 'usbsmartos');
  const { dir, elapsed } = lab;
  // A SmartOS platform tarball in smartos-live's layout whose unix is a multiboot kernel that
  // prints what its loader handed it: illumos dboot reads the same multiboot information.
  const smartos = '20260101T000000Z';
  const top = join(dir, 'tarball', `platform-${smartos}`);
  mkdirSync(join(top, 'i86pc', 'kernel', 'amd64'), { recursive: true });
  mkdirSync(join(top, 'i86pc', 'amd64'), { recursive: true });
  mkdirSync(join(top, 'etc', 'version'), { recursive: true });
  copyFileSync(await multibootKernel(dir), join(top, 'i86pc', 'kernel', 'amd64', 'unix'));
  const archive = 'fleetboot test boot_archive\n';
  writeFileSync(join(top, 'i86pc', 'amd64', 'boot_archive'), archive);
  writeFileSync(join(top, 'i86pc', 'amd64', 'boot_archive.hash'), `${sha1(archive)}\n`);
  writeFileSync(join(top, 'etc', 'version', 'platform'), `${smartos}\n`);
  const tarball = join(dir, `platform-${smartos}.tgz`);
  const tar = await execa('tar', ['-C', join(dir, 'tarball'), '-czf', tarball, `platform-${smartos}`], { reject: false });
  assert.equal(tar.exitCode, 0, tar.stderr);
  await lab.cli(['platform', 'import', tarball]);

  const keys = await lab.nodeKeys(vms, smartos);
  const consoles = await lab.boot(keys);
  const diagnose = consoleTails(vms, consoles);
  for (const [i, vm] of vms.entries()) {
    await waitFor(`${vm.name} (${vm.firmware}) to run the key's kernel`, 300_000, () => plainConsole(consoles[i]!).includes('mbtest: done'), diagnose);
    t.diagnostic(`${vm.name} (${vm.firmware}) ran the kernel at ${elapsed()}`);
    const listed = JSON.parse(await lab.cli(['usb-image', '--list', keys[i]!.key, '--json'])) as { standalone: StandaloneKeySummary; files: { path: string; text?: string }[] };
    const printed = plainConsole(consoles[i]!).split('\n');
    const cmdline = printed.find((l) => / cmdline /.test(l) && l.startsWith('mbtest: multiboot'))!;
    assert.ok(cmdline, diagnose());
    assert.match(cmdline, vm.firmware === 'bios' ? /^mbtest: multiboot1 / : /^mbtest: multiboot2 /);
    // The kernel's path, then -B with the boot args a network boot gives this node; under GRUB
    // the values needing quotes come in the environment module instead (src/usb/standalone.ts).
    const mode = 'ttya-mode="115200,8,n,1,-"';
    const bios = `${listed.standalone.kernel} ${listed.standalone.kernelArgs}`;
    assert.ok(bios.includes(`,${mode},`));
    const args = cmdline.replace(/^mbtest: multiboot\d cmdline /, '');
    assert.equal(args, vm.firmware === 'bios' ? bios : bios.replace(`,${mode}`, ''));
    assert.match(args, new RegExp(`^/platform/i86pc/kernel/amd64/unix -B console=ttya,(${mode.replace(/[",]/g, '.')},)?admin_nic=${vm.mac},hostname=${vm.name},smartos=true,`));
    for (const arg of [`fleetboot_url=${headUrl}`, /^fleetboot_node=\d+$/, /^fleetboot_token=[\w-]{20,}$/]) {
      assert.ok(args.split(' ')[2]!.split(',').some((a) => (typeof arg === 'string' ? a === arg : arg.test(a))), `${String(arg)} in ${args}`);
    }
    const modules = printed.filter((l) => l.startsWith('mbtest: module ')).map((l) => /^mbtest: module (.*) data (.*)$/.exec(l)!.slice(1) as [string, string]);
    const expected = [...listed.standalone.modules];
    if (vm.firmware === 'uefi') expected.splice(2, 0, '/fleetboot/boot.env type=environment name=environment');
    assert.deepEqual(modules.map(([m]) => m), expected);
    const networking = listed.files.find((f) => f.path === 'fleetboot/node/networking.json')!.text!;
    const head = (path: string): string => listed.files.find((f) => f.path === path)!.text!.replace(/\n/g, ' ').slice(0, 48).trim();
    assert.deepEqual(
      modules.map(([m, data]) => [m.split(' ').slice(1).join(' '), data.trim()]),
      [
        ['type=rootfs name=ramdisk', archive.trim()],
        ['type=hash name=ramdisk', sha1(archive)],
        // The kernel prints a module up to its first NUL: the environment's first pair.
        ...(vm.firmware === 'uefi' ? [['type=environment name=environment', 'ttya-mode=115200,8,n,1,-']] : []),
        ['type=file name=networking.json', head('fleetboot/node/networking.json')],
        ['type=hash name=networking.json', sha1(networking)],
        ['type=file name=answers.json', head('fleetboot/node/answers.json')],
        ['type=file name=node.json', head('fleetboot/node/node.json')],
      ],
    );
  }
});
