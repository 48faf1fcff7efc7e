// The QEMU lab: a namespace with a bridge and one tap per VM, the head node running inside it
// (a child `fleetboot serve` with a generated config), radvd, and N QEMU VMs that PXE-boot
// from it. Everything made is recorded in the lab state file first, so `down` can always
// clean up, also after a crash.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { installDir } from '../config/load.ts';
import { parseCidr, intToIpv4 } from '../config/schema.ts';
import { parseMac } from '../mac.ts';
import { QemuPowerDriver } from '../rollout/power-qemu.ts';
import type { PowerSpec } from '../rollout/power.ts';
import { setNodeFields } from '../nodeconfig/lifecycle.ts';
import { Store } from '../store/store.ts';
import { ensureBmcPassword, ipmiSimArgv, labPowerSpec, prepareBmc } from './bmc.ts';
import { LabError } from './errors.ts';
import { addTap, applyLoss, createLabNetwork, deleteLabNetwork, lossTable, namespaceExists, radvdArgv, removeLoss, writeRadvdConfig } from './network.ts';
import { isAlive, spawnDetached, stopProcess } from './process.ts';
import { readLabState, stateFileIn, writeLabState, type Firmware, type LabState, type LabVm } from './state.ts';
import { ensureTestPlatform } from './test-platform.ts';
import { prepareVm } from './vm.ts';

export const defaultLabDir = './var/lab';
export const defaultNamespace = 'fb-lab';
export const defaultSubnet = '10.99.0.0/24';

export interface LabUpOptions {
  dir: string;
  namespace: string;
  nodes: number;
  firmware: Firmware;
  /** UEFI only: NICs without the iPXE ROM, so OVMF's PXE chainloads iPXE over TFTP. */
  chainload: boolean;
  subnet: string;
  httpPort: number;
  memoryMiB: number;
  diskMiB: number;
  /** Each QEMU runs under `timeout` this long (docs/netboot-notes.md pitfall 6). */
  vmTimeoutSeconds: number;
  logLevel: string;
  /**
   * Platform folders (or tarballs) imported into the lab's registry before any VM boots; the
   * first is the default. None: the lab's test platform A, built first when missing.
   */
  platforms?: string[];
  /** Boot templates folder for the lab head node (to try template changes); fleetboot's own by default. */
  templatesDir?: string;
  /** `ipmi`: each VM gets a simulated BMC (ipmi_sim, src/lab/bmc.ts); `none` (default): power over QMP only. */
  bmc?: LabBmcKind;
  /** `off`: the head node serves no DHCP on the lab network (nodes need a static address, e.g. a --static USB key). Default full. */
  dhcp?: LabDhcpMode;
  /** A USB key image every VM boots first, with its NIC's iPXE ROM left out so the key is the only way in. */
  usbKey?: string;
  /** Drop this percentage (1-99) of UDP and TCP packets on the lab bridge, both ways (src/lab/network.ts lossRuleset). */
  loss?: number;
  /** The host port of the dashboard forward (default: httpPort; a free one when that is taken). */
  dashboardPort?: number;
  /** Boot storm admission for the lab head node (`boot.admission`, boot/boot-slots.ts); its defaults otherwise. */
  admission?: { maxConcurrentBoots: number; retryMinSeconds?: number; retryMaxSeconds?: number };
  /** Progress lines for people (`lab up` prints them). */
  progress: (line: string) => void;
}

export const labDhcpModes = ['full', 'off'] as const;
export type LabDhcpMode = (typeof labDhcpModes)[number];

export const labBmcKinds = ['none', 'ipmi'] as const;
export type LabBmcKind = (typeof labBmcKinds)[number];

/** Refuses `--bmc ipmi` where ipmi_sim is missing, before anything is made. */
async function checkBmcTools(kind: LabBmcKind | undefined): Promise<void> {
  if (kind !== 'ipmi') return;
  const r = await execa('ipmi_sim', ['--version'], { reject: false, stdin: 'ignore' });
  if (r.failed && r.exitCode === undefined) throw new LabError('--bmc ipmi needs ipmi_sim: install the Debian package openipmi (lab/install-deps.sh does)');
}

