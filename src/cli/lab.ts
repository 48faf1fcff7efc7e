// `fleetboot lab <verb>`: the QEMU lab (root): up, status, console, down.
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { labPowerSpec } from '../lab/bmc.ts';
import { assignLabPower, defaultLabDir, defaultNamespace, defaultSubnet, findVm, labBmcKinds, labDhcpModes, labDown, labStatus, labUp, LabError, powerAssignments, type LabBmcKind, type LabDhcpMode } from '../lab/lab.ts';
import { readLossCounters } from '../lab/network.ts';
import { readLabState, firmwareSchema } from '../lab/state.ts';
import { cidrSchema } from '../config/schema.ts';
import { UsageError } from './errors.ts';
import { formatTable, printJson } from './output.ts';

interface UpOptions {
  nodes: string;
  firmware: string;
  chainload?: boolean;
  dir: string;
  namespace: string;
  subnet: string;
  port: string;
  memory: string;
  vmTimeout: string;
  detach?: boolean;
  platform?: string[];
  templates?: string;
  bmc: string;
  usbKey?: string;
  dhcp: string;
  loss?: string;
  maxConcurrentBoots?: string;
  dashboardPort?: string;
}

function requireRoot(): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new UsageError('the lab creates network namespaces and taps: run it as root (sudo)');
  }
}

function intOption(name: string, value: string, min: number, max: number): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < min || n > max) throw new UsageError(`${name} ${value}: expected a whole number from ${min} to ${max}`);
  return n;
}

function age(ms: number | null): string {
  if (ms === null) return '-';
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < 120 ? `${s}s ago` : `${Math.round(s / 60)}m ago`;
}

function printStatusTable(dir: string): boolean {
  const state = readLabState(dir);
  if (!state) return false;
  const rows = labStatus(state).map((v) => [
    v.name, v.mac, v.firmware, v.running ? 'on' : 'off',
    v.power.kind === 'ipmi' ? `ipmi ${v.power.host}:${v.power.port}${v.bmc?.running ? '' : ' (down)'}` : 'qemu',
    v.nodeId, v.state, v.currentPlatform, v.bootPlatform, age(v.lastSeen),
  ]);
  process.stdout.write(`${formatTable(['VM', 'MAC', 'FIRMWARE', 'POWER', 'DRIVER', 'NODE', 'STATE', 'PLATFORM', 'NEXT BOOT', 'LAST SEEN'], rows)}\n`);
  return true;
}

