// A node's network as an operator declares it, validated with zod, and rendered to what
// SmartOS reads at boot: the `networking.json` boot module (docs/design.md "Formats") and the
// `-B` boot args (`admin_nic`, `<tag>_nic`, `<aggr>_aggr`, `<aggr>_lacp_mode`, `hostname`)
// that smartos-live's /lib/sdc/config.sh and network/physical read on a node without a
// USB key. SmartOS turns networking.json into config keys with net-boot-config.js
// (configValues): `<tag>_nic`/`<tag>_mtu` per NIC tag, and per vnic `<iface>_ip`, `_netmask`,
// `_gateway`, `_vlan_id`, `_mtu`, where the first vnic on the admin and external tags is
// named after the tag itself and every other one `<tag><n>`. `node setup` refuses what
// those keys cannot carry (setupNetworkSchema).
import { createHash } from 'node:crypto';
import { isIPv4 } from 'node:net';
import { z } from 'zod';
import { capture } from '../capture.ts';
import { cidrSchema, ipInSubnet, ipv4ToInt } from '../config/schema.ts';
import { parseMac, type Mac } from '../mac.ts';
import type { NicInput } from '../store/nodes.ts';

const ipv4 = z.string().refine((s) => isIPv4(s), { message: 'expected an IPv4 address like 10.0.0.1' });
const macSchema = z
  .string()
  .transform((s, ctx) => {
    const mac = parseMac(s);
    if (!mac) {
      ctx.addIssue({ code: 'custom', message: `expected a MAC address like 52:54:00:12:34:56, got ${JSON.stringify(s)}` });
      return z.NEVER;
    }
    return mac;
  });