export { LabError };

/** The head node's address and the DHCP range inside the lab subnet. */
export function labAddresses(subnet: string): { address: string; prefix: number; rangeStart: string; rangeEnd: string } {
  const { network, prefix } = parseCidr(subnet);
  if (prefix > 26) throw new LabError(`lab subnet ${subnet} is too small (use /26 or larger)`);
  const size = 2 ** (32 - prefix);
  const start = Math.min(100, Math.floor(size / 2));
  return {
    address: intToIpv4(network + 1),
    prefix,
    rangeStart: intToIpv4(network + start),
    // 100 leases on a /24 or smaller; a larger subnet (a storm beside the VMs) leases the rest of it.
    rangeEnd: intToIpv4(network + (size > 256 ? size - 2 : Math.min(start + 99, size - 2))),
  };
}

/** The generated head-node config: full DHCP on br0, TFTP on, HTTP on the lab address. */
export function labConfig(
  dir: string,
  subnet: string,
  httpPort: number,
  logLevel: string,
  templatesDir?: string,
  dhcp: LabDhcpMode = 'full',
  admission?: LabUpOptions['admission'],
): Record<string, unknown> {
  const a = labAddresses(subnet);
  return {
    ...(admission ? { boot: { admission } } : {}),
    ...(templatesDir ? { templatesDir: resolve(templatesDir) } : {}),
    dataDir: join(dir, 'var'),
    apiTokenFile: join(dir, 'var', 'api-token'),
    platformImagesDir: join(dir, 'platform-images'),
    // The unix socket is the host's way in (the dashboard forward, dashboard-url): the HTTP
    // address lives in the lab namespace only.
    http: { listen: a.address, port: httpPort, publicUrl: `http://${a.address}:${httpPort}`, unixSocket: join(dir, 'http.sock') },
    dhcp: { mode: dhcp },
    tftp: { enabled: true },
    networks: [
      {
        name: 'lab',
        interface: 'br0',
        subnet,
        serverAddress: a.address,
        range: { start: a.rangeStart, end: a.rangeEnd },
        leaseSeconds: 3600,
      },
    ],
    log: { level: logLevel },
  };
}

export const cliPath = join(installDir, 'bin', 'fleetboot.js');

