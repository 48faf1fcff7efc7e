// The config modules a configured node boots with, rendered from plain values (no store
// access): networking.json (+ .hash), answers.json (SmartOS first-boot setup), node.json
// (fleetboot's own: the full vdev plan for agents that build the pool themselves).
import { createHash } from 'node:crypto';
import type { FleetbootConfig } from '../config/schema.ts';
import type { NodeRecord } from '../store/nodes.ts';
import { adminInterface, nodeNetworkSchema, renderNetworkingJson, type NodeNetwork } from './network.ts';
import { reportedDisks, storedSysinfoSchema } from './sysinfo.ts';
import { planZpool, zpoolLayoutSchema, type ZpoolLayout, type ZpoolPlan } from './zpool.ts';

export const configModuleNames = ['networking.json', 'networking.json.hash', 'answers.json', 'node.json'] as const;
export type ConfigModuleName = (typeof configModuleNames)[number];

/** The node's stored network config, or null when it has none (not set up) or it no longer parses. */
export function networkOf(node: NodeRecord): NodeNetwork | null {
  const r = nodeNetworkSchema.safeParse(node.networkConfig);
  return r.success ? r.data : null;
}

export function zpoolLayoutOf(node: NodeRecord): ZpoolLayout {
  const r = zpoolLayoutSchema.safeParse(node.zpoolConfig ?? {});
  return r.success ? r.data : zpoolLayoutSchema.parse({});
}

/** The vdev plan for the node's layout and reported disks; an error text when it cannot be built. */
export function zpoolPlanOf(node: NodeRecord): { plan: ZpoolPlan | null; error: string | null } {
  const disks = reportedDisks(node.sysinfo);
  if (disks.length === 0) return { plan: null, error: 'no disks reported yet (the node has not checked in)' };
  try {
    return { plan: planZpool(zpoolLayoutOf(node), disks), error: null };
  } catch (err) {
    return { plan: null, error: (err as Error).message };
  }
}

export interface AnswersInput {
  network: NodeNetwork;
  layout: ZpoolLayout;
  plan: ZpoolPlan | null;
  rootPassword: string | null;
  ntpHost: string | null;
}

/**
 * answers.json, read by smartos-live's smartos_prompt_config.sh from /system/boot on a
 * node's first boot (SmartOS docs "Non-interactive Installation"): `config_console` must
 * be present for setup to run unattended, a missing key makes it prompt, so every key is
 * written, with "" (as the docs' example does) where there is nothing to say. The docs name
 * the admin NIC `admin_mac`; fleetboot writes `admin_nic` too (unknown keys are ignored).
 */
export function answersJson(a: AnswersInput): Record<string, unknown> {
  const admin = adminInterface(a.network);
  // An aggregated admin link is named by its first member: setup wants a MAC here.
  const adminMac = a.network.nics.find((n) => n.tags.includes('admin'))?.mac ?? a.network.aggregations.find((g) => g.tags.includes('admin'))?.macs[0] ?? '';
  const staticAdmin = admin && admin.ip !== 'dhcp' ? admin : undefined;
  return {
    config_console: true,
    skip_instructions: true,
    simple_headers: true,
    admin_mac: adminMac,
    admin_nic: adminMac,
    admin_ip: admin?.ip ?? 'dhcp',
    admin_netmask: staticAdmin?.netmask ?? '',
    headnode_default_gateway: admin?.gateway ?? 'none',
    dns_resolver1: a.network.resolvers[0] ?? '',
    dns_resolver2: a.network.resolvers[1] ?? '',
    dns_search: a.network.dnsDomain ?? '',
    ntp_host: a.network.ntpServers[0] ?? a.ntpHost ?? '',
    skip_ntp_check: true,
    zpool_layout: a.plan?.class ?? (a.layout.class === 'default' ? 'default' : a.layout.class),
    zpool_confirm_layout: 'yes',
    bootpool: 'none',
    install_pkgsrc: 'no',
    root_password: a.rootPassword ?? '',
    hostname: a.network.hostname,
    skip_final_summary: true,
    skip_final_confirm: true,
  };
}

export function nodeJson(node: NodeRecord, network: NodeNetwork, layout: ZpoolLayout, plan: ZpoolPlan | null, planError: string | null): Record<string, unknown> {
  return {
    schema: 'fleetboot.node/1',
    node: { id: node.id, uuid: node.uuid, hostname: network.hostname, platform: node.bootPlatform },
    network,
    zpool: {
      layout,
      plan: plan && { class: plan.class, vdevs: plan.vdevs, spares: plan.spares, log: plan.log, cache: plan.cache, unused: plan.unused, usableBytes: plan.usableBytes },
      error: planError,
    },
    checkin: '/api/v1/nodes/checkin',
  };
}

const text = (doc: unknown): string => `${JSON.stringify(doc, null, 2)}\n`;

/** Whether answers.json is offered: only before the node's first setup completes. */
export function offersAnswers(node: NodeRecord): boolean {
  return node.state === 'setting_up' || node.state === 'discovered';
}

/** The bytes of one config module for a configured node, or null when the node does not get it. */
export function renderConfigModule(
  name: ConfigModuleName,
  node: NodeRecord,
  secrets: { rootPassword: string | null; ntpHost: string | null },
): string | null {
  const network = networkOf(node);
  if (!network || node.state === 'retired') return null;
  switch (name) {
    case 'networking.json':
      return renderNetworkingJson(network).text;
    case 'networking.json.hash':
      // The kernel compares the hash module's text with the SHA-1 it computes (smartos-live boot modules).
      return renderNetworkingJson(network).sha1;
    case 'answers.json': {
      if (!offersAnswers(node)) return null;
      const { plan } = zpoolPlanOf(node);
      return text(answersJson({ network, layout: zpoolLayoutOf(node), plan, rootPassword: secrets.rootPassword, ntpHost: secrets.ntpHost }));
    }
    case 'node.json': {
      const { plan, error } = zpoolPlanOf(node);
      return text(nodeJson(node, network, zpoolLayoutOf(node), plan, error));
    }
  }
}


/** NTP server named in answers.json when the node's network names none: the admin network's, else the head node itself. */
export function defaultNtpHost(config: FleetbootConfig): string | null {
  const net = config.networks[0];
  return net?.ntpServers[0] ?? net?.serverAddress ?? null;
}

/**
 * The modules whose reported SHA-1 is checked (the agent reports these and node.json). node.json
 * is left out: its zpool plan follows the disks reported by the very check-in being judged, so
 * a changed disk would read as a bad boot. The .hash module is checked by the kernel itself.
 */
const checkedModuleNames = ['networking.json', 'answers.json'] as const;

/**
 * Whether the config modules a node reported at its last check-in are the ones fleetboot
 * would serve it now: each one it serves must have been reported with the same SHA-1. A
 * rollout counts a mismatch as a failed boot (the node came up with stale or foreign config).
 * Modules reported that fleetboot no longer serves (answers.json after setup) are not asked about.
 */
export function reportedModulesMatch(node: NodeRecord, secrets: { rootPassword: string | null; ntpHost: string | null }): boolean {
  const si = storedSysinfoSchema.safeParse(node.sysinfo);
  const reported = si.success ? si.data.modules : {};
  for (const name of checkedModuleNames) {
    const body = renderConfigModule(name, node, secrets);
    if (body !== null && reported[name] !== createHash('sha1').update(body, 'utf8').digest('hex')) return false;
  }
  return true;
}
