// What the QEMU lab's end-to-end tests share: building test platforms, waiting on the registry
// with the VMs' consoles in the failure message, and a CLI bound to the lab's config.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { findVm, labDown, type LabUpOptions } from '../../src/lab/lab.ts';
import { isAlive } from '../../src/lab/process.ts';
import { readLabState, type LabState, type LabVm } from '../../src/lab/state.ts';
import { cliPath, repoRoot } from '../fixtures.ts';

export const buildDir = join(repoRoot, 'lab-build');

/**
 * Where this test process's platforms are built: its own folder, so e2e files running at the
 * same time never replace a platform folder another is importing (the build renames its output
 * over the old one). The kernel download stays shared in lab-build/cache.
 */
let ownPlatforms: string | undefined;

/** Builds a lab test platform (lab/build-test-platform.sh) into this process's folder and returns it. */
export async function buildPlatform(version: string, extra: string[] = []): Promise<string> {
  const dir = (ownPlatforms ??= mkdtempSync(join(tmpdir(), 'fleetboot-e2e-platforms-')));
  const out = join(dir, version);
  const r = await execa(join(repoRoot, 'lab', 'build-test-platform.sh'), ['--version', version, '--build-dir', buildDir, '--out', out, ...extra], { reject: false });
  assert.equal(r.exitCode, 0, `build-test-platform.sh --version ${version} failed:\n${r.stderr}`);
  return r.stdout.trim().split('\n').at(-1)!;
}

/** Polls `probe` (a registry read) until it returns a value; the failure message carries `diagnose()`. */
export async function waitFor<T>(what: string, timeoutMs: number, probe: () => T | undefined | null | false, diagnose: () => string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined && v !== null && v !== false) return v;
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs / 1000} s waiting for ${what}\n${diagnose()}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

export const plainConsole = (file: string): string =>
  existsSync(file) ? readFileSync(file, 'utf8').replace(/\r/g, '').replace(/\x1b\[[0-9;?]*[a-zA-Z]/g, '') : '(no console output)';

/** Each VM's console and QEMU process, and the head node's log: what a timed-out wait prints. */
export function labDiagnosis(dir: string, vms: readonly (LabVm | undefined)[]): string {
  return vms
    .filter((vm): vm is LabVm => vm !== undefined)
    .map((vm) => {
      const qemuLog = join(dir, `${vm.name}.qemu.log`);
      const now = readLabState(dir);
      const proc = now && findVm(now, vm.name)?.process;
      return [
        `--- ${vm.name} console (last 25 lines):\n${plainConsole(vm.serialLog).split('\n').slice(-25).join('\n')}`,
        `--- ${vm.name} QEMU process ${proc ? `${proc.pid} ${isAlive(proc) ? 'alive' : 'gone'}` : 'none'}; its log (last 10 lines):\n${existsSync(qemuLog) ? readFileSync(qemuLog, 'utf8').split('\n').slice(-10).join('\n') : ''}`,
      ].join('\n');
    })
    .concat(`--- head node log (last 15 lines):\n${existsSync(join(dir, 'headnode.log')) ? readFileSync(join(dir, 'headnode.log'), 'utf8').split('\n').slice(-15).join('\n') : ''}`)
    .join('\n');
}

export interface CliResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** `fleetboot --config <the lab's config> ARGS`, run as an operator runs it. */
export function labCli(lab: () => LabState, cwd: () => string): (args: string[]) => Promise<CliResult> {
  return async (args) => {
    const r = await execa(process.execPath, [cliPath, '--config', lab().configFile, ...args], { cwd: cwd(), reject: false, timeout: 60_000 });
    return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
  };
}

/** Ends the lab recorded in `dir` (if any), removes the folder, and checks namespace `ns` is gone. */
export async function removeLab(dir: string | undefined, ns: string): Promise<void> {
  if (dir) {
    await labDown(dir);
    rmSync(dir, { recursive: true, force: true });
  }
  const left = await execa('ip', ['netns', 'list'], { reject: false });
  assert.ok(!left.stdout.includes(ns), `namespace ${ns} left behind`);
}

/**
 * What an e2e lab runs with unless a test says otherwise: one BIOS VM with its iPXE ROM on the
 * lab's usual subnet and port, quiet progress. `overrides` wins field by field.
 */
export function labOptions(dir: string, namespace: string, overrides: Partial<LabUpOptions> = {}): LabUpOptions {
  return {
    dir,
    namespace,
    nodes: 1,
    firmware: 'bios',
    chainload: false,
    subnet: '10.99.0.0/24',
    httpPort: 8080,
    memoryMiB: 512,
    diskMiB: 1024,
    vmTimeoutSeconds: 400,
    logLevel: 'info',
    progress: () => undefined,
    ...overrides,
  };
}
