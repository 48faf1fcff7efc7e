// The lab network: one namespace holding a bridge (the lab's admin segment, with the head
// node's address) and one tap per VM (docs/netboot-notes.md "A lab network that works"). Nothing in it
// is routed anywhere: its addresses exist only inside the namespace.
import { writeFileSync } from 'node:fs';
import { execa } from 'execa';

export const bridgeName = 'br0';

async function ip(args: string[]): Promise<void> {
  const r = await execa('ip', args, { reject: false });
  if (r.exitCode !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim() || `exit ${r.exitCode}`}`);
}

export async function namespaceExists(ns: string): Promise<boolean> {
  const r = await execa('ip', ['netns', 'list'], { reject: false });
  return r.stdout.split('\n').some((line) => line.split(' ')[0] === ns);
}

/** Creates namespace `ns` with br0 at `address/prefix`, STP off and no forward delay. */
export async function createLabNetwork(ns: string, address: string, prefix: number): Promise<void> {
  if (await namespaceExists(ns)) throw new Error(`network namespace ${ns} already exists (run 'fleetboot lab down' or 'ip netns del ${ns}')`);
  await ip(['netns', 'add', ns]);
  await ip(['-n', ns, 'link', 'set', 'lo', 'up']);
  // forward_delay 0 / stp off: a new tap forwards at once, so the first DHCPDISCOVER is not lost.
  await ip(['-n', ns, 'link', 'add', bridgeName, 'type', 'bridge', 'forward_delay', '0', 'stp_state', '0']);
  await ip(['-n', ns, 'addr', 'add', `${address}/${prefix}`, 'dev', bridgeName]);
  await ip(['-n', ns, 'link', 'set', bridgeName, 'up']);
  // docs/netboot-notes.md pitfall 1: a broadcast reply needs a route when there is no default route.
  await ip(['-n', ns, 'route', 'add', '255.255.255.255/32', 'dev', bridgeName]);
  // radvd refuses to advertise unless forwarding is on; this sysctl is per namespace.
  await execa('ip', ['netns', 'exec', ns, 'sysctl', '-q', '-w', 'net.ipv6.conf.all.forwarding=1'], { reject: false });
}

export async function addTap(ns: string, tap: string): Promise<void> {
  await ip(['-n', ns, 'tuntap', 'add', 'dev', tap, 'mode', 'tap']);
  await ip(['-n', ns, 'link', 'set', tap, 'master', bridgeName]);
  await ip(['-n', ns, 'link', 'set', tap, 'up']);
}

export async function deleteTap(ns: string, tap: string): Promise<void> {
  await execa('ip', ['-n', ns, 'link', 'del', tap], { reject: false });
}

/** Removes the namespace with everything in it (bridge, taps). */
export async function deleteLabNetwork(ns: string): Promise<void> {
  if (!(await namespaceExists(ns))) return;
  await execa('ip', ['-n', ns, 'link', 'del', bridgeName], { reject: false });
  await ip(['netns', 'del', ns]);
}

/**
 * radvd config: iPXE waits ~16 s for an IPv6 router advertisement after DHCPv4 (docs/netboot-notes.md
 * pitfall 2); any RA ends the wait. No prefix, default lifetime 0 (RFC 4861 §6.2.1: not a
 * default router), so nothing gets an IPv6 route.
 */
export function writeRadvdConfig(file: string): void {
  writeFileSync(
    file,
    `interface ${bridgeName} {\n  AdvSendAdvert on;\n  IgnoreIfMissing on;\n  MinRtrAdvInterval 3;\n  MaxRtrAdvInterval 10;\n  AdvDefaultLifetime 0;\n};\n`,
  );
}

export function radvdArgv(ns: string, configFile: string, pidFile: string): string[] {
  return ['ip', 'netns', 'exec', ns, 'radvd', '--nodaemon', '-C', configFile, '-p', pidFile, '-m', 'stderr'];
}
