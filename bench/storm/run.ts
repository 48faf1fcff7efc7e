// Boot-storm benchmark: N simulated nodes power on at once and boot all the way (PXE DHCP,
// TFTP of the iPXE binary, iPXE's DHCP, the script chain and every kernel/initrd/module over
// HTTP, check-in), against fleetboot and against the classic stack an operator would assemble
// instead (ISC Kea kea-dhcp4 with a memfile lease file, tftpd-hpa's in.tftpd, nginx serving the
// same binaries, the same platform files and fleetboot's own scripts rendered per MAC ahead of
// time, `return 201` for the check-in), stacks one after the other in the same run.
//
//   node --import tsx bench/storm/run.ts [--nodes 100] [--uefi-share 0.5] [--platform smartos|linux]
//        [--timeout-s 300] [--stacks fleetboot,classic] [--ramdisk-mib N] [--kernel-mib N]
//   (root; Debian packages from bench/storm/install-deps.sh)
//
// Topology, per stack, made fresh and deleted after (docs/storm.md): a head namespace with a
// bridge br0 (10.77.0.1/16) where the servers run, and one nodes namespace wired to br0 by a veth
// pair. Every simulated node is a MAC in chaddr and, once leased, one of the pool's addresses,
// all of which sit on the nodes' veth end (added before the storm, `ip -batch`): one namespace
// and one veth for 1,000 nodes instead of 1,000 of each. A namespace and a veth pair per node
// would cost `ip` calls per node at setup (the bench prints what its own setup took; one
// namespace with a veth is measured beside it, so the per-node cost can be multiplied out) and
// a kernel neighbour entry per node on the head. What a node needs of its own is its MAC in
// DHCP (chaddr, option 61, option 97) and its own source address for TFTP and HTTP (so
// fleetboot's per-address rate limit and lease lookups see one machine each),
// and that is what it gets. Nothing leaves the two namespaces.
//
// Before each storm, a bandwidth probe: 4 TCP streams for 3 s from the nodes' namespace to a
// sender in the head namespace over the same veth and bridge; the storm's bytes are set against
// that bound. Head-node CPU is utime + stime (+ reaped children: in.tftpd forks per transfer)
// from /proc/PID/stat over the storm, max RSS is VmHWM; the store's writes are
// /proc/PID/io write_bytes over the storm, and the WAL / lease file as the storm left it.
import { execSync } from 'node:child_process';
import { randomBytes, randomUUID, createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { execa, execaSync, type ResultPromise } from 'execa';
import { steps, type NodeResult, type PlanNode, type ProbeResult, type Step, type StormPlan, type StormResult } from './nodes.ts';

const usage = 'usage: node --import tsx bench/storm/run.ts [--nodes 100] [--uefi-share 0.5] [--platform smartos|linux] [--timeout-s 300] [--stacks fleetboot,classic] [--ramdisk-mib N] [--kernel-mib N] [--admission auto|N]';
const { values: flags } = parseArgs({
  options: {
    nodes: { type: 'string', default: '100' },
    'uefi-share': { type: 'string', default: '0.5' },
    platform: { type: 'string', default: 'smartos' },
    'timeout-s': { type: 'string', default: '300' },
    stacks: { type: 'string', default: 'fleetboot,classic' },
    'ramdisk-mib': { type: 'string' },
    'kernel-mib': { type: 'string' },
    admission: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (flags.help) {
  console.log(usage);
  process.exit(0);
}
function fail(msg: string): never {
  console.error(`bench/storm: ${msg}\n${usage}`);
  process.exit(2);
}
const nodeCount = Number(flags.nodes);
const uefiShare = Number(flags['uefi-share']);
const timeoutS = Number(flags['timeout-s']);
const platformKind = flags.platform;
const stacks = flags.stacks.split(',').map((s) => s.trim());
if (!Number.isInteger(nodeCount) || nodeCount < 1 || nodeCount > 2000) fail(`--nodes ${flags.nodes}: expected a whole number from 1 to 2000 (the pool holds 2,046 addresses)`);
if (!(uefiShare >= 0 && uefiShare <= 1)) fail(`--uefi-share ${flags['uefi-share']}: expected a number from 0 to 1`);
if (!Number.isInteger(timeoutS) || timeoutS < 10 || timeoutS > 3600) fail(`--timeout-s ${flags['timeout-s']}: expected whole seconds from 10 to 3600`);
if (platformKind !== 'smartos' && platformKind !== 'linux') fail(`--platform ${platformKind}: expected smartos or linux`);
for (const s of stacks) if (s !== 'fleetboot' && s !== 'classic') fail(`--stacks: unknown stack ${JSON.stringify(s)} (fleetboot, classic)`);
// A SmartOS boot_archive of a current platform is ~250 MB with its unix ~3 MB; a Debian
// kernel ~8 MB with a generic initramfs ~48 MB.
const ramdiskMiB = Number(flags['ramdisk-mib'] ?? (platformKind === 'smartos' ? 250 : 48));
const kernelMiB = Number(flags['kernel-mib'] ?? (platformKind === 'smartos' ? 3 : 8));
if (!(ramdiskMiB > 0 && ramdiskMiB <= 4096) || !(kernelMiB > 0 && kernelMiB <= 512)) fail('--ramdisk-mib 1..4096 and --kernel-mib 1..512');
// fleetboot's boot.admission.maxConcurrentBoots (docs/admission.md); unset: its default.
const admission = flags.admission === undefined ? undefined : flags.admission === 'auto' ? 'auto' : Number(flags.admission);
if (admission !== undefined && admission !== 'auto' && !(Number.isInteger(admission) && admission >= 0)) fail(`--admission ${flags.admission}: expected auto or a whole number (0: no limit)`);
if (process.getuid?.() !== 0) fail('needs root (network namespaces)');
const need = stacks.includes('classic') ? ['kea-dhcp4', 'in.tftpd', 'nginx'] : [];
for (const cmd of ['ip', 'curl', ...need]) {
  if (execaSync('sh', ['-c', `command -v ${cmd}`], { reject: false }).exitCode !== 0) fail(`${cmd} is missing: run bench/storm/install-deps.sh as root`);
}
for (const f of ['undionly.kpxe', 'snponly.efi']) if (!existsSync(join('/usr/lib/ipxe', f))) fail(`/usr/lib/ipxe/${f} is missing: run bench/storm/install-deps.sh`);

const repo = resolve(import.meta.dirname, '..', '..');
const cli = join(repo, 'bin', 'fleetboot.js');
const work = mkdtempSync(join(tmpdir(), 'fleetboot-bench-storm-'));
chmodSync(work, 0o755); // in.tftpd and nginx workers read below it as other users
const head = '10.77.0.1';
const subnet = '10.77.0.0/16';
// The pool is 10.77.8.0/21 inside the /16, so the head can reach it by one route (lanUp).
const pool = { start: '10.77.8.1', end: '10.77.15.254' };
const poolPrefix = '10.77.8.0/21';
const httpPort = 8080;
const probePort = 9000;
const clockTicks = Number(execSync('getconf CLK_TCK').toString().trim()) || 100;

// ---- cleanup: every process by PID, every namespace by name, the work folder -----------------

const procs: ResultPromise[] = [];
const namespaces: string[] = [];
let cleaned = false;
async function cleanup(): Promise<void> {
  if (cleaned) return;
  cleaned = true;
  await stopAll(procs.splice(0));
  for (const ns of namespaces.splice(0)) await execa('ip', ['netns', 'del', ns], { reject: false });
  rmSync(work, { recursive: true, force: true });
}
async function stopAll(list: ResultPromise[]): Promise<void> {
  for (const p of list) if (p.exitCode === null && p.pid) p.kill('SIGTERM');
  const killer = setTimeout(() => {
    for (const p of list) if (p.exitCode === null && p.pid) p.kill('SIGKILL');
  }, 5000);
  await Promise.allSettled(list);
  clearTimeout(killer);
  for (const p of list) {
    const i = procs.indexOf(p);
    if (i >= 0) procs.splice(i, 1);
  }
}
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    console.error(`\nbench/storm: ${sig}, cleaning up`);
    void cleanup().then(() => process.exit(130));
  });
}

// ---- helpers ----------------------------------------------------------------------------------

const ipToInt = (ip: string): number => ip.split('.').reduce((n, p) => n * 256 + Number(p), 0);
const intToIp = (n: number): string => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
const sha1File = (f: string): string => createHash('sha1').update(readFileSync(f)).digest('hex');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function inNs(ns: string, cmd: string, args: string[], opts: { reject?: boolean; timeout?: number; maxBuffer?: number } = {}): Promise<{ stdout: string; exitCode: number }> {
  const r = await execa('ip', ['netns', 'exec', ns, cmd, ...args], { cwd: repo, ...opts });
  return { stdout: String(r.stdout), exitCode: r.exitCode ?? -1 };
}

/** Starts a long-running process in `ns`, recorded for cleanup; its PID is the program's own (`ip netns exec` execs it). */
function spawnIn(ns: string, cmd: string, args: string[], env: Record<string, string> = {}, logFile?: string): ResultPromise {
  const p = execa('ip', ['netns', 'exec', ns, cmd, ...args], {
    cwd: repo,
    env: { ...process.env, ...env },
    reject: false,
    buffer: false,
    stdin: 'ignore',
    ...(logFile ? { stdout: { file: logFile }, stderr: { file: `${logFile}.err` } } : { stdout: 'ignore', stderr: 'inherit' }),
  });
  procs.push(p);
  return p;
}

const debug = process.env.STORM_DEBUG ? (m: string): void => console.error(`[storm] ${m}`) : (): void => undefined;

async function waitUntil(what: string, probe: () => Promise<boolean>, timeoutMs = 60_000, proc?: ResultPromise): Promise<void> {
  debug(`waiting for ${what}`);
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (proc && proc.exitCode !== undefined && proc.exitCode !== null) throw new Error(`${what}: the process exited (${proc.exitCode})`);
    if (Date.now() > deadline) throw new Error(`${what}: not ready after ${timeoutMs / 1000} s`);
    await sleep(200);
  }
}