export function registerLab(program: Command): void {
  const lab = program
    .command('lab')
    .description('a QEMU lab on this machine (root): a namespace with a bridge, the head node, and VMs that PXE-boot from it')
    .addHelpText('after', '\nExamples:\n  sudo fleetboot lab up --nodes 2\n  sudo fleetboot lab status\n  sudo fleetboot lab console node0\n  sudo fleetboot lab down');

  lab
    .command('up')
    .description('create the lab network, start the head node inside it and boot N VMs; stays in the foreground until Ctrl-C unless --detach')
    .option('-n, --nodes <n>', 'how many VMs', '2')
    .option('--firmware <kind>', 'bios (SeaBIOS + iPXE NIC ROM) or uefi (OVMF)', 'bios')
    .option('--chainload', 'UEFI NICs without an iPXE ROM: firmware PXE fetches iPXE over TFTP (the real-hardware path)')
    .option('--dir <dir>', 'lab folder: state file, head-node config and registry, VM logs', defaultLabDir)
    .option('--namespace <name>', 'network namespace to create', defaultNamespace)
    .option('--subnet <cidr>', 'lab subnet (exists only inside the namespace)', defaultSubnet)
    .option('--port <port>', 'head node HTTP port on the lab address', '8080')
    .option('--memory <MiB>', 'RAM per VM', '512')
    .option('--vm-timeout <seconds>', 'each QEMU ends after this long (it runs under timeout)', '14400')
    .option('--platform <dir>', 'import this platform (folder with platform.json, or a tarball) before the VMs boot; repeatable, the first is the default. Without it: the lab test platform A (lab-build/platforms/fleetboot-test-A), built first when missing', (v: string, acc: string[] = []) => [...acc, v])
    .option('--templates <dir>', 'boot templates for the lab head node (try template changes); default: fleetboot\'s boot-templates/')
    .option('--bmc <kind>', "none, or ipmi: each VM gets a simulated BMC (OpenIPMI's ipmi_sim on the lab namespace's 127.0.0.1) that the ipmi power driver and ipmitool -I lanplus reach", 'none')
    .option('--usb-key <file>', 'every VM boots this USB key image first (fleetboot usb-image), its NIC without the iPXE ROM so the key is the only way in')
    .option('--dhcp <mode>', "full, or off: the head node serves no DHCP on the lab network (for a --static USB key)", 'full')
    .option('--loss <percent>', 'drop this percentage (1-99) of UDP and TCP packets on the lab bridge, both ways (nftables in the lab namespace): a lossy link')
    .option('--dashboard-port <port>', 'host port of the dashboard forward (127.0.0.1; default: --port, or a free one when taken)')
    .option('--max-concurrent-boots <n>', 'the head node lets at most N VMs fetch their platform at once; the others wait in iPXE and ask again (boot.admission)')
    .option('--detach', 'return once the VMs are started; `lab down` ends them')
    .addHelpText(
      'after',
      '\nExamples:\n  sudo fleetboot lab up --nodes 2                      # boots test platform A, building it first if needed\n  sudo fleetboot lab up --nodes 1 --firmware uefi --chainload --detach\n  sudo fleetboot lab up --nodes 1 --bmc ipmi --detach         # lab status --json: each VM\'s power spec\n  sudo fleetboot lab up --nodes 1 --firmware uefi --usb-key netboot.img\n  sudo fleetboot lab up --nodes 2 --loss 10 --detach              # lab status --json: the drops so far\n  sudo fleetboot lab up --nodes 3 --max-concurrent-boots 1        # one boots, two wait their turn\n  sudo fleetboot lab up --platform platform-20240101T000000Z.tgz --platform lab-build/platforms/fleetboot-test-B',
    )
    .action(async (opts: UpOptions) => {
      requireRoot();
      const firmware = firmwareSchema.safeParse(opts.firmware);
      if (!firmware.success) throw new UsageError(`--firmware ${opts.firmware}: expected bios or uefi`);
      if (!cidrSchema.safeParse(opts.subnet).success) throw new UsageError(`--subnet ${opts.subnet}: expected a CIDR subnet like 10.99.0.0/24`);
      if (!(labBmcKinds as readonly string[]).includes(opts.bmc)) throw new UsageError(`--bmc ${opts.bmc}: expected ${labBmcKinds.join(' or ')}`);
      if (!(labDhcpModes as readonly string[]).includes(opts.dhcp)) throw new UsageError(`--dhcp ${opts.dhcp}: expected ${labDhcpModes.join(' or ')}`);
      if (opts.usbKey !== undefined && !existsSync(opts.usbKey)) throw new UsageError(`--usb-key ${opts.usbKey}: no such file`);
      if (!/^[a-zA-Z0-9_.-]{1,64}$/.test(opts.namespace)) throw new UsageError(`--namespace ${opts.namespace}: letters, digits, '.', '_' and '-' only`);
      const dir = resolve(opts.dir);
      let state;
      try {
        state = await labUp({
          dir,
          namespace: opts.namespace,
          nodes: intOption('--nodes', opts.nodes, 0, 64),
          firmware: firmware.data,
          chainload: opts.chainload === true,
          subnet: opts.subnet,
          httpPort: intOption('--port', opts.port, 1, 65535),
          memoryMiB: intOption('--memory', opts.memory, 128, 16384),
          diskMiB: 1024,
          vmTimeoutSeconds: intOption('--vm-timeout', opts.vmTimeout, 10, 7 * 86400),
          logLevel: 'info',
          platforms: opts.platform ?? [],
          bmc: opts.bmc as LabBmcKind,
          dhcp: opts.dhcp as LabDhcpMode,
          ...(opts.usbKey !== undefined ? { usbKey: opts.usbKey } : {}),
          ...(opts.loss !== undefined ? { loss: intOption('--loss', opts.loss, 1, 99) } : {}),
          ...(opts.dashboardPort !== undefined ? { dashboardPort: intOption('--dashboard-port', opts.dashboardPort, 1, 65535) } : {}),
          ...(opts.maxConcurrentBoots !== undefined ? { admission: { maxConcurrentBoots: intOption('--max-concurrent-boots', opts.maxConcurrentBoots, 1, 100_000) } } : {}),
          ...(opts.templates ? { templatesDir: opts.templates } : {}),
          progress: (line) => process.stderr.write(`${line}\n`),
        });
      } catch (err) {
        if (err instanceof LabError) throw new UsageError(err.message);
        throw err;
      }
      if (opts.detach) {
        process.stdout.write(`lab up: ${state.vms.length} VM(s) booting in namespace ${state.namespace}; head node http://${state.address}:${state.httpPort}\n`);
        process.stdout.write(`  fleetboot lab status --dir ${dir}   |   fleetboot lab down --dir ${dir}\n`);
        for (const vm of state.vms) {
          // Detached, nothing here waits for the node to register: say how to give it its BMC.
          process.stdout.write(`  once ${vm.name} has registered: fleetboot --config ${state.configFile} node set ${vm.mac} ${powerAssignments(labPowerSpec(vm)).join(' ')}\n`);
        }
        if (state.vms.some((v) => v.bmc)) {
          process.stdout.write(`  the BMCs answer inside the lab namespace only: ip netns exec ${state.namespace} fleetboot --config ${state.configFile} node power NODE cycle\n`);
        }
        return;
      }
      process.stderr.write('lab: running; Ctrl-C stops the VMs and the head node and removes the lab\n');
      await new Promise<void>((resolveWait) => {
        let last = '';
        const timer = setInterval(() => {
          // A VM's node gets its power (the VM's BMC, else its QMP socket) once it has registered.
          for (const a of assignLabPower(state)) {
            const how = a.spec.kind === 'ipmi' ? `its BMC: ipmi ${a.spec.host}:${a.spec.port}` : `qemu ${a.spec.kind === 'qemu' ? a.spec.qmpSocket : ''}`;
            process.stderr.write(`lab: node ${a.nodeId} (${a.vm}) power set to ${how}\n`);
          }
          const lines = labStatus(state).map((v) => `${v.name} ${v.running ? 'on' : 'off'} ${v.state ?? 'booting'} ${v.currentPlatform ?? '-'}`).join(', ');
          if (lines !== last) process.stderr.write(`lab: ${lines}\n`);
          last = lines;
        }, 2000);
        const stop = (): void => {
          clearInterval(timer);
          resolveWait();
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      process.stderr.write('lab: stopping\n');
      await labDown(dir);
      process.stderr.write('lab: removed\n');
    });

  lab
    .command('status')
    .description('each lab VM with its MAC, power, node state and current platform')
    .option('--dir <dir>', 'lab folder', defaultLabDir)
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExamples:\n  sudo fleetboot lab status\n  sudo fleetboot lab status --json')
    .action(async (opts: { dir: string; json?: boolean }) => {
      const dir = resolve(opts.dir);
      const state = readLabState(dir);
      if (!state) throw new UsageError(`no lab in ${dir} (start one with 'fleetboot lab up')`);
      if (opts.json) {
        const loss = state.loss ? { percent: state.loss.percent, dropped: await readLossCounters(state.namespace) } : null;
        printJson({ namespace: state.namespace, headNode: `http://${state.address}:${state.httpPort}`, dashboard: state.dashboard ? `http://127.0.0.1:${state.dashboard.port}/` : null, loss, vms: labStatus(state) });
        return;
      }
      process.stdout.write(`namespace ${state.namespace}, head node http://${state.address}:${state.httpPort}${state.loss ? `, ${state.loss.percent}% packet loss on br0` : ''}\n`);
      if (state.dashboard) {
        process.stdout.write(`dashboard http://127.0.0.1:${state.dashboard.port}/ (a login link: fleetboot --config ${state.configFile} dashboard-url --base-url http://127.0.0.1:${state.dashboard.port})\n`);
      }
      printStatusTable(dir);
    });

  lab
    .command('console')
    .description("print a lab VM's serial console log")
    .argument('<node>', 'VM name (node0) or MAC')
    .option('--dir <dir>', 'lab folder', defaultLabDir)
    .addHelpText('after', '\nExamples:\n  sudo fleetboot lab console node0\n  sudo fleetboot lab console 52:54:00:fb:00:00')
    .action((ref: string, opts: { dir: string }) => {
      const dir = resolve(opts.dir);
      const state = readLabState(dir);
      if (!state) throw new UsageError(`no lab in ${dir} (start one with 'fleetboot lab up')`);
      const vm = findVm(state, ref);
      if (!vm) throw new UsageError(`no lab VM ${ref} (have: ${state.vms.map((v) => v.name).join(', ') || 'none'})`);
      if (!existsSync(vm.serialLog)) throw new UsageError(`${vm.name} has written no console output yet`);
      process.stdout.write(readFileSync(vm.serialLog));
    });

  lab
    .command('down')
    .description('stop every lab VM and the head node, delete the namespace, bridge and taps, and remove the lab folder')
    .option('--dir <dir>', 'lab folder', defaultLabDir)
    .option('--keep-files', 'keep the lab folder (logs, registry)')
    .addHelpText('after', '\nExamples:\n  sudo fleetboot lab down\n  sudo fleetboot lab down --dir /tmp/lab --keep-files')
    .action(async (opts: { dir: string; keepFiles?: boolean }) => {
      requireRoot();
      const r = await labDown(opts.dir, { keepFiles: opts.keepFiles === true });
      process.stdout.write(r.found ? `lab down: namespace ${r.namespace} and its processes removed\n` : `lab down: no lab recorded in ${resolve(opts.dir)}\n`);
    });
}
