// Nodes and their NICs. JSON documents (sysinfo, network and zpool config) come back as
// `unknown`: the module that owns each format parses it with its own schema.
import type { Mac } from '../mac.ts';
import { parseMac } from '../mac.ts';
import { meaningfulUuid, uuidKey, uuidSources, type UuidSource } from '../uuid.ts';
import { writeTransaction, type Db } from './db.ts';

export const nodeStates = ['discovered', 'setting_up', 'running', 'rebooting', 'unknown', 'failed', 'retired'] as const;
export type NodeState = (typeof nodeStates)[number];

export interface Nic {
  mac: Mac;
  nodeId: number;
  nicTag: string | null;
  ip: string | null;
  network: string | null;
  vlan: number | null;
  mtu: number | null;
  isAdmin: boolean;
}

/** The spelling of the node's UUID each reporter used (src/uuid.ts: they may differ in byte order). */
export type UuidSpellings = Partial<Record<UuidSource, string>>;

export interface NodeRecord {
  id: number;
  /** As shown to operators: the OS's spelling once the node has checked in, else the firmware's. */
  uuid: string | null;
  uuidSources: UuidSpellings;
  hostname: string | null;
  state: NodeState;
  bootPlatform: string | null;
  previousPlatform: string | null;
  currentPlatform: string | null;
  arch: string | null;
  serial: string | null;
  lastBoot: number | null;
  lastSeen: number | null;
  sysinfo: unknown;
  networkConfig: unknown;
  zpoolConfig: unknown;
  traits: Record<string, string>;
  /** How its power is reached (rollout/power.ts parses it); null when not set. */
  power: unknown;
  tokenHash: string | null;
  createdAt: number;
  updatedAt: number;
  nics: Nic[];
}

/** Columns a caller may change through `update`. */
export interface NodePatch {
  uuid?: string | null;
  uuidSources?: UuidSpellings;
  hostname?: string | null;
  state?: NodeState;
  bootPlatform?: string | null;
  previousPlatform?: string | null;
  currentPlatform?: string | null;
  arch?: string | null;
  serial?: string | null;
  lastBoot?: number | null;
  lastSeen?: number | null;
  sysinfo?: unknown;
  networkConfig?: unknown;
  zpoolConfig?: unknown;
  traits?: Record<string, string>;
  power?: unknown;
  tokenHash?: string | null;
}

export interface NicInput {
  mac: Mac;
  nicTag?: string | null;
  ip?: string | null;
  network?: string | null;
  vlan?: number | null;
  mtu?: number | null;
  isAdmin?: boolean;
}

interface NodeRow {
  id: number;
  uuid: string | null;
  uuid_sources: string;
  hostname: string | null;
  state: NodeState;
  boot_platform: string | null;
  previous_platform: string | null;
  current_platform: string | null;
  arch: string | null;
  serial: string | null;
  last_boot: number | null;
  last_seen: number | null;
  sysinfo: string | null;
  network_config: string | null;
  zpool_config: string | null;
  traits: string;
  power: string | null;
  token_hash: string | null;
  created_at: number;
  updated_at: number;
}

interface NicRow {
  mac: string;
  node_id: number;
  nic_tag: string | null;
  ip: string | null;
  network: string | null;
  vlan: number | null;
  mtu: number | null;
  is_admin: number;
}

const columnOf: Record<keyof NodePatch, string> = {
  uuid: 'uuid',
  uuidSources: 'uuid_sources',
  hostname: 'hostname',
  state: 'state',
  bootPlatform: 'boot_platform',
  previousPlatform: 'previous_platform',
  currentPlatform: 'current_platform',
  arch: 'arch',
  serial: 'serial',
  lastBoot: 'last_boot',
  lastSeen: 'last_seen',
  sysinfo: 'sysinfo',
  networkConfig: 'network_config',
  zpoolConfig: 'zpool_config',
  traits: 'traits',
  power: 'power',
  tokenHash: 'token_hash',
};
const jsonColumns = new Set<keyof NodePatch>(['uuidSources', 'sysinfo', 'networkConfig', 'zpoolConfig', 'traits', 'power']);

const parseJson = (text: string | null): unknown => (text === null ? null : (JSON.parse(text) as unknown));