async function waitForHeadNode(state: LabState, logFile: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const log = existsSync(logFile) ? readFileSync(logFile, 'utf8') : '';
    if (log.includes('"event":"headnode_started"')) return;
    if (!isAlive(state.headNode)) {
      throw new LabError(`the head node exited while starting; its log (${logFile}) ends:\n${log.split('\n').slice(-15).join('\n')}`);
    }
    if (Date.now() > deadline) throw new LabError(`the head node did not start within ${timeoutMs / 1000} s; see ${logFile}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Creates the lab and starts everything. Returns the recorded state; the processes keep running
 * after this returns (call `labDown` to end them). On any failure, what was made is removed.
 */
export async function labUp(o: LabUpOptions): Promise<LabState> {
  if (!Number.isInteger(o.nodes) || o.nodes < 0 || o.nodes > 64) throw new LabError(`--nodes ${o.nodes}: expected a whole number from 0 to 64`);
  if (o.loss !== undefined && (!Number.isInteger(o.loss) || o.loss < 1 || o.loss > 99)) throw new LabError(`--loss ${o.loss}: expected a whole percentage from 1 to 99`);
  if (o.chainload && o.firmware !== 'uefi') throw new LabError('--chainload needs --firmware uefi (SeaBIOS has no PXE of its own)');
  const dir = resolve(o.dir);
  const existing = readLabState(dir);
  if (existing) throw new LabError(`a lab is already recorded in ${stateFileIn(dir)} (namespace ${existing.namespace}); run 'fleetboot lab down' first`);
  if (await namespaceExists(o.namespace)) {
    throw new LabError(`network namespace ${o.namespace} already exists: another lab uses it (pick --namespace, or 'fleetboot lab down --dir' its folder)`);
  }
  await checkBmcTools(o.bmc);
  // Before anything is made: a build that fails leaves nothing to remove.
  const platforms = o.platforms && o.platforms.length > 0 ? o.platforms : [await ensureTestPlatform({ progress: o.progress })];
  mkdirSync(dir, { recursive: true });
  const a = labAddresses(o.subnet);
  const configFile = join(dir, 'fleetboot.json');
  writeFileSync(configFile, `${JSON.stringify(labConfig(dir, o.subnet, o.httpPort, o.logLevel, o.templatesDir, o.dhcp, o.admission), null, 2)}\n`);
  const state: LabState = {
    version: 1,
    namespace: o.namespace,
    dir,
    subnet: o.subnet,
    address: a.address,
    httpPort: o.httpPort,
    configFile,
    createdAt: Date.now(),
    headNode: null,
    radvd: null,
    loss: null,
    vms: [],
  };
  try {
    o.progress(`lab: network namespace ${o.namespace}, bridge br0 ${a.address}/${a.prefix}`);
    await createLabNetwork(o.namespace, a.address, a.prefix);
    writeLabState(state);
    if (o.loss !== undefined) {
      o.progress(`lab: dropping ${o.loss}% of UDP and TCP packets on br0 (nftables table bridge ${lossTable})`);
      state.loss = { percent: o.loss, table: lossTable };
      writeLabState(state);
      await applyLoss(o.namespace, o.loss).catch((err: Error) => {
        throw new LabError(err.message);
      });
    }

    const radvdConf = join(dir, 'radvd.conf');
    writeRadvdConfig(radvdConf);
    state.radvd = spawnDetached(radvdArgv(o.namespace, radvdConf, join(dir, 'radvd.pid')), join(dir, 'radvd.log'));
    writeLabState(state);

    const headLog = join(dir, 'headnode.log');
    o.progress(`lab: head node (fleetboot serve, log ${headLog})`);
    state.headNode = spawnDetached(['ip', 'netns', 'exec', o.namespace, process.execPath, cliPath, '--config', configFile, 'serve'], headLog);
    writeLabState(state);
    await waitForHeadNode(state, headLog, 30_000);
    state.dashboard = await startDashboardForward(state, o.dashboardPort ?? o.httpPort);
    writeLabState(state);
    o.progress(`lab: dashboard at http://127.0.0.1:${state.dashboard.port}/ (from this host; a login link: fleetboot --config ${configFile} dashboard-url --base-url http://127.0.0.1:${state.dashboard.port})`);

    for (const [i, source] of platforms.entries()) {
      o.progress(`lab: importing platform ${source}`);
      const r = await execa(process.execPath, [cliPath, '--config', configFile, 'platform', 'import', resolve(source), ...(i === 0 ? ['--default'] : [])], {
        reject: false,
      });
      if (r.exitCode !== 0) throw new LabError(`platform import ${source} failed: ${r.stderr.trim() || `exit ${r.exitCode}`}`);
    }

    await startVms(state, o, 0, o.nodes);
    return state;
  } catch (err) {
    await labDown(dir, { keepFiles: true }).catch(() => undefined);
    throw err;
  }
}

/**
 * Starts the host side of the lab's dashboard (src/lab/dashboard-forward.mjs): 127.0.0.1:PORT on
 * the host carried to the head node's unix socket, and waits for it to say which port it got.
 */
