// What a test needs from the machine: root, and commands or files from Debian packages. A test
// passes `requires(...)` as its `skip` option, so it skips with a message naming what is
// missing and the package that gives it (lab/debian-packages.txt, the list that
// lab/install-deps.sh installs and `npm test` runs as root) instead of failing.
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { repoRoot } from './fixtures.ts';

export const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** Command or file -> the Debian package that gives it, from lab/debian-packages.txt. */
function packageIndex(): Map<string, string> {
  const index = new Map<string, string>();
  for (const line of readFileSync(join(repoRoot, 'lab', 'debian-packages.txt'), 'utf8').split('\n')) {
    const [pkg, ...gives] = line.replace(/#.*/, '').trim().split(/\s+/);
    if (!pkg) continue;
    for (const thing of gives) index.set(thing, pkg);
  }
  return index;
}

// sbin too: a non-root PATH often lacks it, and radvd or sysctl live there.
const searchPath = [...(process.env['PATH'] ?? '').split(delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin'].filter(Boolean);

function present(thing: string): boolean {
  if (thing.includes('/')) return existsSync(thing);
  return searchPath.some((dir) => {
    try {
      accessSync(join(dir, thing), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** Of `things` (command names, or absolute paths of files), those this machine lacks, each with its package. */
export function missingOf(things: readonly string[]): { thing: string; pkg: string | null }[] {
  const index = packageIndex();
  return things.filter((t) => !present(t)).map((thing) => ({ thing, pkg: index.get(thing) ?? null }));
}

export interface Needs {
  /** Why the test needs root, when it does (network namespaces, taps). */
  root?: string;
  /** Commands (looked up on PATH and in sbin) or absolute file paths. */
  commands?: readonly string[];
  /** Anything else, as a check that returns what is missing (or null). */
  other?: () => string | null;
}

/**
 * `false` when everything in `needs` is here, else the skip message: what is missing and which
 * Debian package gives it.
 */
export function requires(needs: Needs): string | false {
  const what = missingOf(needs.commands ?? []).map((m) => ({ text: m.pkg ? `${m.thing} (Debian package ${m.pkg})` : m.thing, pkg: m.pkg }));
  if (needs.root && !isRoot) what.unshift({ text: `root (${needs.root})`, pkg: null });
  if (what.length === 0) return needs.other?.() ?? false;
  const pkgs = [...new Set(what.map((m) => m.pkg).filter((p): p is string => p !== null))];
  const fix = pkgs.length ? `apt-get install ${pkgs.join(' ')} (npm test as root does)` : 'run npm test as root';
  return `needs ${what.map((m) => m.text).join(', ')}: ${fix}`;
}

/** A lab (`fleetboot lab up`): its network (namespace, bridge, radvd) and what builds its test platform. */
export const labNeeds: Needs = {
  root: 'the lab makes a network namespace and taps',
  commands: ['ip', 'sysctl', 'radvd', '/bin/busybox', 'cpio'],
};

/** A lab that boots VMs: QEMU under `timeout` with QEMU's iPXE NIC ROM, and taps. */
export const labBootNeeds: Needs = {
  ...labNeeds,
  commands: [...(labNeeds.commands ?? []), 'timeout', 'qemu-system-x86_64', '/usr/lib/ipxe/qemu/pxe-virtio.rom'],
  other: () => (existsSync('/dev/net/tun') ? null : "needs /dev/net/tun (the tun module) for the VMs' taps"),
};
