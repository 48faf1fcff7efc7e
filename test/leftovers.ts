// Run by test/run.sh after the whole suite, passed or failed: finds what the tests started and
// left behind, says what it was, removes it, and exits 1 when there was anything.
//   node --import tsx test/leftovers.ts RUN_ID RUN_DIR
// Only what is clearly the tests' own is touched: processes whose environment carries this
// run's FLEETBOOT_TEST_RUN=RUN_ID (test/run.sh exports it; children inherit it) or whose command
// line or working folder names RUN_DIR (the run's TMPDIR), the processes inside a namespace
// named with the tests' prefix whose test process has ended (another run's live tests are left alone), and those namespaces.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { execa } from 'execa';
import { startTicksOf, stopProcess } from '../src/lab/process.ts';
import type { LabProcess } from '../src/lab/state.ts';
import { testNamespacePrefix } from './fixtures.ts';

interface Leftover {
  proc: LabProcess;
  command: string;
  why: string;
}

function read(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/** This process and its ancestors: they carry the marker's folder in their arguments. */
function ownLine(): Set<number> {
  const own = new Set<number>();
  for (let pid = process.pid; pid > 1 && !own.has(pid); ) {
    own.add(pid);
    const stat = read(`/proc/${pid}/stat`);
    if (!stat) break;
    pid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  }
  return own;
}

/** Whether a process with this PID exists (EPERM: it does, owned by someone else). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * The tests' namespaces whose test process (the PID in `fbt-<pid>-<tag>`) has ended: every one
 * of this run's, as all its test processes are gone by now, and any a crashed earlier run left.
 * A namespace whose test process still runs belongs to another test run going on beside this one.
 */
async function testNamespaces(): Promise<string[]> {
  const r = await execa('ip', ['netns', 'list'], { reject: false });
  if (r.failed) return [];
  return String(r.stdout)
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((name) => name.startsWith(testNamespacePrefix))
    .filter((name) => {
      const pid = Number(/^\d+/.exec(name.slice(testNamespacePrefix.length))?.[0]);
      return !(pid > 0 && alive(pid));
    });
}

async function pidsIn(ns: string): Promise<number[]> {
  const r = await execa('ip', ['netns', 'pids', ns], { reject: false });
  return String(r.stdout).split('\n').filter(Boolean).map(Number).filter(Number.isInteger);
}

async function main(): Promise<number> {
  const [runId, runDir] = process.argv.slice(2);
  if (!runId || !runDir) {
    process.stderr.write('usage: node --import tsx test/leftovers.ts RUN_ID RUN_DIR\n');
    return 2;
  }
  const marker = `FLEETBOOT_TEST_RUN=${runId}`;
  const own = ownLine();
  const namespaces = await testNamespaces();
  const inNamespace = new Map<number, string>();
  for (const ns of namespaces) for (const pid of await pidsIn(ns)) inNamespace.set(pid, ns);

  const found: Leftover[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (own.has(pid)) continue;
    const cmdline = read(`/proc/${pid}/cmdline`);
    if (cmdline === null || cmdline === '') continue; // gone, or a kernel thread
    const command = cmdline.split('\0').filter(Boolean).join(' ');
    let cwd = '';
    try {
      cwd = readlinkSync(`/proc/${pid}/cwd`);
    } catch {
      // another user's process: its folder is not ours to read
    }
    const why = read(`/proc/${pid}/environ`)?.split('\0').includes(marker)
      ? 'started by the tests'
      : command.includes(runDir)
        ? `names ${runDir}`
        : cwd.startsWith(runDir)
          ? `runs in ${cwd}`
          : inNamespace.has(pid)
            ? `runs in namespace ${inNamespace.get(pid)}`
            : null;
    if (!why) continue;
    const ticks = startTicksOf(pid);
    if (ticks === null) continue; // exited (or a zombie) while we looked
    found.push({ proc: { pid, startTicks: ticks }, command: command.length > 200 ? `${command.slice(0, 200)}...` : command, why });
  }

  for (const f of found) process.stderr.write(`leftover: process ${f.proc.pid} (${f.why}): ${f.command}\n`);
  for (const ns of namespaces) process.stderr.write(`leftover: network namespace ${ns}\n`);
  if (found.length === 0 && namespaces.length === 0) {
    process.stdout.write('leftovers: none (no process or network namespace of the tests is left)\n');
    return 0;
  }
  // By PID checked against its start time (stopProcess): a PID reused since is left alone.
  const stopped = await Promise.all(found.map((f) => stopProcess(f.proc, 5000)));
  for (const ns of namespaces) await execa('ip', ['netns', 'del', ns], { reject: false });
  const still = found.filter((_, i) => !stopped[i]).map((f) => f.proc.pid);
  const nsLeft = (await testNamespaces()).filter((ns) => namespaces.includes(ns));
  process.stderr.write(
    `leftovers: the tests left ${found.length} process(es) and ${namespaces.length} network namespace(s)` +
      (still.length || nsLeft.length ? `; could not remove ${[...still.map(String), ...nsLeft].join(', ')}\n` : '; removed them\n'),
  );
  return 1;
}

process.exitCode = await main();