async function startDashboardForward(state: LabState, port: number): Promise<NonNullable<LabState['dashboard']>> {
  const log = join(state.dir, 'dashboard-forward.log');
  const socket = join(state.dir, 'http.sock');
  const process_ = spawnDetached([process.execPath, join(installDir, 'src', 'lab', 'dashboard-forward.mjs'), socket, String(port)], log);
  // Recorded at once so `lab down` ends it even if the wait below fails.
  state.dashboard = { port: 0, process: process_ };
  writeLabState(state);
  const deadline = Date.now() + 10_000;
  for (;;) {
    const text = existsSync(log) ? readFileSync(log, 'utf8') : '';
    const m = /^listening (\d+)$/m.exec(text);
    if (m) return { port: Number(m[1]), process: process_ };
    if (!isAlive(process_) || Date.now() > deadline) throw new LabError(`the dashboard forward did not start: ${text.trim() || 'no output'} (${log})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Adds VMs `from`..`from+count-1` to a running lab. */
export async function startVms(
  state: LabState,
  o: Pick<LabUpOptions, 'firmware' | 'chainload' | 'memoryMiB' | 'diskMiB' | 'vmTimeoutSeconds' | 'progress' | 'bmc' | 'usbKey'>,
  from: number,
  count: number,
): Promise<LabVm[]> {
  await checkBmcTools(o.bmc);
  const started: LabVm[] = [];
  const password = o.bmc === 'ipmi' ? ensureBmcPassword(state.dir) : null;
  for (let i = from; i < from + count; i++) {
    const bmc = password ? prepareBmc(state.dir, `node${i}`, i, password) : null;
    const vm = prepareVm(state.namespace, state.dir, {
      index: i,
      firmware: o.firmware,
      chainload: o.chainload,
      memoryMiB: o.memoryMiB,
      diskMiB: o.diskMiB,
      timeoutSeconds: o.vmTimeoutSeconds,
      ...(bmc ? { bmc } : {}),
      ...(o.usbKey ? { usbKey: resolve(o.usbKey), nicRom: false } : {}),
    }, state.createdAt);
    vm.bmc = bmc;
    state.vms.push(vm);
    writeLabState(state);
    await addTap(state.namespace, vm.tap);
    if (bmc) {
      // The BMC first: QEMU's ipmi-bmc-extern connects to it (and reconnects if it is late).
      const log = join(bmc.dir, 'ipmi_sim.log');
      bmc.process = spawnDetached(ipmiSimArgv(state.namespace, bmc), log);
      writeLabState(state);
      await new Promise((r) => setTimeout(r, 300));
      if (!isAlive(bmc.process)) {
        throw new LabError(`ipmi_sim for ${vm.name} exited at once; its log (${log}) says: ${existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n').slice(-3).join(' / ') : 'nothing'}`);
      }
    }
    vm.process = spawnDetached(vm.argv, join(state.dir, `${vm.name}.qemu.log`));
    writeLabState(state);
    o.progress(
      `lab: ${vm.name} ${vm.mac} ${o.firmware}${o.chainload ? ' (firmware PXE -> iPXE chainload)' : ''}${o.usbKey ? ` (USB key ${o.usbKey}, NIC without ROM)` : ''}, serial ${vm.serialLog}` +
        (bmc ? `, BMC ipmi ${bmc.host}:${bmc.port} in namespace ${state.namespace}` : ''),
    );
    started.push(vm);
  }
  return started;
}

/**
 * Ends every process the lab recorded (by PID, checked against its start time), deletes the
 * namespace with its bridge and taps, and removes the lab's files unless `keepFiles`.
 */
export async function labDown(dirArg: string, options: { keepFiles?: boolean } = {}): Promise<{ found: boolean; namespace: string | null }> {
  const dir = resolve(dirArg);
  const state = readLabState(dir);
  if (!state) return { found: false, namespace: null };
  await Promise.all(state.vms.map((vm) => stopProcess(vm.process, 5000)));
  await Promise.all(state.vms.map((vm) => stopProcess(vm.bmc?.process ?? null, 5000)));
  await stopProcess(state.dashboard?.process ?? null, 3000);
  await stopProcess(state.headNode, 10_000);
  await stopProcess(state.radvd, 3000);
  if (state.loss && (await namespaceExists(state.namespace))) await removeLoss(state.namespace);
  await deleteLabNetwork(state.namespace);
  if (options.keepFiles) {
    rmSync(stateFileIn(dir), { force: true });
  } else {
    rmSync(dir, { recursive: true, force: true });
  }
  return { found: true, namespace: state.namespace };
}

/** The lab VM named `ref` (node0), or holding MAC `ref`. */
export function findVm(state: LabState, ref: string): LabVm | undefined {
  const mac = parseMac(ref);
  return state.vms.find((vm) => vm.name === ref || (mac !== null && vm.mac === mac));
}