/** A contiguous IPv4 netmask (255.255.255.0). */
const netmaskSchema = ipv4.refine(
  (s) => {
    const n = ipv4ToInt(s);
    const inv = ~n >>> 0;
    return (inv & (inv + 1)) === 0;
  },
  { message: 'expected a contiguous netmask like 255.255.255.0' },
);
// smartos-live nictagadm valid_name: letters, digits and underscores, at most 30 characters,
// so the vnic named `<tag>0` (net-boot-config.js) fits a 31-character link name (illumos
// MAXLINKNAMELEN is 32 with the NUL). Stored rows keep the old limit of 31 so they still
// parse; node setup refuses 31 (setupNetworkSchema).
const nicTagName = z.string().regex(/^[A-Za-z0-9_]{1,31}$/, 'expected a NIC tag name of letters, digits and _ (at most 30)');
const maxNicTagLength = 30;
// dladm link names end in a digit (aggr0, aggr1): the driver-instance convention.
const aggrName = z.string().regex(/^[a-z][a-z0-9_]{0,14}[0-9]$/, 'expected a link name ending in a digit, like aggr0');
// RFC 1123 §2.1 host name label.
const hostLabel = z.string().regex(/^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$/, 'expected a host name label (letters, digits, -; at most 63)');
const domainName = z
  .string()
  .max(253)
  .regex(/^(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*$/, 'expected a DNS domain like example.com');
// Stored rows may hold 576..9000 (what fleetboot once accepted); node setup takes only what
// SmartOS plumbs: 1500..9000 (net-physical and net-early-admin valid_mtu fail the boot
// outside it, nictagadm valid_mtu refuses it).
const mtuSchema = z.number().int().min(576).max(9000);
const smartosMtu = { min: 1500, max: 9000 };

export const nicConfigSchema = z.strictObject({
  mac: macSchema,
  /** NIC tags this physical link provides (empty for aggregation members). */
  tags: z.array(nicTagName).default([]),
  mtu: mtuSchema.optional(),
});

export const aggregationSchema = z.strictObject({
  name: aggrName,
  macs: z.array(macSchema).min(2, 'an aggregation needs at least 2 member NICs'),
  // dladm create-aggr -L: off | active | passive (IEEE 802.1AX LACP activity).
  lacpMode: z.enum(['off', 'active', 'passive']).default('active'),
  tags: z.array(nicTagName).min(1, 'an aggregation must provide at least one NIC tag'),
  mtu: mtuSchema.optional(),
});

export const interfaceSchema = z.strictObject({
  /** The NIC tag the address lives on. */
  tag: nicTagName,
  ip: z.union([ipv4, z.literal('dhcp')]),
  netmask: netmaskSchema.optional(),
  gateway: ipv4.optional(),
  // IEEE 802.1Q: 0 = untagged, 4095 reserved; SmartOS vnics refuse VLAN 1 (the default PVID).
  vlan: z.number().int().min(0).max(4094).refine((v) => v !== 1, 'VLAN 1 is the untagged default; use 0').default(0),
  mtu: mtuSchema.optional(),
  /** A VNIC MAC; the admin interface defaults to its link's MAC, others to one the node generates. */
  mac: macSchema.optional(),
  primary: z.boolean().default(false),
});

export const nodeNetworkSchema = z
  .strictObject({
    hostname: hostLabel,
    dnsDomain: domainName.optional(),
    resolvers: z.array(ipv4).max(4).default([]),
    ntpServers: z.array(ipv4).max(4).default([]),
    nics: z.array(nicConfigSchema).min(1, 'at least one NIC is needed'),
    aggregations: z.array(aggregationSchema).default([]),
    interfaces: z.array(interfaceSchema).default([]),
    /** Static routes: destination CIDR -> gateway. */
    routes: z.record(cidrSchema, ipv4).default({}),
  })
  .superRefine((n, ctx) => {
    const macs = new Map<string, number>();
    n.nics.forEach((nic, i) => {
      if (macs.has(nic.mac)) ctx.addIssue({ code: 'custom', path: ['nics', i, 'mac'], message: `${nic.mac} is listed twice` });
      macs.set(nic.mac, i);
    });
    const tagOwner = new Map<string, string>();
    const claimTag = (tag: string, owner: string, path: (string | number)[]): void => {
      const prev = tagOwner.get(tag);
      if (prev) ctx.addIssue({ code: 'custom', path, message: `NIC tag "${tag}" is already provided by ${prev}` });
      else tagOwner.set(tag, owner);
    };
    n.nics.forEach((nic, i) => nic.tags.forEach((t, j) => claimTag(t, nic.mac, ['nics', i, 'tags', j])));
    const members = new Set<string>();
    const aggrNames = new Set<string>();
    n.aggregations.forEach((a, i) => {
      if (aggrNames.has(a.name)) ctx.addIssue({ code: 'custom', path: ['aggregations', i, 'name'], message: `duplicate aggregation "${a.name}"` });
      aggrNames.add(a.name);
      a.macs.forEach((m, j) => {
        const idx = macs.get(m);
        if (idx === undefined) ctx.addIssue({ code: 'custom', path: ['aggregations', i, 'macs', j], message: `${m} is not in nics` });
        else if ((n.nics[idx]?.tags.length ?? 0) > 0) {
          ctx.addIssue({ code: 'custom', path: ['aggregations', i, 'macs', j], message: `${m} is an aggregation member and cannot carry its own NIC tags` });
        }
        if (members.has(m)) ctx.addIssue({ code: 'custom', path: ['aggregations', i, 'macs', j], message: `${m} is in two aggregations` });
        members.add(m);
      });
      a.tags.forEach((t, j) => claimTag(t, a.name, ['aggregations', i, 'tags', j]));
    });
    if (!tagOwner.has('admin')) ctx.addIssue({ code: 'custom', path: ['nics'], message: 'one NIC or aggregation must provide the "admin" NIC tag' });
    n.interfaces.forEach((itf, i) => {
      if (!tagOwner.has(itf.tag)) ctx.addIssue({ code: 'custom', path: ['interfaces', i, 'tag'], message: `no NIC or aggregation provides tag "${itf.tag}"` });
      if (itf.ip !== 'dhcp' && !itf.netmask) ctx.addIssue({ code: 'custom', path: ['interfaces', i, 'netmask'], message: 'a static address needs a netmask' });
      if (itf.ip !== 'dhcp' && itf.netmask && itf.gateway && !ipInSubnet(itf.gateway, `${itf.ip}/${maskToPrefix(itf.netmask)}`)) {
        ctx.addIssue({ code: 'custom', path: ['interfaces', i, 'gateway'], message: `${itf.gateway} is outside ${itf.ip}/${itf.netmask}` });
      }
    });
    const seen = new Set<string>();
    n.interfaces.forEach((itf, i) => {
      const key = `${itf.tag}/${itf.vlan}`;
      if (seen.has(key)) ctx.addIssue({ code: 'custom', path: ['interfaces', i, 'vlan'], message: `two interfaces on tag ${itf.tag} VLAN ${itf.vlan}` });
      seen.add(key);
    });
    if (n.interfaces.filter((i) => i.primary).length > 1) ctx.addIssue({ code: 'custom', path: ['interfaces'], message: 'only one interface may be primary' });
  });

export type NodeNetwork = z.infer<typeof nodeNetworkSchema>;
export type NodeNetworkInput = z.input<typeof nodeNetworkSchema>;

type Interface = NodeNetwork['interfaces'][number];

/** The first interface on the external tag: net-boot-config.js names it `external`, so its keys are `external_*`. */
function firstExternal(n: NodeNetwork): Interface | undefined {
  return n.interfaces.find((i) => i.tag === 'external');
}

/**
 * The interface whose gateway is the node's default route. SmartOS never reads
 * `default_gateway` or a vnic's `primary` (net-boot-config.js); net-physical
 * set_default_route takes `admin_gateway`, else `external_gateway`, and net-early-admin
 * adds `admin_gateway` as the default route. So `primary` can name the admin interface or
 * the first external one (whose admin rival is then left without a gateway); without
 * `primary` the route is SmartOS's own pick.
 */
export function defaultRouteInterface(n: NodeNetwork): Interface | undefined {
  const primary = n.interfaces.find((i) => i.primary);
  if (primary) return primary;
  const admin = adminInterface(n);
  return admin?.gateway ? admin : firstExternal(n)?.gateway ? firstExternal(n) : undefined;
}

/**
 * What node setup accepts: the stored shape plus what SmartOS can plumb from it. Stored rows
 * are read with nodeNetworkSchema alone, so a row set up before a check existed still renders.
 */
export const setupNetworkSchema = nodeNetworkSchema.superRefine((n, ctx) => {
  const issue = (path: (string | number)[], message: string): void => ctx.addIssue({ code: 'custom', path, message });
  const mtuIssue = (path: (string | number)[], mtu: number | undefined): void => {
    if (mtu !== undefined && (mtu < smartosMtu.min || mtu > smartosMtu.max)) {
      issue(path, `SmartOS takes MTUs ${smartosMtu.min}-${smartosMtu.max} only (net-physical valid_mtu fails the boot otherwise), got ${mtu}`);
    }
  };
  const tagIssue = (path: (string | number)[], tag: string): void => {
    if (tag.length > maxNicTagLength) {
      issue(path, `NIC tag "${tag}" is ${tag.length} characters; SmartOS takes at most ${maxNicTagLength} so its vnic "${tag}0" fits a link name (nictagadm valid_name)`);
    }
  };
  n.nics.forEach((nic, i) => {
    mtuIssue(['nics', i, 'mtu'], nic.mtu);
    nic.tags.forEach((t, j) => tagIssue(['nics', i, 'tags', j], t));
  });
  n.aggregations.forEach((a, i) => {
    mtuIssue(['aggregations', i, 'mtu'], a.mtu);
    a.tags.forEach((t, j) => tagIssue(['aggregations', i, 'tags', j], t));
  });
  const links = linkOfTag(n);
  const admin = adminInterface(n);
  const staticAdmin = admin && admin.ip !== 'dhcp' ? admin : undefined;
  const external = firstExternal(n);
  n.interfaces.forEach((itf, i) => {
    mtuIssue(['interfaces', i, 'mtu'], itf.mtu);
    const linkMtu = links.get(itf.tag)?.mtu ?? 1500;
    if (itf.mtu !== undefined && itf.mtu > linkMtu) {
      issue(['interfaces', i, 'mtu'], `${itf.mtu} is above its link's MTU ${linkMtu}: a vnic cannot be larger than the link it sits on (net-physical vnic_up creates it with -p mtu)`);
    } else if (itf.mtu !== undefined && itf.mtu !== linkMtu && (itf === admin || itf === external)) {
      // net-boot-config.js writes both the tag's MTU and this interface's as `<tag>_mtu`: the
      // interface's replaces the tag's, and net-physical setup_mtu sizes the link from it.
      issue(['interfaces', i, 'mtu'], `SmartOS keeps one ${itf.tag}_mtu for the ${itf.tag} tag and its first interface (net-boot-config.js), so this interface's MTU must be its link's (${linkMtu}); put a different MTU on another tag's interface`);
    }
    if (itf.tag === 'admin' && itf.vlan !== 0 && !staticAdmin) {
      // net-boot-config.js names the first admin-tag vnic `admin`; net-early-admin and
      // net-physical plumb admin_ip on the admin link itself and never read admin_vlan_id.
      issue(['interfaces', i, 'vlan'], 'SmartOS plumbs the first admin address untagged on the admin link (net-early-admin ignores its VLAN); give an untagged static admin interface first, or use vlan 0');
    }
    if (itf === admin && itf.ip === 'dhcp' && itf.gateway) {
      issue(['interfaces', i, 'gateway'], 'a DHCP admin address takes its router from DHCP: fleetboot leaves the admin address out of networking.json (net-early-admin would hand "dhcp" to ifconfig as an address), so there is no admin_gateway to carry this');
    }
    if (itf.primary) {
      if (itf !== admin && itf !== external) {
        issue(['interfaces', i, 'primary'], `SmartOS takes the default route from the admin interface's gateway, else the first external interface's (net-physical set_default_route); it never reads primary, so the ${itf.tag} interface${itf.vlan ? ` on VLAN ${itf.vlan}` : ''} cannot carry it`);
      } else if (itf.ip !== 'dhcp' && !itf.gateway) {
        issue(['interfaces', i, 'gateway'], 'a primary interface with a static address needs a gateway: it is the default route');
      }
    }
  });
  if (n.resolvers.length > 0 && !n.dnsDomain) {
    issue(['dnsDomain'], 'SmartOS writes resolv.conf only when it has both dns_domain and resolvers (net-physical, net-early-admin): without a DNS domain the resolvers would be lost; give the domain they serve');
  }
});

export function maskToPrefix(mask: string): number {
  let n = ipv4ToInt(mask);
  let bits = 0;
  while (n & 0x80000000) {
    bits++;
    n = (n << 1) >>> 0;
  }
  return bits;
}

/** One line per zod issue, naming the field: `interfaces.0.netmask: a static address needs a netmask`. */
export function describeIssues(error: z.ZodError, prefix = ''): string {
  return error.issues
    .map((i) => `${[prefix, ...i.path.map(String)].filter((p) => p !== '').join('.') || '(root)'}: ${i.message}`)
    .join('; ');
}

export class NodeConfigError extends Error {
  override readonly name = 'NodeConfigError';
}

/** Parses an operator's network document (node setup), throwing a NodeConfigError naming the bad fields. */
export function parseNodeNetwork(input: unknown): NodeNetwork {
  capture('node-network', JSON.stringify(input) ?? '');
  const r = setupNetworkSchema.safeParse(input);
  if (!r.success) throw new NodeConfigError(describeIssues(r.error, 'network'));
  return r.data;
}

/** The link (a physical MAC or an aggregation name) that provides each NIC tag. */
function linkOfTag(n: NodeNetwork): Map<string, { link: string; mac: Mac; mtu: number | undefined; aggr: boolean }> {
  const m = new Map<string, { link: string; mac: Mac; mtu: number | undefined; aggr: boolean }>();
  for (const nic of n.nics) for (const t of nic.tags) m.set(t, { link: nic.mac, mac: nic.mac, mtu: nic.mtu, aggr: false });
  for (const a of n.aggregations) for (const t of a.tags) m.set(t, { link: a.name, mac: a.macs[0]!, mtu: a.mtu, aggr: true });
  return m;
}

/** The admin interface (tag admin, VLAN 0), when the operator gave one. */
export function adminInterface(n: NodeNetwork): NodeNetwork['interfaces'][number] | undefined {
  return n.interfaces.find((i) => i.tag === 'admin' && i.vlan === 0);
}

/**
 * networking.json as SmartOS reads it from /system/boot/networking.json (smartos-live
 * net-boot-config.js; the shape sdc-booter's boot-time net-file writes): `nictags` name every
 * tag with the link providing it (a MAC, or an aggregation's name), the admin vnic comes
 * first, `dns_domain` appears only when set. Only keys net-boot-config.js reads are written
 * (it never reads `default_gateway` or `primary`). Keys are in a fixed order so the bytes
 * (and the .hash module) are stable.
 */
export function networkingJson(n: NodeNetwork): Record<string, unknown> {
  const links = linkOfTag(n);
  const nictags = [...links].map(([name, link]) => ({ name, mac: link.link, mtu: link.mtu ?? 1500 }));
  const aggregations = n.aggregations.map((a) => ({ name: a.name, macs: a.macs, lacp_mode: a.lacpMode, nic_tags_provided: a.tags }));
  const admin = adminInterface(n);
  const route = defaultRouteInterface(n);
  const ordered = [...n.interfaces].sort((a, b) => Number(b === admin) - Number(a === admin));
  // A DHCP admin address is left out: net-early-admin hands admin_ip to ifconfig as an
  // address, while with no admin_ip net-physical runs DHCP on the admin link itself.
  const vnics = ordered
    .filter((i) => !(i === admin && i.ip === 'dhcp'))
    .map((i) => {
      const link = links.get(i.tag)!;
      // The admin address sits on the admin link itself (its own MAC); any other vnic gets the
      // operator's MAC or none, and the node generates one (dladm create-vnic -m random):
      // two vnics sharing a link's MAC would collide on the wire.
      const mac = i.mac ?? (i === admin ? link.mac : undefined);
      // The admin gateway always wins SmartOS's default route (net-physical
      // set_default_route), so it is left out when the operator made the external interface primary.
      const gateway = i === admin && route && route !== admin ? null : (i.gateway ?? null);
      return {
        ...(mac ? { mac } : {}),
        ip: i.ip,
        netmask: i.ip === 'dhcp' ? null : (i.netmask ?? null),
        gateway,
        vlan_id: i.vlan,
        nic_tag: i.tag,
        // net-boot-config.js writes this as `<iface>_mtu`: the vnic's own MTU, the link's when unset.
        mtu: i.mtu ?? link.mtu ?? 1500,
      };
    });
  return {
    admin_tag: 'admin',
    nictags,
    aggregations,
    vnics,
    resolvers: n.resolvers,
    routes: n.routes,
    hostname: n.hostname,
    ...(n.dnsDomain ? { dns_domain: n.dnsDomain } : {}),
  };
}

/** The exact bytes served as networking.json, and its `.hash` module (SHA-1 hex, as the kernel checks `type=hash`). */
export function renderNetworkingJson(n: NodeNetwork): { text: string; sha1: string } {
  const text = `${JSON.stringify(networkingJson(n), null, 2)}\n`;
  return { text, sha1: sha1Hex(text) };
}

export function sha1Hex(data: string | Buffer): string {
  return createHash('sha1').update(data).digest('hex');
}

/**
 * `-B` boot args: smartos-live's /lib/sdc/config.sh maps `<tag>_nic=<mac|aggr>` to NIC tags,
 * `<aggr>_aggr=<mac,mac>` and `<aggr>_lacp_mode` to dladm aggregations; `admin_nic` names
 * the admin link. Values holding commas must be double-quoted by whoever renders the -B
 * list (illumos boot(8): a -B value may be quoted to contain commas).
 */
export function networkBootArgs(n: NodeNetwork): Record<string, string> {
  const args: Record<string, string> = {};
  for (const [tag, link] of linkOfTag(n)) args[`${tag}_nic`] = link.link;
  for (const a of n.aggregations) {
    args[`${a.name}_aggr`] = a.macs.join(',');
    args[`${a.name}_lacp_mode`] = a.lacpMode;
  }
  args.hostname = n.hostname;
  return args;
}

/** The nics rows a configured node has: configured links first, tags joined by commas. */
export function nicRowsFor(n: NodeNetwork, reported: Mac[]): NicInput[] {
  const links = linkOfTag(n);
  const rows = new Map<Mac, NicInput>();
  const adminLink = links.get('admin')!;
  for (const nic of n.nics) rows.set(nic.mac, { mac: nic.mac, nicTag: nic.tags.join(',') || null, mtu: nic.mtu ?? null, isAdmin: !adminLink.aggr && adminLink.mac === nic.mac });
  for (const a of n.aggregations) {
    for (const m of a.macs) rows.set(m, { mac: m, nicTag: a.tags.join(','), mtu: a.mtu ?? null, isAdmin: a.tags.includes('admin') && m === a.macs[0] });
  }
  // A static untagged address belongs to the link's first MAC (findByAddress resolves it).
  for (const i of n.interfaces) {
    if (i.ip === 'dhcp' || i.vlan !== 0) continue;
    const link = links.get(i.tag)!;
    const row = rows.get(link.mac);
    if (row && !row.ip) {
      row.ip = i.ip;
      row.vlan = 0;
    }
  }
  for (const mac of reported) if (!rows.has(mac)) rows.set(mac, { mac });
  return [...rows.values()];
}
