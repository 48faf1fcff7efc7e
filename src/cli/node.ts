// `fleetboot node <verb>`: the fleet registry from the command line. Subcommands are added
// by the modules that own them (nodeconfig: list/show/setup/set/retire; platforms:
// set-platform) through `nodeCommand`.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { nodeView } from '../http/admin-api.ts';
import { nodeConfigContribution } from '../nodeconfig/boot-modules.ts';
import { retireNode, setNodeFields, setupNode } from '../nodeconfig/lifecycle.ts';
import { NodeConfigError } from '../nodeconfig/network.ts';
import { networkOf, zpoolLayoutOf, zpoolPlanOf } from '../nodeconfig/render.ts';
import { nodeKeysIn, rootPassword } from '../nodeconfig/secrets.ts';
import { storedSysinfoSchema } from '../nodeconfig/sysinfo.ts';
import { describePlan, parseZpoolSpec } from '../nodeconfig/zpool.ts';
import { powerActions, powerNode, type PowerAction } from '../rollout/node-power.ts';
import { powerDriverFor } from '../rollout/power-drivers.ts';
import { formatWait, registryCheckinWaiter } from '../rollout/power-manual.ts';
import { rolloutOfNode } from '../rollout/orchestrator.ts';
import type { NodeRecord } from '../store/nodes.ts';
import type { Store } from '../store/store.ts';
import { withStore } from './context.ts';
import { UsageError } from './errors.ts';
import { formatBytes, formatTable, printJson } from './output.ts';

export function nodeCommand(program: Command): Command {
  const existing = program.commands.find((c) => c.name() === 'node');
  if (existing) return existing;
  return program
    .command('node')
    .description('list, inspect and configure nodes')
    .addHelpText('after', '\nExamples:\n  fleetboot node list\n  fleetboot node show 52:54:00:12:34:56');
}

function nodeOrFail(store: Store, ref: string): NodeRecord {
  const node = store.nodes.find(ref);
  if (!node) throw new UsageError(`no node ${JSON.stringify(ref)} (give an id, UUID, MAC or hostname; see "fleetboot node list")`);
  return node;
}

/** NodeConfigErrors are the operator's to fix: one line, exit code 2. */
function asUsage<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof NodeConfigError) throw new UsageError(err.message);
    throw err;
  }
}

const iso = (t: number | null): string | null => (t === null ? null : new Date(t).toISOString().replace(/\.\d+Z$/, 'Z'));

function adminMac(n: NodeRecord): string | null {
  return (n.nics.find((c) => c.isAdmin) ?? n.nics[0])?.mac ?? null;
}

/** The UUID and who reported which spelling of it (src/uuid.ts: firmware and OS may differ in byte order). */
function uuidText(node: NodeRecord): string {
  if (node.uuid === null) return '-';
  const bySpelling = new Map<string, string[]>();
  for (const [source, spelling] of Object.entries(node.uuidSources)) bySpelling.set(spelling, [...(bySpelling.get(spelling) ?? []), source]);
  const own = bySpelling.get(node.uuid);
  const others = [...bySpelling].filter(([spelling]) => spelling !== node.uuid);
  const parts = [`${node.uuid}${own ? ` (from ${own.join(', ')})` : ''}`];
  for (const [spelling, sources] of others) parts.push(`${spelling} (from ${sources.join(', ')}: the same machine in the other SMBIOS byte order)`);
  return parts.join('\n             ');
}

/** The rollout the node is in, for `node show --json`; null when none. */
function rolloutView(store: Store, node: NodeRecord): { id: number; target: string; state: string; wave: number; canary: boolean; step: string; reason: string | null } | null {
  const held = rolloutOfNode(store.rollouts, node.id);
  if (!held) return null;
  const { rollout: r, step } = held;
  return { id: r.id, target: r.target, state: r.state, wave: step.wave, canary: step.canary, step: step.state, reason: step.reason };
}