/** The `qemu` power driver for a lab VM; power-on after `quit` starts its QEMU again. */
export function labPowerDriver(dir: string, vmName: string): QemuPowerDriver {
  const state = readLabState(resolve(dir));
  const vm = state && findVm(state, vmName);
  if (!state || !vm) throw new LabError(`no lab VM ${vmName} in ${dir}`);
  return new QemuPowerDriver({
    qmpSocket: vm.qmpSocket,
    // SeaBIOS answers the reset with one of its own (power-qemu.ts); OVMF does not.
    guestResetWaitMs: vm.firmware === 'bios' ? 20_000 : 3000,
    relaunch: async () => {
      const now = readLabState(state.dir);
      const current = now && findVm(now, vmName);
      if (!now || !current) throw new LabError(`lab in ${dir} is gone`);
      if (isAlive(current.process)) return;
      current.process = spawnDetached(current.argv, join(now.dir, `${current.name}.qemu.log`));
      writeLabState(now);
    },
  });
}

/** The `node set` assignments (`power.kind=ipmi power.host=...`) that store `spec` as a node's power. */
export function powerAssignments(spec: PowerSpec): string[] {
  return Object.entries(spec).map(([field, value]) => `power.${field}=${String(value)}`);
}

/**
 * Gives each registered node on a lab VM, with no power settings yet, the VM's power in the lab
 * head node's registry: its BMC's `ipmi` spec, or the `qemu` spec of its QMP socket (what
 * `fleetboot node set NODE power.kind=...` does), so the lab's rollouts reboot through it. An
 * operator's own settings are left alone. Returns the VMs whose node it set.
 */
export function assignLabPower(state: LabState): { vm: string; nodeId: number; spec: PowerSpec }[] {
  const dbFile = Store.fileIn(join(state.dir, 'var'));
  if (!existsSync(dbFile)) return [];
  const store = Store.open(dbFile);
  try {
    const done: { vm: string; nodeId: number; spec: PowerSpec }[] = [];
    for (const vm of state.vms) {
      const node = store.nodes.findByMac(vm.mac as NonNullable<ReturnType<typeof parseMac>>);
      if (!node || node.power !== null) continue;
      const spec = labPowerSpec(vm);
      setNodeFields(store, node, powerAssignments(spec));
      done.push({ vm: vm.name, nodeId: node.id, spec });
    }
    return done;
  } finally {
    store.close();
  }
}

export interface LabVmStatus {
  name: string;
  mac: string;
  uuid: string;
  firmware: Firmware;
  running: boolean;
  nodeId: number | null;
  state: string | null;
  currentPlatform: string | null;
  bootPlatform: string | null;
  hostname: string | null;
  lastSeen: number | null;
  /** The power spec for this VM's node (`fleetboot node set NODE power.kind=...`). */
  power: PowerSpec;
  /** Its simulated BMC, when the lab has them: whether ipmi_sim runs, the boot device it last set. */
  bmc: { kind: 'ipmi'; running: boolean; bootDevice: string | null } | null;
}

/** Each VM with its process and registry view (node state, current platform). */
export function labStatus(state: LabState): LabVmStatus[] {
  const dbFile = Store.fileIn(join(state.dir, 'var'));
  const store = existsSync(dbFile) ? Store.open(dbFile) : null;
  try {
    return state.vms.map((vm) => {
      const node = store?.nodes.findByMac(vm.mac as NonNullable<ReturnType<typeof parseMac>>);
      return {
        name: vm.name,
        mac: vm.mac,
        uuid: vm.uuid,
        firmware: vm.firmware,
        running: isAlive(vm.process),
        nodeId: node?.id ?? null,
        state: node?.state ?? null,
        currentPlatform: node?.currentPlatform ?? null,
        bootPlatform: node?.bootPlatform ?? null,
        hostname: node?.hostname ?? null,
        lastSeen: node?.lastSeen ?? null,
        power: labPowerSpec(vm),
        bmc: vm.bmc
          ? { kind: vm.bmc.kind, running: isAlive(vm.bmc.process), bootDevice: existsSync(vm.bmc.bootFile) ? readFileSync(vm.bmc.bootFile, 'utf8').trim() : null }
          : null,
      };
    });
  } finally {
    store?.close();
  }
}
