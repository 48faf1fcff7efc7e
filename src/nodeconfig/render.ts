// The config modules a configured node boots with, rendered from plain values (no store
// access): networking.json (+ .hash), answers.json (SmartOS first-boot setup), node.json
// (fleetboot's own: the network and the vdev plan of the pool first boot builds).
import { createHash } from 'node:crypto';
import type { FleetbootConfig } from '../config/schema.ts';
import type { NodeRecord } from '../store/nodes.ts';
import { adminInterface, defaultRouteInterface, nodeNetworkSchema, renderNetworkingJson, type NodeNetwork } from './network.ts';
import { saltOf } from './secrets.ts';
import { reportedDisks, storedSysinfoSchema } from './sysinfo.ts';
import { defaultZpoolLayout, planZpool, unbuildableLayoutIssue, zpoolLayoutSchema, type ZpoolLayout, type ZpoolPlan } from './zpool.ts';

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

/**
 * The pool the node's first boot builds from its reported disks (disklayout's default, see
 * zpool.ts); an error text when there is none. A layout stored before explicit layouts were
 * refused is not what gets built: the plan says so and shows the default.
 */
export function zpoolPlanOf(node: NodeRecord): { plan: ZpoolPlan | null; error: string | null } {
  const disks = reportedDisks(node.sysinfo);
  if (disks.length === 0) return { plan: null, error: 'no disks reported yet (the node has not checked in)' };
  try {
    const plan = planZpool(defaultZpoolLayout, disks);
    const stored = unbuildableLayoutIssue(zpoolLayoutOf(node));
    if (stored) plan.reason = `the stored layout is not built (${stored}; run node setup again): ${plan.reason}`;
    return { plan, error: null };
  } catch (err) {
    return { plan: null, error: (err as Error).message };
  }
}

export interface AnswersInput {
  network: NodeNetwork;
  rootPassword: string;
  ntpHost: string | null;
}

// prompt_host_ok_val and promptval (smartos_prompt_config.sh) replace "<default>" with the
// prompt's default: setup's own 8.8.8.8 / 8.8.4.4 resolvers and 0.smartos.pool.ntp.org.
const setupDefault = '<default>';

/**
 * answers.json, read by smartos-live's smartos_prompt_config.sh from /system/boot on a
 * node's first boot. getanswer tells a missing key from an empty one, and every prompt below
 * loops on an empty answer (promptval, prompt_host_ok_val, promptpw, promptnet), so each key
 * setup reads has a value its prompt accepts. `config_console` must be present for setup to
 * run unattended.
 */
export function answersJson(a: AnswersInput): Record<string, unknown> {
  const n = a.network;
  const admin = adminInterface(n);
  // promptnic reads `admin_nic` and matches it against the physical MACs (dladm show-phys), so
  // an aggregated admin link is named by its first member: setup brings up only that one.
  // `admin_mac` is the key SmartOS's install docs name; setup does not read it.
  const adminMac = n.nics.find((x) => x.tags.includes('admin'))?.mac ?? n.aggregations.find((g) => g.tags.includes('admin'))?.macs[0] ?? '';
  const staticAdmin = admin && admin.ip !== 'dhcp' ? admin : undefined;
  const route = defaultRouteInterface(n);
  // nicsup adds this as the default route while setup runs, with only the admin link up; its
  // promptnet takes an address or "none".
  const setupGateway = staticAdmin && route === staticAdmin ? staticAdmin.gateway : undefined;
  const [resolver1, resolver2] = n.resolvers;
  return {
    config_console: true,
    skip_instructions: true,
    simple_headers: true,
    admin_mac: adminMac,
    admin_nic: adminMac,
    // promptnet: an address or "dhcp"; the netmask is asked only for a static address.
    admin_ip: staticAdmin?.ip ?? 'dhcp',
    ...(staticAdmin ? { admin_netmask: staticAdmin.netmask } : {}),
    headnode_default_gateway: setupGateway ?? 'none',
    // prompt_host_ok_val takes any non-empty answer and writes it as a nameserver line, so
    // "none" would become `nameserver none`: one resolver is given twice instead. With none
    // at all, setup's defaults serve the setup boot only; later boots take DNS from
    // networking.json, which then has none.
    dns_resolver1: resolver1 ?? setupDefault,
    dns_resolver2: resolver2 ?? resolver1 ?? setupDefault,
    // promptval loops on an empty answer and "<default>" has no default here (dns_domain is
    // unset on a first boot), so a node without a DNS domain answers "invalid" (RFC 6761's
    // reserved name). Setup only stores it in /usbkey/config, which a node booting with
    // networking.json does not read for its network.
    dns_search: n.dnsDomain ?? 'invalid',
    ntp_host: n.ntpServers[0] ?? a.ntpHost ?? setupDefault,
    skip_ntp_check: true,
    // promptpool ignores this beyond its prompt text; setup builds disklayout's default.
    zpool_layout: 'default',
    zpool_confirm_layout: 'yes',
    bootpool: 'none',
    install_pkgsrc: 'no',
    root_password: a.rootPassword,
    hostname: n.hostname,
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

/**
 * Whether answers.json is offered: only before the node's first setup completes, and only
 * when its root password can be derived (promptpw loops on an empty root_password).
 */
export function offersAnswers(node: NodeRecord): boolean {
  return (node.state === 'setting_up' || node.state === 'discovered') && saltOf(node.tokenHash) !== null;
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
      if (!offersAnswers(node) || secrets.rootPassword === null) return null;
      return text(answersJson({ network, rootPassword: secrets.rootPassword, ntpHost: secrets.ntpHost }));
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