function showText(store: Store, node: NodeRecord): string {
  const si = storedSysinfoSchema.safeParse(node.sysinfo);
  const sys = si.success ? si.data : null;
  const lines: string[] = [];
  lines.push(`node ${node.id}  ${node.hostname ?? '(no hostname)'}  ${node.state}`);
  lines.push(`  uuid:      ${uuidText(node)}`);
  lines.push(`  platform:  boots ${node.bootPlatform ?? '(default)'}, running ${node.currentPlatform ?? '-'}`);
  const rv = rolloutView(store, node);
  if (rv) lines.push(`  rollout:   ${rv.id} to ${rv.target} (${rv.state}), wave ${rv.wave}${rv.canary ? ' canary' : ''}, step ${rv.step}${rv.reason ? `: ${rv.reason}` : ''}`);
  lines.push(`  last boot: ${iso(node.lastBoot) ?? '-'}   last seen: ${iso(node.lastSeen) ?? '-'}`);
  lines.push(`  hardware:  ${sys?.cpu ? `${sys.cpu.count} x ${sys.cpu.model}` : 'not reported'}${sys?.ramBytes ? `, ${formatBytes(sys.ramBytes)} RAM` : ''}`);
  if (Object.keys(node.traits).length) lines.push(`  traits:    ${Object.entries(node.traits).map(([k, v]) => `${k}=${v}`).join(' ')}`);
  lines.push('', formatTable(['MAC', 'TAGS', 'IP', 'MTU', 'ADMIN'], node.nics.map((c) => [c.mac, c.nicTag, c.ip, c.mtu, c.isAdmin ? 'yes' : ''])));
  if (sys && sys.disks.length) {
    lines.push('', formatTable(['DISK', 'SIZE', 'SSD', 'REMOVABLE'], sys.disks.map((d) => [d.name, formatBytes(d.sizeBytes), d.ssd ? 'yes' : 'no', d.removable ? 'yes' : 'no'])));
  }
  const network = networkOf(node);
  lines.push('', `network:   ${network ? `${network.hostname}${network.dnsDomain ? `.${network.dnsDomain}` : ''}, ${network.interfaces.map((i) => `${i.tag}${i.vlan ? `/vlan${i.vlan}` : ''} ${i.ip}`).join(', ') || 'no addresses'}` : 'not set up (fleetboot node setup NODE --network FILE)'}`);
  const layout = zpoolLayoutOf(node);
  const { plan, error } = zpoolPlanOf(node);
  lines.push(`zpool:     layout ${layout.class}${layout.exclude.length ? `, excluding ${layout.exclude.join(',')}` : ''}; plan ${plan ? `${describePlan(plan)} (${formatBytes(plan.usableBytes)} usable): ${plan.reason}` : `none: ${error}`}`);
  if (plan) {
    for (const v of plan.vdevs) lines.push(`  ${v.type.padEnd(7)} ${v.disks.join(' ')}`);
    if (plan.log) lines.push(`  log     ${plan.log.type} ${plan.log.disks.join(' ')}`);
    if (plan.cache.length) lines.push(`  cache   ${plan.cache.join(' ')}`);
    if (plan.spares.length) lines.push(`  spares  ${plan.spares.join(' ')}`);
    if (plan.unused.length) lines.push(`  unused  ${plan.unused.join(' ')}`);
  }
  const c = nodeConfigContribution(node);
  const args = Object.entries(c.bootArgs).map(([k, v]) => `${k}=${v}`);
  lines.push(`boot args: ${args.join(' ') || '-'}`);
  for (const m of c.modules) lines.push(`  module ${m.path} type=${m.type} name=${m.name}`);
  const timeline = store.events.timeline(node.id, 30);
  lines.push('', 'boot timeline:');
  if (timeline.length === 0) lines.push('  (no events)');
  for (const e of timeline) {
    const d = Object.entries(e.detail)
      .filter(([, v]) => v !== null && typeof v !== 'object')
      .map(([k, v]) => `${k}=${String(v)}`)
      .join(' ');
    lines.push(`  ${iso(e.at)}  ${e.event.padEnd(12)} ${d}`);
  }
  return `${lines.join('\n')}\n`;
}