function nicFromRow(r: NicRow): Nic {
  return {
    mac: r.mac as Mac,
    nodeId: r.node_id,
    nicTag: r.nic_tag,
    ip: r.ip,
    network: r.network,
    vlan: r.vlan,
    mtu: r.mtu,
    isAdmin: r.is_admin === 1,
  };
}

/** What the DHCP server asks of a NIC on every packet. */
export interface NicBinding {
  nodeId: number;
  /** The NIC's static address, when it has one. */
  ip: string | null;
}

function uuidSpellingsOf(text: string): UuidSpellings {
  const parsed = parseJson(text);
  const out: UuidSpellings = {};
  if (parsed && typeof parsed === 'object') {
    for (const s of uuidSources) {
      const v = (parsed as Record<string, unknown>)[s];
      if (typeof v === 'string') out[s] = v;
    }
  }
  return out;
}

/**
 * A node that DHCP (or a boot-script fetch) registered and that has shown nothing else yet:
 * still `discovered`, never checked in (last_seen is set by the first check-in,
 * nodeconfig/lifecycle.ts), and nothing an operator declares about a machine they mean to
 * keep (hostname, boot platform, power, traits, a static NIC address). docs/hardening.md
 * "DHCP exhaustion": these are capped, and their leases are the first taken back.
 */
const UNBOOTED_DISCOVERED = `n.state = 'discovered' AND n.last_seen IS NULL AND n.hostname IS NULL AND n.boot_platform IS NULL
  AND n.power IS NULL AND n.traits = '{}' AND NOT EXISTS (SELECT 1 FROM nics c WHERE c.node_id = n.id AND c.ip IS NOT NULL)`;

export class NodeRepo {
  // The DHCP server asks "whose MAC is this?" and "whose static address is this?" on every
  // packet; a query each time was a quarter of its CPU. Answers are kept here and dropped
  // whenever this connection writes nics, or any other connection (the CLI runs in its own
  // process) commits: PRAGMA data_version changes exactly then (sqlite.org/pragma.html#pragma_data_version).
  private readonly nicCache = new Map<string, NicBinding | null>();
  private readonly staticOwnerCache = new Map<string, Mac | null>();
  private cacheVersion = -1;
  private versionCheckDue = -Infinity;
  private readonly dataVersion;
  private readonly nicByMacStmt;
  private readonly staticOwnerStmt;
  private readonly byId;
  private readonly all;
  private readonly nicsOf;
  private readonly allNics;
  private readonly idByUuid;
  private readonly idByHostname;
  private readonly insertNode;
  private readonly upsertNicStmt;
  private readonly deleteNicsOf;
  private readonly deleteNode;
  private readonly markRemoved;
  private readonly idByAddress;
  private readonly unbootedById;
  private readonly unbootedCount;

