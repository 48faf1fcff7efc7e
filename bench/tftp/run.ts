// TFTP benchmark: fleetboot beside tftpd-hpa (in.tftpd) and dnsmasq, same clients, servers
// interleaved round by round (order rotated), every copy compared byte for byte, medians.
//   node --import tsx bench/tftp/run.ts [--size-mib 64] [--rounds 5] [--storm 500]
//        [--storm-rounds 5] [--no-storm] [--no-throughput] [--servers fleetboot,tftpd-hpa,dnsmasq]
//   (fleetboot-js in --servers: fleetboot with its native data path off, FLEETBOOT_TFTP_NATIVE=0;
//   fleetboot-nopoll: native, but sleeping for every ACK, tftp.busyPollMicros = 0)
// (1) throughput: one 64 MiB file, curl lock-step at blksize 512/1432/1468 and atftp
//     windowsize 4/16 (blksize 1468); tftpd-hpa and dnsmasq ignore windowsize, so for them
//     those rows are lock-step with atftp.
// (2) boot storm: N clients at once each fetching undionly.kpxe (storm-client.ts).
// dnsmasq 2.90 has no option for its TFTP port: it listens on 127.0.0.1:69 (loopback only,
// --bind-interfaces), so that port must be free. (tftpd-hpa answers nothing inside a fresh
// network namespace here, so the benchmark runs in the host's loopback.)
import { execSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { execa } from 'execa';

const { values: flags } = parseArgs({
  options: {
    'size-mib': { type: 'string', default: '64' },
    rounds: { type: 'string', default: '5' },
    storm: { type: 'string', default: '500' },
    'storm-rounds': { type: 'string', default: '5' },
    'no-storm': { type: 'boolean', default: false },
    'no-throughput': { type: 'boolean', default: false },
    servers: { type: 'string', default: 'fleetboot,tftpd-hpa,dnsmasq' },
  },
});
const sizeBytes = Number(flags['size-mib']) * 1024 * 1024;
const rounds = Number(flags.rounds);
const stormClients = Number(flags.storm);
const stormRounds = Number(flags['storm-rounds']);
const repo = resolve(import.meta.dirname, '..', '..');

interface Server {
  name: string;
  port: number;
  proc: ChildProcess;
}

const work = mkdtempSync(join(tmpdir(), 'fleetboot-bench-tftp-'));
const root = join(work, 'root');
const outDir = join(work, 'out');
const children: ChildProcess[] = [];

async function freeUdpPort(): Promise<number> {
  // A free TCP port number is, in practice, free for UDP on loopback too; checked by the readiness probe.
  return new Promise((res) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => res(p));
    });
  });
}

async function waitReady(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const r = await execa('curl', ['-s', '--max-time', '2', '-o', '/dev/null', `tftp://127.0.0.1:${port}/undionly.kpxe`], { reject: false });
    if (r.exitCode === 0) return;
    await new Promise((r2) => setTimeout(r2, 100));
  }
  throw new Error(`server on ${port} never answered`);
}