export function registerNode(program: Command): void {
  const node = nodeCommand(program);

  node
    .command('list')
    .description('the fleet: one line per node')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExamples:\n  fleetboot node list\n  fleetboot node list --json | jq \'.nodes[] | select(.state == "unknown")\'')
    .action(async (o: { json?: boolean }, cmd: Command) => {
      await withStore(cmd, (store) => {
        const nodes = store.nodes.list();
        if (o.json) return printJson({ nodes: nodes.map(nodeView) });
        const rows = nodes.map((n) => [n.id, n.hostname, n.state, adminMac(n), n.nics.find((c) => c.ip)?.ip, n.currentPlatform, n.bootPlatform, iso(n.lastSeen)]);
        process.stdout.write(`${formatTable(['ID', 'HOSTNAME', 'STATE', 'ADMIN MAC', 'IP', 'RUNNING', 'BOOTS', 'LAST SEEN'], rows)}\n`);
      });
    });

  node
    .command('show')
    .description('one node: hardware, network, proposed zpool plan, boot args and boot timeline')
    .argument('<node>', 'node id, UUID, MAC or hostname')
    .option('--json', 'print JSON')
    .option('--root-password', 'also print the root password its first boot sets (derived from the head node key)')
    .addHelpText('after', '\nExamples:\n  fleetboot node show 52:54:00:12:34:56\n  fleetboot node show cn7 --json | jq .zpoolPlan')
    .action(async (ref: string, o: { json?: boolean; rootPassword?: boolean }, cmd: Command) => {
      await withStore(cmd, (store, { config }) => {
        const n = nodeOrFail(store, ref);
        const password = o.rootPassword ? rootPassword(nodeKeysIn(config.dataDir), n) : undefined;
        if (o.json) {
          const { plan, error } = zpoolPlanOf(n);
          const c = nodeConfigContribution(n);
          return printJson({
            node: nodeView(n),
            zpoolPlan: plan,
            zpoolError: error,
            bootArgs: c.bootArgs,
            modules: c.modules,
            rollout: rolloutView(store, n),
            timeline: store.events.timeline(n.id).map((e) => ({ ...e, at: iso(e.at) })),
            ...(password !== undefined ? { rootPassword: password } : {}),
          });
        }
        process.stdout.write(showText(store, n));
        if (password !== undefined) process.stdout.write(`root password: ${password ?? '(none: the node is not set up)'}\n`);
      });
    });

  node
    .command('setup')
    .description('give a node its network and zpool layout; it boots with them and sets itself up (state setting_up)')
    .argument('<node>', 'node id, UUID, MAC or hostname')
    .requiredOption('--network <file>', 'network config JSON (hostname, nics, aggregations, interfaces, routes, resolvers)')
    .option('--zpool <layout>', "zpool layout: default (disklayout's choice over every non-USB disk, the only one SmartOS first boot builds)", 'default')
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      '\nExamples:\n  fleetboot node setup 52:54:00:12:34:56 --network cn7.json\n  fleetboot node setup cn7 --network cn7.json --zpool default\n\nnetwork file:\n  {"hostname": "cn7", "dnsDomain": "lab.example", "resolvers": ["10.99.0.1"],\n   "nics": [{"mac": "52:54:00:12:34:56", "tags": ["admin"]}],\n   "interfaces": [{"tag": "admin", "ip": "10.99.0.27", "netmask": "255.255.255.0", "gateway": "10.99.0.1"}],\n   "routes": {"10.50.0.0/16": "10.99.0.254"}}',
    )
    .action(async (ref: string, o: { network: string; zpool: string; json?: boolean }, cmd: Command) => {
      let doc: unknown;
      try {
        doc = JSON.parse(readFileSync(o.network, 'utf8')) as unknown;
      } catch (err) {
        throw new UsageError(`--network ${o.network}: ${(err as Error).message}`);
      }
      await withStore(cmd, (store, { config }) => {
        const n = nodeOrFail(store, ref);
        const updated = asUsage(() => setupNode(store, nodeKeysIn(config.dataDir), n, { network: doc, zpool: parseZpoolSpec(o.zpool) }));
        if (o.json) return printJson({ node: nodeView(updated) });
        const { plan, error } = zpoolPlanOf(updated);
        process.stdout.write(
          `node ${updated.id} (${updated.hostname}) set up: state ${updated.state}; zpool ${plan ? describePlan(plan) : `plan pending (${error})`}\n` +
            'it takes the config on its next boot (fleetboot node show to follow it)\n',
        );
      });
    });

  node
    .command('set')
    .description('change fields of a node: hostname, state, traits.<name>, bootarg.<key>, power.<field> (power.kind=ipmi|redfish|ssh|manual|qemu; empty value removes a trait / boot arg / power setting)')
    .argument('<node>', 'node id, UUID, MAC or hostname')
    .argument('<key=value...>', 'assignments')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExamples:\n  fleetboot node set cn7 traits.rack=b12 traits.role=compute\n  fleetboot node set cn7 state=failed\n  fleetboot node set cn7 bootarg.ipmi_console=ttyb bootarg.old=\n' +
        '  fleetboot node set cn7 power.kind=ipmi power.host=10.0.5.17 power.user=admin power.passwordFile=/etc/fleetboot/bmc-cn7.pw\n' +
        '  fleetboot node set cn7 power.kind=redfish power.url=https://10.0.5.17 power.user=admin power.passwordFile=/etc/fleetboot/bmc-cn7.pw power.caFile=/etc/fleetboot/bmc-cn7.pem')
    .action(async (ref: string, assignments: string[], o: { json?: boolean }, cmd: Command) => {
      await withStore(cmd, (store) => {
        const updated = asUsage(() => setNodeFields(store, nodeOrFail(store, ref), assignments));
        if (o.json) return printJson({ node: nodeView(updated) });
        process.stdout.write(`node ${updated.id}: ${assignments.join(' ')}\n`);
      });
    });

  node
    .command('power')
    .description("power a node through its driver (its power.* settings): status, on, off, cycle (a cycle boots it from the network again) or pxe (boot from the network next, power untouched). A node with power.kind=manual: prints what to do by hand, then waits for its check-in (on, cycle)")
    .argument('<node>', 'node id, UUID, MAC or hostname')
    .argument('<action>', powerActions.join('|'))
    .option('--json', 'print JSON (a manual node\'s instructions and progress go to stderr)')
    .addHelpText(
      'after',
      '\nExamples:\n  fleetboot node set cn7 power.kind=qemu power.qmpSocket=/var/lab/node0.qmp\n  fleetboot node power cn7 cycle\n  fleetboot node power cn7 pxe\n  fleetboot node power cn7 status --json\n' +
        '  fleetboot node set cn7 power.kind=ssh power.host=10.0.0.17 power.keyFile=/etc/fleetboot/ssh/id_ed25519 power.knownHostsFile=/etc/fleetboot/ssh/known_hosts\n' +
        '  fleetboot node set cn8 power.kind=manual "power.instructions=rack 3, top switch"\n  fleetboot node power cn8 cycle     # prints what to do, waits for the check-in',
    )
    .action(async (ref: string, action: string, o: { json?: boolean }, cmd: Command) => {
      if (!(powerActions as readonly string[]).includes(action)) throw new UsageError(`action: expected one of ${powerActions.join(', ')}, got ${JSON.stringify(action)}`);
      await withStore(cmd, async (store) => {
        const n = nodeOrFail(store, ref);
        const operator = o.json ? process.stderr : process.stdout;
        const started = Date.now();
        let waited = false;
        const result = await powerNode(store, n, action as PowerAction, (spec) =>
          powerDriverFor(spec, {
            manual: {
              tell: (text) => operator.write(`${text}\n`),
              waitForCheckin: (timeoutMs) => {
                waited = true;
                operator.write(`waiting up to ${formatWait(timeoutMs)} for node ${n.id} to check in...\n`);
                return registryCheckinWaiter(store, n.id, { progress: (ms, of) => operator.write(`  still waiting for node ${n.id} (${formatWait(ms)} of ${formatWait(of)})\n`) })(timeoutMs);
              },
            },
          }),
        );
        if (waited) operator.write(`node ${n.id} checked in ${formatWait(Date.now() - started)} after the instructions\n`);
        if (o.json) return printJson({ node: n.id, ...result });
        process.stdout.write(`node ${n.id}: ${action === 'status' ? '' : `${action} done; `}power ${result.state} (${result.driver})\n`);
      });
    });

  node
    .command('retire')
    .description('take a node out of service: it gets no config modules and its token stops working')
    .argument('<node>', 'node id, UUID, MAC or hostname')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExample:\n  fleetboot node retire cn7')
    .action(async (ref: string, o: { json?: boolean }, cmd: Command) => {
      await withStore(cmd, (store) => {
        const updated = retireNode(store, nodeOrFail(store, ref));
        if (o.json) return printJson({ node: nodeView(updated) });
        process.stdout.write(`node ${updated.id} retired\n`);
      });
    });

  node
    .command('rm')
    .description('delete a node from the registry with its boot events, releasing its leases; refused while a rollout holds it')
    .argument('<node>', 'node id, UUID, MAC or hostname')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExample:\n  fleetboot node rm cn7     # the machine is registered afresh if it boots again (unknownNodePolicy)')
    .action(async (ref: string, o: { json?: boolean }, cmd: Command) => {
      await withStore(cmd, (store) => {
        const removed = store.removeNode(nodeOrFail(store, ref).id, (n) => {
          const held = rolloutOfNode(store.rollouts, n.id);
          if (held) throw new UsageError(`node ${n.id} is in rollout ${held.rollout.id} (step ${held.step.state}); cancel it (fleetboot rollout cancel ${held.rollout.id}) or wait for it to finish`);
        });
        const { node: n, events, leases } = removed;
        if (o.json) return printJson({ removed: n.id, hostname: n.hostname, macs: n.nics.map((x) => x.mac), bootEvents: events, leasesReleased: leases });
        process.stdout.write(`removed node ${n.id}${n.hostname ? ` (${n.hostname})` : ''}: ${events} boot event(s) deleted, ${leases} lease(s) released\n`);
      });
    });
}