  constructor(
    private readonly db: Db,
    private readonly now: () => number,
  ) {
    this.dataVersion = db.prepare<[], number>('PRAGMA data_version').pluck();
    this.nicByMacStmt = db.prepare<[string], { node_id: number; ip: string | null }>('SELECT node_id, ip FROM nics WHERE mac = ?');
    this.staticOwnerStmt = db.prepare<[string], string>('SELECT mac FROM nics WHERE ip = ?').pluck();
    this.byId = db.prepare<[number], NodeRow>('SELECT * FROM nodes WHERE id = ?');
    this.all = db.prepare<[], NodeRow>('SELECT * FROM nodes ORDER BY id');
    this.nicsOf = db.prepare<[number], NicRow>('SELECT * FROM nics WHERE node_id = ? ORDER BY is_admin DESC, mac');
    this.allNics = db.prepare<[], NicRow>('SELECT * FROM nics ORDER BY is_admin DESC, mac');
    // Both SMBIOS byte orders are one machine: match on the key (migration 005).
    this.idByUuid = db.prepare<[string], { id: number }>('SELECT id FROM nodes WHERE uuid_key = ?');
    this.idByHostname = db.prepare<[string], { id: number }>('SELECT id FROM nodes WHERE hostname = ?');
    this.insertNode = db.prepare<[string | null, string, string | null, string | null, string | null, number, number], { id: number }>(
      // The id comes after every removed node's too (migration 009).
      `INSERT INTO nodes (id, uuid, uuid_sources, hostname, arch, serial, created_at, updated_at)
       VALUES (max(coalesce((SELECT max(id) FROM nodes), 0), (SELECT upto FROM node_ids_removed)) + 1, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
    );
    this.deleteNode = db.prepare<[number]>('DELETE FROM nodes WHERE id = ?');
    this.markRemoved = db.prepare<[number]>('UPDATE node_ids_removed SET upto = max(upto, ?)');
    this.upsertNicStmt = db.prepare(
      `INSERT INTO nics (mac, node_id, nic_tag, ip, network, vlan, mtu, is_admin)
       VALUES (@mac, @node_id, @nic_tag, @ip, @network, @vlan, @mtu, @is_admin)
       ON CONFLICT (mac) DO UPDATE SET node_id = excluded.node_id, nic_tag = excluded.nic_tag, ip = excluded.ip,
         network = excluded.network, vlan = excluded.vlan, mtu = excluded.mtu, is_admin = excluded.is_admin`,
    );
    this.deleteNicsOf = db.prepare<[number]>('DELETE FROM nics WHERE node_id = ?');
    this.unbootedById = db.prepare<[number], number>(`SELECT 1 FROM nodes n WHERE n.id = ? AND ${UNBOOTED_DISCOVERED}`).pluck();
    this.unbootedCount = db.prepare<[], number>(`SELECT count(*) FROM nodes n WHERE ${UNBOOTED_DISCOVERED}`).pluck();
    // A static NIC address wins; else the NIC holding a bound, unexpired lease on it.
    this.idByAddress = db.prepare<[string, string, number], { node_id: number; mac: string }>(
      `SELECT node_id, mac FROM nics WHERE ip = ?
       UNION ALL
       SELECT n.node_id, n.mac FROM leases l JOIN nics n ON n.mac = l.mac
        WHERE l.ip = ? AND l.state = 'bound' AND l.expires_at > ?
       LIMIT 1`,
    );
  }

  private fromRow(r: NodeRow, nics: Nic[]): NodeRecord {
    return {
      id: r.id,
      uuid: r.uuid,
      uuidSources: uuidSpellingsOf(r.uuid_sources),
      hostname: r.hostname,
      state: r.state,
      bootPlatform: r.boot_platform,
      previousPlatform: r.previous_platform,
      currentPlatform: r.current_platform,
      arch: r.arch,
      serial: r.serial,
      lastBoot: r.last_boot,
      lastSeen: r.last_seen,
      sysinfo: parseJson(r.sysinfo),
      networkConfig: parseJson(r.network_config),
      zpoolConfig: parseJson(r.zpool_config),
      traits: (parseJson(r.traits) ?? {}) as Record<string, string>,
      power: parseJson(r.power),
      tokenHash: r.token_hash,
      createdAt: r.created_at,
      updatedAt: r.updated_at,
      nics,
    };
  }

  get(id: number): NodeRecord | undefined {
    const row = this.byId.get(id);
    return row && this.fromRow(row, this.nicsOf.all(id).map(nicFromRow));
  }

  list(): NodeRecord[] {
    const nics = new Map<number, Nic[]>();
    for (const n of this.allNics.all().map(nicFromRow)) {
      const list = nics.get(n.nodeId) ?? [];
      list.push(n);
      nics.set(n.nodeId, list);
    }
    return this.all.all().map((r) => this.fromRow(r, nics.get(r.id) ?? []));
  }

  /**
   * Empties the NIC caches when another connection has committed since they were filled.
   * Asking SQLite costs about as much as the lookup saved, so it is asked at most once a
   * millisecond: another process's change reaches DHCP within 1 ms of its commit.
   */
  private cacheUsable(): boolean {
    // Inside a transaction the connection may see rows that are later rolled back.
    if (this.db.inTransaction) return false;
    const t = performance.now();
    if (t < this.versionCheckDue) return true;
    this.versionCheckDue = t + 1;
    const v = this.dataVersion.get()!;
    if (v !== this.cacheVersion) {
      this.nicCache.clear();
      this.staticOwnerCache.clear();
      this.cacheVersion = v;
    }
    return true;
  }

  private nicsChanged(): void {
    this.nicCache.clear();
    this.staticOwnerCache.clear();
  }

  /** The node a MAC belongs to and the NIC's static address; null for a MAC not in the registry. */
  nicByMac(mac: Mac): NicBinding | null {
    const usable = this.cacheUsable();
    if (usable) {
      const hit = this.nicCache.get(mac);
      if (hit !== undefined) return hit;
    }
    const row = this.nicByMacStmt.get(mac);
    const found = row ? { nodeId: row.node_id, ip: row.ip } : null;
    if (usable) this.nicCache.set(mac, found);
    return found;
  }

  /** The MAC of the NIC whose static address is `ip`, or null. */
  staticOwner(ip: string): Mac | null {
    const usable = this.cacheUsable();
    if (usable) {
      const hit = this.staticOwnerCache.get(ip);
      if (hit !== undefined) return hit;
    }
    const found = (this.staticOwnerStmt.get(ip) as Mac | undefined) ?? null;
    if (usable) this.staticOwnerCache.set(ip, found);
    return found;
  }

  findByMac(mac: Mac): NodeRecord | undefined {
    const hit = this.nicByMacStmt.get(mac);
    return hit && this.get(hit.node_id);
  }

  /** The node with this UUID in either SMBIOS byte order. */
  findByUuid(uuid: string): NodeRecord | undefined {
    const u = meaningfulUuid(uuid);
    const hit = u === null ? undefined : this.idByUuid.get(uuidKey(u));
    return hit && this.get(hit.id);
  }

  /**
   * What to change when `source` reports `uuid` for `node`: a node without a UUID takes it
   * (unless another node holds that machine's UUID); a node whose UUID is the same machine's
   * records the spelling, and the OS's spelling becomes the one shown. A UUID of another
   * machine changes nothing. Returns an empty patch when nothing changes.
   */
  uuidPatch(node: NodeRecord, uuid: string | null | undefined, source: UuidSource): NodePatch {
    const u = meaningfulUuid(uuid);
    if (u === null) return {};
    if (node.uuid === null) {
      const holder = this.idByUuid.get(uuidKey(u));
      if (holder && holder.id !== node.id) return {};
      return { uuid: u, uuidSources: { ...node.uuidSources, [source]: u } };
    }
    if (uuidKey(node.uuid) !== uuidKey(u)) return {};
    const patch: NodePatch = {};
    if (node.uuidSources[source] !== u) patch.uuidSources = { ...node.uuidSources, [source]: u };
    if (source === 'os' && node.uuid !== u) patch.uuid = u;
    return patch;
  }

  /** The node that holds `ip` right now (static NIC address or a bound lease), and through which NIC. */
  findByAddress(ip: string): { node: NodeRecord; mac: Mac } | undefined {
    const hit = this.idByAddress.get(ip, ip, this.now());
    const node = hit && this.get(hit.node_id);
    return node && hit ? { node, mac: hit.mac as Mac } : undefined;
  }

  /**
   * Who sent a request from `ip`: a static NIC address or a bound lease first (the registry's
   * own knowledge); else, under ProxyDHCP, the MAC `proxyMacOf` saw claim the address in the
   * PXE exchange (dhcp/proxy-addresses.ts), with its node when that MAC is registered.
   */
  requesterAt(ip: string, proxyMacOf?: (ip: string) => Mac | undefined): { node: NodeRecord | null; mac: Mac } | undefined {
    const held = this.findByAddress(ip);
    if (held) return held;
    const mac = proxyMacOf?.(ip);
    return mac ? { node: this.findByMac(mac) ?? null, mac } : undefined;
  }

  /** Resolves what an operator typed: numeric id, UUID, any NIC's MAC, or hostname. */
  find(ref: string): NodeRecord | undefined {
    if (/^\d+$/.test(ref)) return this.get(Number(ref));
    const mac = parseMac(ref);
    if (mac && /[:.-]/.test(ref)) return this.findByMac(mac);
    const uuid = meaningfulUuid(ref);
    if (uuid) return this.findByUuid(uuid);
    const host = this.idByHostname.get(ref);
    if (host) return this.get(host.id);
    return mac ? this.findByMac(mac) : undefined;
  }

  /**
   * The node a booting machine is, creating it as `discovered` when neither its MAC nor its
   * UUID is known. A known UUID seen with a new MAC gains that NIC (a second port booting).
   */
  discover(input: { mac: Mac; uuid?: string | null; uuidFrom?: UuidSource; arch?: string | null; serial?: string | null }): {
    node: NodeRecord;
    created: boolean;
  } {
    const uuid = meaningfulUuid(input.uuid);
    const source = input.uuidFrom ?? 'dhcp';
    return writeTransaction(this.db, () => {
      const byMac = this.nicByMacStmt.get(input.mac);
      const byUuid = byMac ? undefined : uuid ? this.idByUuid.get(uuidKey(uuid)) : undefined;
      if (byMac || byUuid) {
        const id = byMac?.node_id ?? byUuid!.id;
        // A known UUID seen with a new MAC: the machine booting from another port.
        if (!byMac) this.upsertNic(id, { mac: input.mac });
        const node = this.get(id)!;
        const patch: NodePatch = this.uuidPatch(node, uuid, source);
        if (input.arch && node.arch !== input.arch) patch.arch = input.arch;
        if (input.serial && node.serial === null) patch.serial = input.serial;
        return { node: Object.keys(patch).length > 0 ? this.update(node.id, patch) : node, created: false };
      }
      const t = this.now();
      const sources: UuidSpellings = uuid ? { [source]: uuid } : {};
      const { id } = this.insertNode.get(uuid, JSON.stringify(sources), null, input.arch ?? null, input.serial ?? null, t, t)!;
      this.upsertNic(id, { mac: input.mac, isAdmin: true });
      return { node: this.get(id)!, created: true };
    })();
  }

  /** Creates a node from an operator's declaration (pre-registration by MAC). */
  create(input: { nics: NicInput[]; uuid?: string | null; hostname?: string | null; state?: NodeState }): NodeRecord {
    return writeTransaction(this.db, () => {
      const t = this.now();
      const { id } = this.insertNode.get(meaningfulUuid(input.uuid), '{}', input.hostname ?? null, null, null, t, t)!;
      for (const nic of input.nics) this.upsertNic(id, nic);
      if (input.state) this.update(id, { state: input.state });
      return this.get(id)!;
    })();
  }

  update(id: number, patch: NodePatch): NodeRecord {
    const keys = (Object.keys(patch) as (keyof NodePatch)[]).filter((k) => patch[k] !== undefined);
    const values = keys.map((k) => {
      const v = patch[k];
      return jsonColumns.has(k) ? (v === null ? null : JSON.stringify(v)) : (v as string | number | null);
    });
    const sets = keys.map((k) => `${columnOf[k]} = ?`);
    this.db.prepare(`UPDATE nodes SET ${[...sets, 'updated_at = ?'].join(', ')} WHERE id = ?`).run(...values, this.now(), id);
    const node = this.get(id);
    if (!node) throw new Error(`node ${id} does not exist`);
    return node;
  }

  upsertNic(nodeId: number, nic: NicInput): void {
    this.nicsChanged();
    this.upsertNicStmt.run({
      mac: nic.mac,
      node_id: nodeId,
      nic_tag: nic.nicTag ?? null,
      ip: nic.ip ?? null,
      network: nic.network ?? null,
      vlan: nic.vlan ?? null,
      mtu: nic.mtu ?? null,
      is_admin: nic.isAdmin ? 1 : 0,
    });
  }

  /** Replaces a node's whole NIC list in one transaction. */
  replaceNics(nodeId: number, nics: NicInput[]): void {
    this.nicsChanged();
    writeTransaction(this.db, () => {
      this.deleteNicsOf.run(nodeId);
      for (const nic of nics) this.upsertNic(nodeId, nic);
    })();
  }

  /**
   * Deletes the node's row and NICs, and keeps its id from being handed out again. Call
   * inside Store.removeNode, which deletes its events and releases its leases first.
   */
  deleteRow(id: number): void {
    this.nicsChanged();
    this.deleteNicsOf.run(id);
    this.deleteNode.run(id);
    this.markRemoved.run(id);
  }

  /** Whether the node is discovered-but-never-booted (UNBOOTED_DISCOVERED above). */
  isUnbootedDiscovered(id: number): boolean {
    return this.unbootedById.get(id) !== undefined;
  }

  /** How many nodes are discovered-but-never-booted (UNBOOTED_DISCOVERED above). */
  countUnbootedDiscovered(): number {
    return this.unbootedCount.get() ?? 0;
  }

  countByState(): Record<NodeState, number> {
    const counts = Object.fromEntries(nodeStates.map((s) => [s, 0])) as Record<NodeState, number>;
    for (const r of this.db.prepare<[], { state: NodeState; n: number }>('SELECT state, count(*) AS n FROM nodes GROUP BY state').all()) {
      counts[r.state] = r.n;
    }
    return counts;
  }
}
