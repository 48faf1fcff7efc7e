// The lab network: one namespace holding a bridge (the lab's admin segment, with the head
// node's address) and one tap per VM (docs/netboot-notes.md "A lab network that works"). Nothing in it
// is routed anywhere: its addresses exist only inside the namespace.
import { writeFileSync } from 'node:fs';
import { execa } from 'execa';
import { z } from 'zod';

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

/** The nftables table `lab up --loss` makes inside the lab namespace. */
export const lossTable = 'fleetboot_loss';

/**
 * Packet loss on the lab bridge (`lab up --loss PERCENT`). The kernel here has no netem, so
 * nftables drops at random: `numgen random mod 100 < PERCENT` (nft(8) "NUMGEN EXPRESSION").
 * The `bridge` family sees every frame through br0 (nft(8) "ADDRESS FAMILIES", bridge hooks):
 * `input` a VM's packets to the head node's address, `output` the head node's to each tap (a
 * flooded broadcast once per port), `forward` VM to VM. UDP and TCP only, so radvd's ICMPv6
 * advertisements and ARP still pass. Each rule counts its drops. Two dynamic sets say whose
 * packets were lost, so a test knows which VM had to retry: `from_port`, per tap and protocol,
 * what a VM sent the head node; `dhcp_replies`, per tap and client MAC, the DHCP replies lost
 * on their way out. Replies are broadcast (RFC 2131 §4.1) and so flooded to every port; the
 * copy that matters is the one to the port of the MAC in chaddr, 28 bytes into the BOOTP
 * message (RFC 2131 §2, Figure 1), after the 8-byte UDP header: bit 288 of `@th`.
 */
export function lossRuleset(percent: number): string {
  if (!Number.isInteger(percent) || percent < 1 || percent > 99) throw new Error(`packet loss ${percent}: expected a whole percentage from 1 to 99`);
  const drop = `meta l4proto { udp, tcp } numgen random mod 100 < ${percent}`;
  const chain = (hook: 'input' | 'output' | 'forward', rule: string): string =>
    `  chain ${hook} {\n    type filter hook ${hook} priority 0; policy accept;\n    ${rule}\n  }\n`;
  return (
    `table bridge ${lossTable} {\n` +
    '  set from_port {\n    type ifname . inet_proto\n    flags dynamic\n    counter\n  }\n' +
    '  set dhcp_replies {\n    typeof oifname . @th,288,48\n    flags dynamic\n    counter\n  }\n' +
    '  chain lost_out {\n    udp sport 67 udp dport 68 update @dhcp_replies { oifname . @th,288,48 }\n    drop\n  }\n' +
    chain('input', `${drop} update @from_port { iifname . meta l4proto } counter drop`) +
    chain('output', `${drop} counter jump lost_out`) +
    chain('forward', `${drop} counter drop`) +
    '}\n'
  );
}

/** Loads the loss table into namespace `ns` (replacing one there already). */
export async function applyLoss(ns: string, percent: number): Promise<void> {
  const rules = lossRuleset(percent);
  await execa('ip', ['netns', 'exec', ns, 'nft', 'delete', 'table', 'bridge', lossTable], { reject: false });
  const r = await execa('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], { input: rules, reject: false });
  if (r.exitCode !== 0) {
    const missing = r.failed && r.exitCode === undefined;
    throw new Error(missing ? 'packet loss needs nft: install the Debian package nftables (lab/install-deps.sh does)' : `nft -f (loss table): ${r.stderr.trim() || `exit ${r.exitCode}`}`);
  }
}

export async function removeLoss(ns: string): Promise<void> {
  await execa('ip', ['netns', 'exec', ns, 'nft', 'delete', 'table', 'bridge', lossTable], { reject: false });
}

// `nft -j list table` (libnftables-json(5)): only the parts read here.
const counterSchema = z.object({ packets: z.number().int().nonnegative(), bytes: z.number().int().nonnegative() });
const nftRuleSchema = z.object({
  rule: z.object({ chain: z.enum(['input', 'output', 'forward']), expr: z.array(z.object({ counter: counterSchema.optional() }).passthrough()) }),
});
const nftSetSchema = z.object({
  set: z.object({
    name: z.enum(['from_port', 'dhcp_replies']),
    elem: z.array(z.object({ elem: z.object({ val: z.object({ concat: z.tuple([z.string(), z.union([z.string(), z.number().int()])]) }), counter: counterSchema }) })).optional(),
  }),
});

export interface LossCounters {
  /** Packets dropped per hook: input (VM to head node), output (head node to VM), forward (VM to VM). */
  byHook: Record<'input' | 'output' | 'forward', number>;
  /** Packets a VM sent the head node that were dropped, per bridge port (tap) and protocol (udp, tcp). */
  fromPort: { port: string; protocol: string; packets: number }[];
  /** DHCP replies dropped on the port of the client they were for, per port and client MAC. */
  dhcpRepliesLost: { port: string; mac: string; packets: number }[];
}

/** chaddr as nft prints a 48-bit raw payload: a number, or 0x-prefixed hex. */
function macOfChaddr(v: string | number): string {
  const hex = (typeof v === 'number' ? v.toString(16) : v.replace(/^0x/, '')).padStart(12, '0');
  return hex.match(/../g)!.join(':');
}

/** What the loss table has dropped so far, or null when namespace `ns` has none. */
export async function readLossCounters(ns: string): Promise<LossCounters | null> {
  const r = await execa('ip', ['netns', 'exec', ns, 'nft', '-j', 'list', 'table', 'bridge', lossTable], { reject: false });
  if (r.exitCode !== 0) return null;
  const top = z.object({ nftables: z.array(z.unknown()) }).safeParse(JSON.parse(r.stdout));
  if (!top.success) throw new Error(`nft -j list table bridge ${lossTable}: not nftables JSON (${top.error.issues[0]?.message ?? 'invalid'})`);
  const out: LossCounters = { byHook: { input: 0, output: 0, forward: 0 }, fromPort: [], dhcpRepliesLost: [] };
  for (const item of top.data.nftables) {
    const rule = nftRuleSchema.safeParse(item);
    if (rule.success) {
      for (const e of rule.data.rule.expr) out.byHook[rule.data.rule.chain] += e.counter?.packets ?? 0;
      continue;
    }
    const set = nftSetSchema.safeParse(item);
    if (set.success) {
      for (const { elem } of set.data.set.elem ?? []) {
        const [port, key] = elem.val.concat;
        if (set.data.set.name === 'from_port') out.fromPort.push({ port, protocol: String(key), packets: elem.counter.packets });
        else out.dhcpRepliesLost.push({ port, mac: macOfChaddr(key), packets: elem.counter.packets });
      }
    }
  }
  return out;
}