async function startServer(name: string): Promise<Server> {
  const port = name === 'dnsmasq' ? 69 : await freeUdpPort();
  let proc: ChildProcess;
  if (name === 'fleetboot' || name === 'fleetboot-js' || name === 'fleetboot-nopoll') {
    // fleetboot-js: the same server with the native data path switched off (src/tftp/native.ts);
    // fleetboot-nopoll: native without busy polling (spin_recv in native/tftp_data.c).
    const env =
      name === 'fleetboot-js'
        ? { ...process.env, FLEETBOOT_TFTP_NATIVE: '0' }
        : name === 'fleetboot-nopoll'
          ? { ...process.env, FLEETBOOT_TFTP_BUSY_POLL_US: '0' }
          : process.env;
    proc = spawn(process.execPath, ['--import', 'tsx', join(repo, 'bench/tftp/serve-fleetboot.ts'), String(port), root], { cwd: repo, env, stdio: ['ignore', 'ignore', 'inherit'] });
  } else if (name === 'tftpd-hpa') {
    proc = spawn('in.tftpd', ['--foreground', '--address', `127.0.0.1:${port}`, '--secure', root], { stdio: ['ignore', 'ignore', 'inherit'] });
  } else if (name === 'dnsmasq') {
    proc = spawn(
      'dnsmasq',
      ['--no-daemon', '--port=0', '--enable-tftp', `--tftp-root=${root}`, '--listen-address=127.0.0.1', '--bind-interfaces', '--conf-file=/dev/null', '--pid-file=', '--tftp-max=2000', '--quiet-tftp', '--log-facility=/dev/null'],
      { stdio: ['ignore', 'ignore', 'ignore'] },
    );
  } else throw new Error(`unknown server ${name}`);
  children.push(proc);
  await waitReady(port);
  return { name, port, proc };
}

const clockTicks = Number(execSync('getconf CLK_TCK').toString().trim()) || 100;

/**
 * CPU time the server has used, its reaped children included (in.tftpd forks per transfer):
 * /proc/PID/stat utime + stime + cutime + cstime (proc(5)), in ms. With a lock-step client
 * as the bottleneck, MB/s ties; this shows what each server spends per transfer.
 */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // f[0] is field 3 (state): utime..cstime are fields 14..17.
  return ((Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) * 1000) / clockTicks;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

interface Scenario {
  label: string;
  run: (port: number, out: string) => Promise<unknown>;
}

const scenarios: Scenario[] = [
  ...[512, 1432, 1468].map((b) => ({
    label: `lock-step blksize ${b} (curl)`,
    run: (port: number, out: string) => execa('curl', ['-sS', '--fail', '--max-time', '300', '--tftp-blksize', String(b), '-o', out, `tftp://127.0.0.1:${port}/big.bin`]),
  })),
  ...[4, 16].map((w) => ({
    label: `windowsize ${w} blksize 1468 (atftp)`,
    run: (port: number, out: string) =>
      execa('atftp', ['--option', 'blksize 1468', '--option', `windowsize ${w}`, '-g', '-r', 'big.bin', '-l', out, '127.0.0.1', String(port)], { timeout: 300_000 }),
  })),
];