async function listening(ns: string, proto: 'u' | 't', port: number): Promise<boolean> {
  const r = await inNs(ns, 'ss', [`-${proto}ln`, `sport = :${port}`], { reject: false });
  return String(r.stdout).split('\n').length > 1;
}

/** utime + stime + cutime + cstime (proc(5) /proc/PID/stat fields 14-17), in seconds. */
function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / clockTicks;
  } catch {
    return 0;
  }
}
/** Peak resident set (VmHWM), bytes. */
function hwm(pid: number): number {
  try {
    return Number(/^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
  } catch {
    return 0;
  }
}
function writeBytes(pid: number): number {
  try {
    return Number(/^write_bytes: (\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}
/** A process and its live children (nginx's workers), by /proc/PID/stat's ppid. */
function withChildren(pid: number): number[] {
  const out = [pid];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const s = readFileSync(`/proc/${d}/stat`, 'utf8');
      if (Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

const median = (xs: number[]): number => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const quantile = (xs: number[], q: number): number => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!;
};

// ---- the platform, imported once into a template data folder each stack copies --------------

interface Template {
  dir: string;
  stamp: string;
  files: number;
}

async function preparePlatform(): Promise<Template> {
  const src = join(work, 'platform-src');
  mkdirSync(src, { recursive: true });
  const dir = join(work, 'template');
  mkdirSync(dir, { recursive: true });
  const conf = join(dir, 'import.json');
  writeFileSync(conf, JSON.stringify({ dataDir: join(dir, 'var'), apiTokenFile: join(dir, 'var', 'api-token'), platformImagesDir: join(dir, 'platform-images'), log: { level: 'warn' } }));
  const random = (f: string, mib: number): void => {
    // Random content: an archive that does not compress, as a real compressed ramdisk does not.
    const chunk = 16 * 2 ** 20;
    writeFileSync(f, '');
    for (let left = mib * 2 ** 20; left > 0; left -= chunk) writeFileSync(f, randomBytes(Math.min(chunk, left)), { flag: 'a' });
  };
  let stamp: string;
  let what: string;
  if (platformKind === 'smartos') {
    // smartos-live's tarball layout (docs/design.md "Formats"), as test/platform-fixtures.ts writes it.
    stamp = '20261201T000000Z';
    const top = join(src, `platform-${stamp}`);
    mkdirSync(join(top, 'i86pc', 'kernel', 'amd64'), { recursive: true });
    mkdirSync(join(top, 'i86pc', 'amd64'), { recursive: true });
    mkdirSync(join(top, 'etc', 'version'), { recursive: true });
    random(join(top, 'i86pc', 'kernel', 'amd64', 'unix'), kernelMiB);
    random(join(top, 'i86pc', 'amd64', 'boot_archive'), ramdiskMiB);
    writeFileSync(join(top, 'i86pc', 'amd64', 'boot_archive.hash'), `${sha1File(join(top, 'i86pc', 'amd64', 'boot_archive'))}\n`);
    writeFileSync(join(top, 'etc', 'version', 'platform'), `${stamp}\n`);
    what = join(src, `platform-${stamp}.tgz`);
    await execa('sh', ['-c', `tar -C "${src}" -cf - "platform-${stamp}" | gzip -1 > "${what}"`]);
  } else {
    stamp = 'storm-linux-6.1';
    what = join(src, stamp);
    mkdirSync(what);
    random(join(what, 'vmlinuz'), kernelMiB);
    random(join(what, 'initrd.img'), ramdiskMiB);
    writeFileSync(join(what, 'platform.json'), JSON.stringify({ os: 'linux', stamp, version: '6.1.0', kernel: 'vmlinuz', initrds: ['initrd.img'], cmdline: 'console=ttyS0 quiet' }));
  }
  const r = await execa(process.execPath, [cli, '--config', conf, 'platform', 'import', what, '--json'], { cwd: repo, reject: false });
  if (r.exitCode !== 0) throw new Error(`fleetboot platform import failed:\n${r.stdout}\n${r.stderr}`);
  rmSync(src, { recursive: true, force: true });
  // Readable for nginx's workers and in.tftpd after they drop root.
  await execa('chmod', ['-R', 'a+rX', dir]);
  return { dir, stamp, files: readdirSync(join(dir, 'platform-images', 'os'), { recursive: true }).length };
}

/** A stack's own copy of the template: the registry copied, the platform files hard-linked (the same bytes). */
async function copyTemplate(t: Template, to: string): Promise<void> {
  mkdirSync(to, { recursive: true });
  await execa('cp', ['-a', join(t.dir, 'var'), join(to, 'var')]);
  await execa('cp', ['-al', join(t.dir, 'platform-images'), join(to, 'platform-images')]);
}

function fleetbootConfig(dir: string, extra: Record<string, unknown> = {}): string {
  const conf = {
    dataDir: join(dir, 'var'),
    apiTokenFile: join(dir, 'var', 'api-token'),
    platformImagesDir: join(dir, 'platform-images'),
    http: { listen: head, port: httpPort },
    dhcp: { mode: 'full' },
    tftp: { enabled: true },
    networks: [{ name: 'storm', interface: 'br0', subnet, serverAddress: head, range: pool, leaseSeconds: 3600 }],
    // The same footing as Kea's WARN logger and nginx without an access log.
    log: { level: 'warn' },
    ...extra,
  };
  const file = join(dir, 'fleetboot.json');
  writeFileSync(file, JSON.stringify(conf, null, 2));
  return file;
}

// ---- topology -----------------------------------------------------------------------------------

interface Lan {
  head: string;
  nodes: string;
}

/** What setting up the topology took, ms: the nodes' namespace with its veth (what one node would cost with a namespace each), and all pool addresses. */
const setupMs: { namespaceAndVeth: number[]; addresses: number[] } = { namespaceAndVeth: [], addresses: [] };

async function lanUp(stack: string): Promise<Lan> {
  const lan = { head: `fbstorm-${process.pid}-${stack}-h`, nodes: `fbstorm-${process.pid}-${stack}-n` };
  await execa('ip', ['netns', 'add', lan.head]);
  namespaces.push(lan.head);
  await execa('ip', ['-n', lan.head, 'link', 'set', 'lo', 'up']);
  await execa('ip', ['-n', lan.head, 'link', 'add', 'br0', 'type', 'bridge', 'forward_delay', '0', 'stp_state', '0']);
  await execa('ip', ['-n', lan.head, 'addr', 'add', `${head}/16`, 'dev', 'br0']);
  await execa('ip', ['-n', lan.head, 'link', 'set', 'br0', 'up']);
  const t0 = performance.now();
  await execa('ip', ['netns', 'add', lan.nodes]);
  namespaces.push(lan.nodes);
  await execa('ip', ['-n', lan.nodes, 'link', 'set', 'lo', 'up']);
  await execa('ip', ['link', 'add', 'p0', 'netns', lan.head, 'type', 'veth', 'peer', 'name', 'c0', 'netns', lan.nodes]);
  await execa('ip', ['-n', lan.head, 'link', 'set', 'p0', 'master', 'br0', 'up']);
  await execa('ip', ['-n', lan.nodes, 'addr', 'add', '10.77.0.2/16', 'dev', 'c0']);
  await execa('ip', ['-n', lan.nodes, 'link', 'set', 'c0', 'up']);
  setupMs.namespaceAndVeth.push(performance.now() - t0);
  // The kernel's ARP table is one for every namespace (gc_thresh3, 1,024 entries by default,
  // can be set in the initial namespace only): 1,000 node addresses resolved one by one would
  // overflow it for the whole machine. All of them sit behind the same MAC anyway, so the
  // head reaches the pool through the nodes' fixed address: one neighbour entry.
  await execa('ip', ['-n', lan.head, 'route', 'add', poolPrefix, 'via', '10.77.0.2', 'dev', 'br0']);
  // docs/netboot-notes.md pitfall 1: broadcasts from an unconfigured client need this route.
  await execa('ip', ['-n', lan.nodes, 'route', 'add', '255.255.255.255/32', 'dev', 'c0']);
  // Every pool address on the nodes' link, so each node can use the one it is leased.
  const lines: string[] = [];
  for (let n = ipToInt(pool.start); n <= ipToInt(pool.end); n++) lines.push(`addr add ${intToIp(n)}/32 dev c0`);
  const batch = join(work, `${stack}-addrs.batch`);
  writeFileSync(batch, `${lines.join('\n')}\n`);
  const t1 = performance.now();
  await execa('ip', ['-n', lan.nodes, '-batch', batch]);
  setupMs.addresses.push(performance.now() - t1);
  return lan;
}

async function lanDown(lan: Lan): Promise<void> {
  for (const ns of [lan.nodes, lan.head]) {
    await execa('ip', ['netns', 'del', ns], { reject: false });
    namespaces.splice(namespaces.indexOf(ns), 1);
  }
}

async function bandwidthProbe(lan: Lan): Promise<ProbeResult> {
  const server = spawnIn(lan.head, process.execPath, ['--import', 'tsx', join(repo, 'bench/storm/probe-server.ts'), head, String(probePort)]);
  try {
    await waitUntil('probe server', () => listening(lan.head, 't', probePort), 30_000, server);
    const r = await inNs(lan.nodes, process.execPath, ['--import', 'tsx', join(repo, 'bench/storm/nodes.ts'), 'probe', head, String(probePort), '4', '3'], { timeout: 60_000 });
    return JSON.parse(String(r.stdout)) as ProbeResult;
  } finally {
    await stopAll([server]);
  }
}

// ---- the stacks ---------------------------------------------------------------------------------

interface Running {
  /** Every head-node process whose CPU and RSS count, nginx's workers found at each read. */
  pids: () => number[];
  /** The process whose writes are the store's (fleetboot; Kea's lease file). */
  storePid: number;
  after: () => Promise<Record<string, string>>;
  stop: () => Promise<void>;
}

async function startFleetboot(lan: Lan, t: Template, dir: string): Promise<Running> {
  await copyTemplate(t, dir);
  const conf = fleetbootConfig(dir, admission === undefined ? {} : { boot: { admission: { maxConcurrentBoots: admission } } });
  const p = spawnIn(lan.head, process.execPath, [cli, '--config', conf, 'serve'], {}, join(dir, 'fleetboot.log'));
  await waitUntil('fleetboot HTTP', async () => (await inNs(lan.head, 'curl', ['-sf', '-o', '/dev/null', `http://${head}:${httpPort}/boot/stage1.ipxe`], { reject: false })).exitCode === 0, 60_000, p);
  await waitUntil('fleetboot DHCP and TFTP', async () => (await listening(lan.head, 'u', 67)) && (await listening(lan.head, 'u', 69)), 30_000, p);
  const pid = p.pid!;
  return {
    pids: () => [pid],
    storePid: pid,
    after: async () => {
      const token = readFileSync(join(dir, 'var', 'api-token'), 'utf8').trim();
      const m = await inNs(lan.head, 'curl', ['-sf', '-H', `Authorization: Bearer ${token}`, `http://${head}:${httpPort}/metrics`], { reject: false });
      const metric = (name: string): number => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(String(m.stdout))?.[1] ?? NaN);
      const wal = join(dir, 'var', 'fleetboot.db-wal');
      const db = join(dir, 'var', 'fleetboot.db');
      return {
        'WAL after the storm': `${(metric('fleetboot_store_wal_bytes') / 2 ** 20).toFixed(1)} MiB (metric), ${existsSync(wal) ? (statSync(wal).size / 2 ** 20).toFixed(1) : 0} MiB (file)`,
        'registry file': `${existsSync(db) ? (statSync(db).size / 2 ** 20).toFixed(1) : 0} MiB`,
        'WAL frames checkpointed': String(metric('fleetboot_store_checkpointed_frames_total')),
        'warnings and errors it logged': loggedEvents(join(dir, 'fleetboot.log')),
        'DHCP counters': dhcpCounters(String(m.stdout)),
        'boot slots (admission)': `limit ${metric('fleetboot_boot_slots_limit')}, ${[...String(m.stdout).matchAll(/^fleetboot_boot_admissions_total\{outcome="(\w+)"\} (\S+)$/gm)].map((x) => `${x[1]} ${x[2]}`).join(', ') || 'no admissions counted'}`,
      };
    },
    stop: () => stopAll([p]),
  };
}

/** fleetboot's log lines at warn and above (the level it runs at), counted by `event`. */
function loggedEvents(file: string): string {
  const counts = new Map<string, number>();
  for (const line of existsSync(file) ? readFileSync(file, 'utf8').split('\n') : []) {
    if (!line.startsWith('{')) continue;
    try {
      const e = (JSON.parse(line) as { event?: unknown }).event;
      counts.set(String(e ?? '(no event)'), (counts.get(String(e ?? '(no event)')) ?? 0) + 1);
    } catch {
      // a line cut by the stop
    }
  }
  return [...counts.entries()].map(([e, n]) => `${e} ${n}`).join(', ') || 'none';
}

function dhcpCounters(metrics: string): string {
  const out: string[] = [];
  for (const m of metrics.matchAll(/^(fleetboot_dhcp_[a-z_]+)(\{[^}]*\})? (\S+)$/gm)) if (Number(m[3]) > 0) out.push(`${m[1]!.replace('fleetboot_dhcp_', '')}${m[2] ?? ''} ${m[3]}`);
  return out.join(', ') || '(none)';
}

function nginxEvents(file: string): string {
  const counts = new Map<string, number>();
  for (const line of existsSync(file) ? readFileSync(file, 'utf8').split('\n') : []) {
    // "2026/12/02 15:00:00 [info] 12#12: *34 client timed out (110: Connection timed out) while sending response..."
    const m = /\[(info|warn|error|crit|alert|emerg)\] \d+#\d+: (?:\*\d+ )?([^(,]+)/.exec(line);
    if (!m) continue;
    const what = `${m[1]} ${m[2]!.replace(/\d+(\.\d+){0,3}/g, 'N').trim()}`;
    counts.set(what, (counts.get(what) ?? 0) + 1);
  }
  return [...counts.entries()].map(([e, n]) => `${e}: ${n}`).join(', ') || 'empty';
}

async function startClassic(lan: Lan, t: Template, dir: string, plan: StormPlan, planFile: string): Promise<Running> {
  // fleetboot's own scripts for every simulated MAC, rendered ahead of time by a fleetboot with
  // the same registry and platform on the address nginx will have (the URLs in them point
  // there), its rate limit and admission off: it serves one client, the renderer, and every
  // node must get its boot script, not a wait script.
  const render = join(dir, 'render');
  await copyTemplate(t, render);
  const rconf = fleetbootConfig(render, { dhcp: { mode: 'off' }, tftp: { enabled: false }, http: { listen: head, port: httpPort, rateLimit: { perSecond: 0 } }, boot: { admission: { maxConcurrentBoots: 0 } } });
  const rp = spawnIn(lan.head, process.execPath, [cli, '--config', rconf, 'serve'], {}, join(render, 'fleetboot.log'));
  await waitUntil('fleetboot (rendering)', async () => (await inNs(lan.head, 'curl', ['-sf', '-o', '/dev/null', `http://${head}:${httpPort}/boot/stage1.ipxe`], { reject: false })).exitCode === 0, 60_000, rp);
  const www = join(dir, 'www');
  await inNs(lan.head, process.execPath, ['--import', 'tsx', join(repo, 'bench/storm/nodes.ts'), 'render', `http://${head}:${httpPort}`, join(www, 'boot'), planFile], { timeout: 300_000 });
  await stopAll([rp]);

  const tftpRoot = join(dir, 'tftp');
  mkdirSync(tftpRoot, { recursive: true });
  for (const f of Object.keys(plan.binaries)) copyFileSync(join('/usr/lib/ipxe', f), join(tftpRoot, f));
  mkdirSync(join(dir, 'run'), { recursive: true });
  await execa('chmod', ['-R', 'a+rX', dir]);

  // Kea: the PXE ROM gets the binary for its arch over TFTP, iPXE (option 77) gets stage 1's
  // URL (Kea ARM "Using Expressions in Classification"; the first class naming a file wins).
  const kea = {
    Dhcp4: {
      'interfaces-config': { interfaces: ['br0'], 'dhcp-socket-type': 'raw' },
      'lease-database': { type: 'memfile', persist: true, name: join(dir, 'kea-leases4.csv'), 'lfc-interval': 0 },
      'valid-lifetime': 3600,
      'client-classes': [
        { name: 'ipxe', test: "option[77].hex == 'iPXE'", 'boot-file-name': `http://${head}:${httpPort}/boot/stage1.ipxe` },
        { name: 'pxe-bios', test: "not member('ipxe') and option[93].hex == 0x0000", 'next-server': head, 'boot-file-name': 'undionly.kpxe' },
        { name: 'pxe-efi', test: "not member('ipxe') and option[93].hex == 0x0007", 'next-server': head, 'boot-file-name': 'snponly.efi' },
      ],
      subnet4: [{ id: 1, subnet, pools: [{ pool: `${pool.start} - ${pool.end}` }] }],
      loggers: [{ name: 'kea-dhcp4', severity: 'WARN', output_options: [{ output: join(dir, 'kea.log') }] }],
    },
  };
  writeFileSync(join(dir, 'kea.json'), JSON.stringify(kea, null, 2));
  const k = spawnIn(lan.head, 'kea-dhcp4', ['-c', join(dir, 'kea.json')], { KEA_PIDFILE_DIR: join(dir, 'run'), KEA_LOCKFILE_DIR: join(dir, 'run') }, join(dir, 'kea.out'));
  // tftpd-hpa: lock-step only (it has no windowsize), blksize as the client asks.
  const tf = spawnIn(lan.head, 'in.tftpd', ['--foreground', '--address', `${head}:69`, '--secure', tftpRoot], {}, join(dir, 'tftpd.out'));
  const nginxConf = `daemon off;
master_process on;
worker_processes auto;
user root;
pid ${dir}/run/nginx.pid;
error_log ${dir}/nginx-error.log info;
events { worker_connections 8192; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 10000;
  client_body_temp_path ${dir}/run/body;
  proxy_temp_path ${dir}/run/proxy;
  fastcgi_temp_path ${dir}/run/fastcgi;
  uwsgi_temp_path ${dir}/run/uwsgi;
  scgi_temp_path ${dir}/run/scgi;
  default_type application/octet-stream;
  server {
    listen ${head}:${httpPort} backlog=4096;
    root ${www};
    location = /boot/stage1.ipxe { default_type text/plain; }
    location = /boot/node.ipxe { default_type text/plain; try_files /boot/nodes/$arg_mac.ipxe =404; }
    location /os/ { alias ${join(render, 'platform-images', 'os')}/; }
    location /ipxe/ { alias ${tftpRoot}/; }
    location = /api/v1/nodes/checkin { return 201; }
  }
}
`;
  writeFileSync(join(dir, 'nginx.conf'), nginxConf);
  const ng = spawnIn(lan.head, 'nginx', ['-c', join(dir, 'nginx.conf'), '-p', dir], {}, join(dir, 'nginx.out'));
  await waitUntil('nginx', async () => (await inNs(lan.head, 'curl', ['-sf', '-o', '/dev/null', `http://${head}:${httpPort}/boot/stage1.ipxe`], { reject: false })).exitCode === 0, 30_000, ng);
  await waitUntil('kea-dhcp4', () => listening(lan.head, 'u', 67), 30_000, k);
  await waitUntil('in.tftpd', () => listening(lan.head, 'u', 69), 30_000, tf);
  const leases = join(dir, 'kea-leases4.csv');
  return {
    pids: () => [k.pid!, tf.pid!, ...withChildren(ng.pid!)],
    storePid: k.pid!,
    after: async () => ({
      // At info, nginx logs a client that timed out (send_timeout, 60 s) or closed early.
      'nginx error log': nginxEvents(join(dir, 'nginx-error.log')),
      'lease file after the storm': `${existsSync(leases) ? (statSync(leases).size / 2 ** 20).toFixed(2) : 0} MiB, ${existsSync(leases) ? readFileSync(leases, 'utf8').split('\n').length - 2 : 0} lines`,
    }),
    stop: () => stopAll([ng, tf, k]),
  };
}

// ---- one storm ----------------------------------------------------------------------------------

interface StackResult {
  stack: string;
  probe: ProbeResult;
  storm: StormResult;
  cpuS: number;
  rssBytes: number;
  storeWriteBytes: number;
  extra: Record<string, string>;
}

async function runStack(stack: string, t: Template, plan: StormPlan, planFile: string): Promise<StackResult> {
  const lan = await lanUp(stack);
  let running: Running | undefined;
  try {
    const dir = join(work, stack);
    mkdirSync(dir, { recursive: true });
    running = stack === 'fleetboot' ? await startFleetboot(lan, t, dir) : await startClassic(lan, t, dir, plan, planFile);
    const probe = await bandwidthProbe(lan);
    console.error(`${stack}: link bound ${probe.mbPerS.toFixed(0)} MB/s; storm of ${plan.nodes.length} nodes`);
    const pids0 = running.pids();
    const cpu0 = new Map(pids0.map((p) => [p, cpuSeconds(p)]));
    const w0 = writeBytes(running.storePid);
    const r = await inNs(lan.nodes, process.execPath, ['--max-old-space-size=4096', '--import', 'tsx', join(repo, 'bench/storm/nodes.ts'), 'storm', planFile], { timeout: (timeoutS + 120) * 1000, maxBuffer: 256 * 2 ** 20 });
    const storm = JSON.parse(String(r.stdout)) as StormResult;
    const pids1 = running.pids();
    // nginx workers live as long as the master; a PID not seen at the start counts from zero.
    const cpuS = pids1.reduce((a, p) => a + cpuSeconds(p) - (cpu0.get(p) ?? 0), 0);
    const rssBytes = pids1.reduce((a, p) => a + hwm(p), 0);
    const storeWriteBytes = writeBytes(running.storePid) - w0;
    const extra = await running.after();
    return { stack, probe, storm, cpuS, rssBytes, storeWriteBytes, extra };
  } finally {
    await running?.stop();
    await lanDown(lan);
  }
}

// ---- report -------------------------------------------------------------------------------------

interface Figures {
  allBootedS: number;
  ok: number;
  p50: number;
  p95: number;
  max: number;
  bytes: number;
  boundMBs: number;
  achievedMBs: number;
  idealS: number;
  cpuS: number;
  rssMiB: number;
  storeMBs: number;
}

function figures(s: StackResult): Figures {
  const ok = s.storm.nodes.filter((n) => n.ok);
  const times = ok.map((n) => n.totalMs! / 1000);
  const last = Math.max(0, ...ok.map((n) => n.at.checkin!)) / 1000;
  const bytes = s.storm.nodes.reduce((a, n) => a + n.bytes, 0);
  const wallS = s.storm.wallMs / 1000;
  return {
    allBootedS: ok.length === s.storm.nodes.length ? last : NaN,
    ok: ok.length,
    p50: median(times),
    p95: quantile(times, 0.95),
    max: Math.max(...times),
    bytes,
    boundMBs: s.probe.mbPerS,
    achievedMBs: bytes / 1e6 / (last || wallS),
    idealS: bytes / 1e6 / s.probe.mbPerS,
    cpuS: s.cpuS,
    rssMiB: s.rssBytes / 2 ** 20,
    storeMBs: s.storeWriteBytes / 1e6 / wallS,
  };
}

function failuresByStep(s: StackResult): string {
  const by = new Map<Step, Map<string, number>>();
  for (const n of s.storm.nodes) {
    if (!n.failed) continue;
    const m = by.get(n.failed.step) ?? new Map<string, number>();
    // Reasons grouped without their numbers (block 17, 3 tries...).
    const reason = n.failed.reason.replace(/\d+/g, 'N');
    m.set(reason, (m.get(reason) ?? 0) + 1);
    by.set(n.failed.step, m);
  }
  if (!by.size) return 'none';
  return steps
    .filter((st) => by.has(st))
    .map((st) => `${st}: ${[...by.get(st)!.entries()].map(([r, c]) => `${c}x ${r}`).join('; ')}`)
    .join(' | ');
}

function stepMedians(s: StackResult): string {
  // How long each step took, median over the nodes that finished it.
  const out: string[] = [];
  for (const n of [0, 1, 2, 3, 4, 5]) {
    const st = steps[n]!;
    const prev = n === 0 ? null : steps[n - 1]!;
    const d = s.storm.nodes.filter((x) => x.at[st] !== undefined).map((x) => (x.at[st]! - (prev ? x.at[prev]! : x.startMs)) / 1000);
    out.push(`${st} ${median(d).toFixed(2)} s`);
  }
  return out.join(', ');
}

function print(results: StackResult[], plan: StormPlan, t: Template): void {
  const uefi = plan.nodes.filter((n) => n.firmware === 'uefi').length;
  console.log(`\nboot storm: ${plan.nodes.length} nodes (${plan.nodes.length - uefi} BIOS, ${uefi} UEFI), platform ${platformKind} ${t.stamp} (kernel ${kernelMiB} MiB, ${platformKind === 'smartos' ? 'boot_archive' : 'initrd'} ${ramdiskMiB} MiB), timeout ${timeoutS} s`);
  const perNode = median(setupMs.namespaceAndVeth);
  console.log(
    `topology: the nodes' namespace with its veth took ${perNode.toFixed(0)} ms (a namespace each: ~${((perNode * plan.nodes.length) / 1000).toFixed(0)} s for ${plan.nodes.length} nodes); all ${ipToInt(pool.end) - ipToInt(pool.start) + 1} pool addresses on its veth ${median(setupMs.addresses).toFixed(0)} ms (median over stacks)`,
  );
  const f = results.map(figures);
  const fmt = (v: number, d = 1): string => (Number.isFinite(v) ? v.toFixed(d) : 'n/a');
  const rows: [string, (x: Figures) => number, number][] = [
    ['time to all booted (s)', (x) => x.allBootedS, 1],
    ['nodes booted', (x) => x.ok, 0],
    ['per-node boot p50 (s)', (x) => x.p50, 1],
    ['per-node boot p95 (s)', (x) => x.p95, 1],
    ['per-node boot max (s)', (x) => x.max, 1],
    ['bytes moved (GB)', (x) => x.bytes / 1e9, 2],
    ['link bound, 4 TCP streams (MB/s)', (x) => x.boundMBs, 0],
    ['storm throughput (MB/s)', (x) => x.achievedMBs, 0],
    ['bytes / link bound (s)', (x) => x.idealS, 1],
    ['head-node CPU over the storm (s)', (x) => x.cpuS, 1],
    ['head-node max RSS (MiB)', (x) => x.rssMiB, 0],
    ['store writes (MB/s, write_bytes)', (x) => x.storeMBs, 2],
  ];
  const fb = results.findIndex((r) => r.stack === 'fleetboot');
  const cl = results.findIndex((r) => r.stack === 'classic');
  const both = fb >= 0 && cl >= 0;
  console.log(`\n| figure | ${results.map((r) => r.stack).join(' | ')} |${both ? ' fleetboot / classic |' : ''}`);
  console.log(`|---|${results.map(() => '---').join('|')}|${both ? '---|' : ''}`);
  for (const [label, get, d] of rows) {
    const v = f.map(get);
    // A ratio over a figure that rounds to zero says nothing.
    const ratio = both && Math.abs(v[cl]!) >= 10 ** -d ? fmt(v[fb]! / v[cl]!, 2) : 'n/a';
    console.log(`| ${label} | ${v.map((x) => fmt(x, d)).join(' | ')} |${both ? ` ${ratio} |` : ''}`);
  }
  for (const r of results) {
    console.log(`\n${r.stack}: failures by step: ${failuresByStep(r)}`);
    console.log(`${r.stack}: step medians: ${stepMedians(r)}`);
    const retries = r.storm.nodes.reduce((a, n) => a + Math.max(0, n.dhcpSent - 4), 0);
    const tftpRetries = r.storm.nodes.reduce((a, n) => a + n.tftpRetries, 0);
    console.log(`${r.stack}: DHCP retransmissions ${retries}, TFTP retransmissions ${tftpRetries}, drops on the nodes' DHCP socket ${r.storm.dhcpSocketDrops}; the nodes' process used ${r.storm.clientCpuS?.toFixed(1) ?? '?'} s of CPU`);
    const waited = r.storm.nodes.filter((n) => n.scriptWaits > 0);
    if (waited.length) console.log(`${r.stack}: ${waited.length} nodes were told to wait (${waited.reduce((a, n) => a + n.scriptWaits, 0)} wait scripts), median wait ${median(waited.map((n) => n.waitedMs / 1000)).toFixed(0)} s per waiting node`);
    for (const [k, v] of Object.entries(r.extra)) console.log(`${r.stack}: ${k}: ${v}`);
  }
}

async function main(): Promise<void> {
  console.error(`bench/storm: ${platformKind} platform (${kernelMiB} + ${ramdiskMiB} MiB), importing`);
  const t = await preparePlatform();
  const binaries: Record<string, string> = { 'undionly.kpxe': sha1File('/usr/lib/ipxe/undionly.kpxe'), 'snponly.efi': sha1File('/usr/lib/ipxe/snponly.efi') };
  const nodes: PlanNode[] = Array.from({ length: nodeCount }, (_, i) => ({
    // Locally administered unicast MACs (IEEE 802 bit 1 of the first octet).
    mac: `02:fb:57:${((i >> 16) & 255).toString(16).padStart(2, '0')}:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`,
    uuid: randomUUID(),
    // The UEFI share spread evenly over the fleet.
    firmware: Math.floor((i + 1) * uefiShare) > Math.floor(i * uefiShare) ? 'uefi' : 'bios',
  }));
  const plan: StormPlan = { nodes, timeoutS, binaries, platform: t.stamp };
  const planFile = join(work, 'plan.json');
  writeFileSync(planFile, JSON.stringify(plan));
  const results: StackResult[] = [];
  for (const stack of stacks) {
    results.push(await runStack(stack, t, plan, planFile));
    writeFileSync(join(work, `${stack}-result.json`), JSON.stringify(results.at(-1)));
  }
  print(results, plan, t);
  if (process.env.STORM_RESULTS) {
    writeFileSync(process.env.STORM_RESULTS, JSON.stringify(results.map((r) => ({ ...r, figures: figures(r) }))));
  }
}

try {
  await main();
} finally {
  await cleanup();
}
