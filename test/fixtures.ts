// Shared test fixtures: temporary folders, an in-process head node on ephemeral ports, and
// the CLI run as a child process exactly as an operator runs it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa, type Result } from 'execa';
import { parseConfig } from '../src/config/load.ts';
import type { ConfigInput, FleetbootConfig } from '../src/config/schema.ts';
import { HeadNode } from '../src/headnode.ts';
import { silentLogger } from '../src/log.ts';

export const repoRoot = resolve(import.meta.dirname, '..');
export const cliPath = join(repoRoot, 'bin', 'fleetboot.js');

/** Every network namespace a test creates starts with this, so the check after the suite
 *  (test/leftovers.ts) can tell them from anyone else's (the lab's own default is fb-lab). */
export const testNamespacePrefix = 'fbt-';

/** A network namespace name for this test process: `fbt-<pid>-<tag>`. */
export function testNamespace(tag: string): string {
  return `${testNamespacePrefix}${process.pid}-${tag}`;
}

/** A temporary folder removed when the test ends. */
export function tempDir(t: { after: (fn: () => void) => void }, prefix = 'fleetboot-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * A temporary folder with a lab folder `lab` in it for `fleetboot lab up --dir`. When the test
 * ends, passed or failed, `lab down` runs before the folder goes: removed first, it would take
 * the lab's state file with it and leave the lab's processes running with nothing to find them by.
 */
export function tempLab(t: { after: (fn: () => Promise<void>) => void }, namespace: string): { dir: string; labDir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'fleetboot-test-'));
  const labDir = join(dir, 'lab');
  t.after(async () => {
    try {
      await execa(process.execPath, [cliPath, 'lab', 'down', '--dir', labDir], { cwd: dir, reject: false, timeout: 60_000 });
      // A lab up that failed before writing its state file may still have made the namespace.
      await execa('ip', ['netns', 'del', namespace], { reject: false });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  return { dir, labDir };
}

/**
 * A config rooted in `dir`, HTTP on an ephemeral loopback port, DHCP and TFTP off unless overridden.
 * An `http` override is merged into those defaults: replacing them would put the head node on the
 * embedded default port 8080, which tests running in parallel would fight over.
 */
export function testConfig(dir: string, overrides: ConfigInput = {}): FleetbootConfig {
  const http = { listen: '127.0.0.1', port: 0, ...overrides.http };
  return parseConfig({ log: { level: 'silent' }, ...overrides, http }, dir, 'test');
}

export interface RunningHeadNode {
  head: HeadNode;
  url: string;
  token: string;
}

/** Starts a head node in-process; stopped when the test ends. */
export async function startHeadNode(
  t: { after: (fn: () => Promise<void> | void) => void },
  dir: string,
  overrides: ConfigInput = {},
  now?: () => number,
): Promise<RunningHeadNode> {
  const head = new HeadNode(testConfig(dir, overrides), { log: silentLogger, ...(now ? { now } : {}) });
  await head.start();
  t.after(() => head.stop());
  const addr = head.http.address()!;
  return { head, url: `http://127.0.0.1:${addr.port}`, token: head.apiToken };
}

/** Runs `fleetboot ARGS` in `cwd`; never throws on a non-zero exit. */
export function runCli(args: string[], cwd: string, env: Record<string, string> = {}, timeoutMs = 60_000): Promise<Result> {
  return execa(process.execPath, [cliPath, ...args], { cwd, reject: false, env, timeout: timeoutMs });
}
