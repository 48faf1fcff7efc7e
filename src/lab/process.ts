// Processes the lab starts and ends: always by recorded PID, and only after checking that the
// PID still belongs to the process we started (same start time), never by name.
import { spawn } from 'node:child_process';
import { openSync, closeSync, readFileSync } from 'node:fs';
import type { LabProcess } from './state.ts';

/** Field 22 of /proc/PID/stat (start time in clock ticks), or null when the PID is gone. */
export function startTicksOf(pid: number): number | null {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const state = rest[0];
  if (state === 'Z' || state === 'X') return null; // a zombie has already exited
  const ticks = Number(rest[19]);
  return Number.isFinite(ticks) ? ticks : null;
}

export function isAlive(p: LabProcess | null): boolean {
  return p !== null && startTicksOf(p.pid) === p.startTicks;
}

/**
 * Starts `argv` detached in its own session, stdout+stderr to `logFile`, and returns its PID
 * record. It outlives this process (for `lab up --detach`) until `lab down` ends it.
 */
export function spawnDetached(argv: string[], logFile: string, env: NodeJS.ProcessEnv = process.env): LabProcess {
  const [cmd, ...args] = argv;
  if (!cmd) throw new Error('spawnDetached: empty command');
  const fd = openSync(logFile, 'a');
  try {
    const child = spawn(cmd, args, { detached: true, stdio: ['ignore', fd, fd], env });
    if (child.pid === undefined) throw new Error(`cannot start ${cmd}`);
    child.unref();
    const ticks = startTicksOf(child.pid);
    return { pid: child.pid, startTicks: ticks ?? 0 };
  } finally {
    closeSync(fd);
  }
}

/** Sends SIGTERM to our process, waits up to `graceMs`, then SIGKILL. True when it is gone. */
export async function stopProcess(p: LabProcess | null, graceMs = 5000): Promise<boolean> {
  if (!p || !isAlive(p)) return true;
  try {
    process.kill(p.pid, 'SIGTERM');
  } catch {
    return true;
  }
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!isAlive(p)) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  if (isAlive(p)) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      return true;
    }
  }
  for (let i = 0; i < 40 && isAlive(p); i++) await new Promise((r) => setTimeout(r, 50));
  return !isAlive(p);
}