async function main(): Promise<void> {
  prepareFiles();
  const names = flags.servers.split(',');
  const servers: Server[] = [];
  for (const n of names) servers.push(await startServer(n));
  console.log(`servers: ${servers.map((s) => `${s.name}@${s.port}`).join(', ')}; file ${flags['size-mib']} MiB; ${rounds} rounds`);

  if (!flags['no-throughput']) {
    const big = readFileSync(join(root, 'big.bin'));
    const mbps = new Map<string, number[]>();
    const cpu = new Map<string, number[]>();
    for (let r = 0; r < rounds; r++) {
      for (const sc of scenarios) {
        const order = servers.map((_, i) => servers[(i + r) % servers.length]!);
        for (const s of order) {
          const out = join(outDir, `${s.name}.bin`);
          rmSync(out, { force: true });
          const c0 = cpuMs(s.proc.pid!);
          const t0 = performance.now();
          await sc.run(s.port, out);
          const sec = (performance.now() - t0) / 1000;
          cpu.set(`${sc.label}|${s.name}`, [...(cpu.get(`${sc.label}|${s.name}`) ?? []), cpuMs(s.proc.pid!) - c0]);
          if (!readFileSync(out).equals(big)) throw new Error(`${s.name} ${sc.label}: copy differs`);
          const key = `${sc.label}|${s.name}`;
          mbps.set(key, [...(mbps.get(key) ?? []), sizeBytes / 1e6 / sec]);
        }
      }
      process.stderr.write(`round ${r + 1}/${rounds} done\n`);
    }
    const hdr = ['scenario', ...servers.map((s) => `${s.name} MB/s`), ...servers.slice(1).map((s) => `fleetboot/${s.name}`)];
    console.log(`\n| ${hdr.join(' | ')} |\n|${hdr.map(() => '---').join('|')}|`);
    const hpaLock = median(mbps.get(`lock-step blksize 1468 (curl)|tftpd-hpa`) ?? [NaN]);
    for (const sc of scenarios) {
      const meds = servers.map((s) => median(mbps.get(`${sc.label}|${s.name}`)!));
      const ratios = meds.slice(1).map((m) => (meds[0]! / m).toFixed(2));
      console.log(`| ${sc.label} | ${meds.map((m) => m.toFixed(1)).join(' | ')} | ${ratios.join(' | ')} |`);
    }
    console.log(`\n| server CPU ms per file (median) | ${servers.map((s) => s.name).join(' | ')} |\n|${['', ...servers].map(() => '---').join('|')}|`);
    for (const sc of scenarios) console.log(`| ${sc.label} | ${servers.map((s) => median(cpu.get(`${sc.label}|${s.name}`)!).toFixed(0)).join(' | ')} |`);
    const ws16 = median(mbps.get(`windowsize 16 blksize 1468 (atftp)|fleetboot`) ?? [NaN]);
    if (!Number.isNaN(hpaLock)) console.log(`\nfleetboot windowsize 16 / tftpd-hpa lock-step 1468: ${(ws16 / hpaLock).toFixed(2)}x (goal >= 6)`);
  }

  if (!flags['no-storm']) {
    const times = new Map<string, number[]>();
    const fails = new Map<string, number>();
    for (let r = 0; r < stormRounds; r++) {
      const order = servers.map((_, i) => servers[(i + r) % servers.length]!);
      for (const s of order) {
        const res = await execa(process.execPath, ['--import', 'tsx', join(repo, 'bench/tftp/storm-client.ts'), String(s.port), 'undionly.kpxe', join(root, 'undionly.kpxe'), String(stormClients)], { cwd: repo });
        const o = JSON.parse(res.stdout) as { ms: number; failures: number; errors: Record<string, number> };
        times.set(s.name, [...(times.get(s.name) ?? []), o.ms]);
        fails.set(s.name, (fails.get(s.name) ?? 0) + o.failures);
        if (o.failures) process.stderr.write(`${s.name} storm round ${r + 1}: ${JSON.stringify(o.errors)}\n`);
      }
    }
    console.log(`\nboot storm: ${stormClients} clients at once, undionly.kpxe (${readFileSync(join(root, 'undionly.kpxe')).length} B), blksize 1432, ${stormRounds} rounds`);
    console.log('| server | median ms | all rounds ms | failures (all rounds) | vs fleetboot |\n|---|---|---|---|---|');
    const fb = median(times.get(servers[0]!.name)!);
    for (const s of servers) {
      const m = median(times.get(s.name)!);
      console.log(`| ${s.name} | ${m} | ${times.get(s.name)!.join(', ')} | ${fails.get(s.name)} | ${(m / fb).toFixed(2)} |`);
    }
  }
}

/** Files world-readable: dnsmasq drops to `nobody` and tftpd-hpa to its user before reading. */
function prepareFiles(): void {
  chmodSync(work, 0o755);
  for (const d of [root, outDir]) {
    mkdirSync(d, { recursive: true });
    chmodSync(d, 0o755);
  }
  writeFileSync(join(root, 'big.bin'), randomBytes(sizeBytes), { mode: 0o644 });
  copyFileSync('/usr/lib/ipxe/undionly.kpxe', join(root, 'undionly.kpxe'));
  chmodSync(join(root, 'undionly.kpxe'), 0o644);
}

try {
  await main();
} finally {
  for (const c of children) c.kill('SIGTERM');
  rmSync(work, { recursive: true, force: true });
}
