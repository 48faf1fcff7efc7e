// A node's life: discovered -> setting_up -> running, plus rebooting, unknown, failed,
// retired (docs/design.md "The registry"). Check-ins, operator setup / set / retire and the
// missed-check-in sweep all change state here, each in one transaction, each recorded as
// a boot event so `node show` tells the story.
import type { Logger } from '../log.ts';
import type { Mac } from '../mac.ts';
import { nodeStates, type NodePatch, type NodeRecord, type NodeState } from '../store/nodes.ts';
import type { Store } from '../store/store.ts';
import { NodeConfigError, nicRowsFor, parseNodeNetwork, type NodeNetwork } from './network.ts';
import { newSalt, tokenHashFor, tokenMatchesNode, type NodeKeys } from './secrets.ts';
import type { Checkin, StoredSysinfo } from './sysinfo.ts';
import { reportedDisks } from './sysinfo.ts';
import { planZpool, type ZpoolLayout } from './zpool.ts';
import { writeTransaction } from '../store/db.ts';
import { admitMachine, type UnknownNodePolicy } from './admission.ts';
import { rolloutOfNode } from '../rollout/orchestrator.ts';
import { powerSpecSchema, type PowerSpec } from '../rollout/power.ts';

/** How a node-facing request proved who it is. */
export type NodeAuth = { node: NodeRecord; by: 'address' | 'token' };

export class NodeAccessError extends Error {
  override readonly name = 'NodeAccessError';
}

/**
 * The node a request comes from: the claimed node when the token matches it, else the node
 * holding the request's source address (a node still running with a token that a new
 * `node setup` rotated proves itself that way until it reboots). Loopback gets no special
 * trust: 127.0.0.1 is a node only if a NIC or lease says so.
 */
export function nodeOfRequest(store: Store, ip: string, token: string | null, claimed: NodeRecord | undefined): NodeAuth | null {
  if (token !== null && claimed && tokenMatchesNode(token, claimed.tokenHash)) return { node: claimed, by: 'token' };
  const held = store.nodes.findByAddress(ip);
  return held ? { node: held.node, by: 'address' } : null;
}

/**
 * Whether a boot-script request may carry the node's secrets (its token). Anyone can ask for
 * any MAC's script, so under full DHCP they go only to a request from the node's own address;
 * without it fleetboot knows no node addresses and must trust the MAC (the README says so).
 */
export function scriptRequestFromNode(store: Store, dhcpMode: 'off' | 'full' | 'proxy', node: NodeRecord, ip: string): boolean {
  return dhcpMode !== 'full' || store.nodes.findByAddress(ip)?.node.id === node.id;
}

/** The state a node moves to when it checks in (docs/design.md node states). */
export function stateAfterCheckin(state: NodeState, node: Pick<NodeRecord, 'bootPlatform'>, runningPlatform: string | null): NodeState {
  switch (state) {
    case 'setting_up':
      // Set up means: booted the platform it was assigned (any platform when none is assigned).
      return node.bootPlatform === null || node.bootPlatform === runningPlatform ? 'running' : 'setting_up';
    case 'rebooting':
      return 'running';
    default:
      // discovered waits for an operator's setup; failed and retired stay until an operator acts.
      return state;
  }
}

/** The state a node held before the sweep marked it unknown (from its last `state` event). */
function stateBeforeUnknown(store: Store, nodeId: number): NodeState {
  const events = store.events.timeline(nodeId, 200);
  for (let i = events.length - 1; i >= 0; i--) {
    const e = events[i]!;
    if (e.event === 'state' && e.detail.to === 'unknown' && typeof e.detail.from === 'string' && (nodeStates as readonly string[]).includes(e.detail.from)) {
      return e.detail.from as NodeState;
    }
  }
  return 'running';
}

export interface CheckinResult {
  node: NodeRecord;
  from: NodeState;
  to: NodeState;
}

/**
 * Applies a check-in: sysinfo, new NICs, current_platform, last_boot, last_seen, state.
 * `node` is the node the request was authenticated as, or the one admission registered for
 * a first check-in (nodeconfig/admission.ts).
 */
export function applyCheckin(store: Store, report: Checkin, node: NodeRecord, via: { ip: string; by: string }): CheckinResult {
  return writeTransaction(store.db, (): CheckinResult => {
    const now = store.now();
    const mine = new Set(node.nics.map((n) => n.mac));
    for (const nic of report.nics) {
      if (mine.has(nic.mac)) continue;
      const owner = store.nodes.findByMac(nic.mac);
      // A MAC another node holds is not taken over by a report; an operator moves it.
      if (!owner) store.nodes.upsertNic(node.id, { mac: nic.mac });
    }
    const sysinfo: StoredSysinfo = {
      uuid: report.uuid,
      hostname: report.hostname,
      nics: report.nics,
      cpu: report.cpu,
      ramBytes: report.ramBytes,
      disks: report.disks,
      platform: report.platform,
      bootTime: report.bootTime,
      modules: report.modules,
      agent: report.agent,
      reportedAt: now,
    };
    const from = node.state;
    const base = from === 'unknown' ? stateBeforeUnknown(store, node.id) : from;
    const to = stateAfterCheckin(base, node, report.platform);
    const patch: NodePatch = {
      ...store.nodes.uuidPatch(node, report.uuid, 'os'),
      sysinfo,
      currentPlatform: report.platform,
      lastBoot: report.bootTime * 1000,
      lastSeen: now,
      state: to,
    };
    if (report.hostname && node.hostname === null && !store.nodes.find(report.hostname)) patch.hostname = report.hostname;
    const updated = store.nodes.update(node.id, patch);
    store.events.record({
      event: 'checkin',
      nodeId: node.id,
      mac: report.nics[0]!.mac,
      detail: { ip: via.ip, auth: via.by, platform: report.platform, bootTime: report.bootTime, from, to, modules: report.modules },
    });
    if (from !== to) store.events.record({ event: 'state', nodeId: node.id, detail: { from, to, reason: 'checkin' } });
    return { node: updated, from, to };
  })();
}

export interface AcceptedCheckin extends CheckinResult {
  /** How the node proved who it is: its address, its token, or trust on first use. */
  by: 'address' | 'token' | 'first-use';
  /** The check-in registered a machine fleetboot did not know. */
  registered: boolean;
}

/**
 * Whether a check-in is accepted, and for which node, then applies it. A node proves itself by
 * its source address or its token (nodeOfRequest). A machine fleetboot has never configured
 * (no token, no config) may check in from anywhere, trust on first use, and a new one is
 * registered only if admission lets it in (nodeconfig/admission.ts). Throws NodeAccessError
 * saying why otherwise.
 */
export function acceptCheckin(store: Store, policy: UnknownNodePolicy, report: Checkin, from: { ip: string; token: string | null }): AcceptedCheckin {
  const claimed =
    (report.node && /^\d+$/.test(report.node) ? store.nodes.get(Number(report.node)) : undefined) ??
    (report.uuid ? store.nodes.findByUuid(report.uuid) : undefined) ??
    report.nics.map((n) => store.nodes.findByMac(n.mac)).find((n) => n !== undefined);
  const auth = nodeOfRequest(store, from.ip, from.token, claimed);
  let target: NodeRecord;
  let by: AcceptedCheckin['by'];
  let registered = false;
  if (auth) {
    if (claimed && auth.node.id !== claimed.id) throw new NodeAccessError(`this address belongs to node ${auth.node.id}, not node ${claimed.id}`);
    target = auth.node;
    by = auth.by;
  } else if (from.token === null && (!claimed || (['discovered', 'unknown'].includes(claimed.state) && claimed.tokenHash === null && claimed.networkConfig === null))) {
    if (claimed) target = claimed;
    else {
      const a = admitMachine(store, policy, 'checkin', { mac: report.nics[0]!.mac, uuid: report.uuid, uuidFrom: 'os' });
      if (!a.admitted) throw new NodeAccessError(`${report.nics[0]!.mac}: ${a.reason}`);
      target = a.node;
      registered = a.created;
    }
    by = 'first-use';
  } else {
    throw new NodeAccessError("check in from the node's own address or with its fleetboot_token");
  }
  return { ...applyCheckin(store, report, target, { ip: from.ip, by }), by, registered };
}

export interface SetupInput {
  network: unknown;
  zpool?: ZpoolLayout | undefined;
}

/**
 * `node setup`: validates the network (and the zpool layout against the disks the node
 * reported, when it did), stores both, replaces the NIC rows, issues a new token and moves
 * the node to setting_up. Nothing is written when anything is refused.
 */
export function setupNode(store: Store, keys: NodeKeys, node: NodeRecord, input: SetupInput): NodeRecord {
  if (node.state === 'retired') throw new NodeConfigError(`node ${node.id} is retired; it cannot be set up again`);
  const network: NodeNetwork = parseNodeNetwork(input.network);
  const layout: ZpoolLayout = input.zpool ?? { class: 'default', exclude: [] };
  const disks = reportedDisks(node.sysinfo);
  if (disks.length > 0) planZpool(layout, disks);
  const configured = new Set<Mac>([...network.nics.map((n) => n.mac)]);
  for (const mac of configured) {
    const owner = store.nodes.findByMac(mac);
    if (owner && owner.id !== node.id) throw new NodeConfigError(`network.nics: ${mac} belongs to node ${owner.id}${owner.hostname ? ` (${owner.hostname})` : ''}`);
  }
  const other = store.nodes.find(network.hostname);
  if (other && other.id !== node.id && other.hostname === network.hostname) throw new NodeConfigError(`network.hostname: "${network.hostname}" is node ${other.id}'s name`);
  const rows = nicRowsFor(network, node.nics.map((n) => n.mac));
  for (const r of rows) {
    if (!r.ip) continue;
    const held = store.nodes.findByAddress(r.ip);
    if (held && held.node.id !== node.id) throw new NodeConfigError(`network.interfaces: ${r.ip} is in use by node ${held.node.id}`);
  }
  return writeTransaction(store.db, () => {
    store.nodes.replaceNics(node.id, rows);
    const state: NodeState = node.state === 'discovered' || node.state === 'unknown' || node.state === 'failed' ? 'setting_up' : node.state;
    const updated = store.nodes.update(node.id, {
      networkConfig: network,
      zpoolConfig: layout,
      hostname: network.hostname,
      tokenHash: tokenHashFor(keys, node.id, newSalt()),
      state,
    });
    store.events.record({ event: 'state', nodeId: node.id, detail: { from: node.state, to: state, reason: 'setup' } });
    return updated;
  })();
}

/** A stored power spec as the `power.<field>` strings `node set` edits. */
function powerFields(spec: unknown): Record<string, string> | null {
  if (spec === null || typeof spec !== 'object') return null;
  return Object.fromEntries(Object.entries(spec as Record<string, unknown>).map(([k, v]) => [k, String(v)]));
}

/** Checks `power.*` settings against the power spec schema, naming the field that is wrong. */
function parsePowerSettings(fields: Record<string, string>): PowerSpec {
  const parsed = powerSpecSchema.safeParse(fields);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const where = issue?.path.length ? `power.${issue.path.map(String).join('.')}` : 'power';
  throw new NodeConfigError(`${where}: ${issue?.message ?? 'invalid'}`);
}

const operatorStates: readonly NodeState[] = ['discovered', 'setting_up', 'running', 'rebooting', 'failed'];

/**
 * `node set NODE key=value`: hostname, state (operator-settable states), traits.<name>
 * (empty value removes it), bootarg.<key> (an extra -B arg; empty removes it) and
 * power.<field> (the node's power spec, checked whole once every assignment is applied).
 */
export function setNodeFields(store: Store, node: NodeRecord, assignments: string[]): NodeRecord {
  const patch: NodePatch = {};
  const traits = { ...node.traits };
  let traitsChanged = false;
  let power: Record<string, string> | null = powerFields(node.power);
  let powerChanged = false;
  for (const a of assignments) {
    const m = /^([\w.-]+)=(.*)$/s.exec(a);
    if (!m) throw new NodeConfigError(`expected key=value, got ${JSON.stringify(a)}`);
    const [, key = '', value = ''] = m;
    if (key === 'hostname') {
      if (!/^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$/.test(value)) throw new NodeConfigError(`hostname: expected a host name label, got ${JSON.stringify(value)}`);
      const other = store.nodes.find(value);
      if (other && other.id !== node.id && other.hostname === value) throw new NodeConfigError(`hostname: "${value}" is node ${other.id}'s name`);
      patch.hostname = value;
    } else if (key === 'state') {
      if (!(operatorStates as readonly string[]).includes(value)) {
        throw new NodeConfigError(`state: expected one of ${operatorStates.join(', ')} (use "node retire" to retire), got ${JSON.stringify(value)}`);
      }
      patch.state = value as NodeState;
    } else if (/^(traits|bootarg)\.[\w-]{1,64}$/.test(key)) {
      // Traits live under their bare name; boot args as `bootarg.<key>` traits.
      const name = key.startsWith('traits.') ? key.slice('traits.'.length) : key;
      if (key.startsWith('bootarg.') && /[\s"]/.test(value)) throw new NodeConfigError(`${key}: a boot arg value cannot hold spaces or quotes`);
      if (value === '') delete traits[name];
      else traits[name] = value;
      traitsChanged = true;
    } else if (/^power\.[A-Za-z]{1,32}$/.test(key)) {
      // power.kind=qemu power.qmpSocket=PATH ...; an empty value removes the field, power.kind= all of it.
      const field = key.slice('power.'.length);
      if (field === 'kind' && value === '') power = null;
      else {
        power = { ...(power ?? {}) };
        if (value === '') delete power[field];
        else power[field] = value;
      }
      powerChanged = true;
    } else {
      throw new NodeConfigError(`unknown field "${key}": expected hostname, state, traits.<name>, bootarg.<key> or power.<field>`);
    }
  }
  if (traitsChanged) patch.traits = traits;
  if (powerChanged) patch.power = power === null ? null : parsePowerSettings(power);
  if (node.networkConfig && patch.hostname) {
    // The network config names the host too: keep both in step.
    patch.networkConfig = { ...(node.networkConfig as Record<string, unknown>), hostname: patch.hostname };
  }
  return writeTransaction(store.db, () => {
    const updated = store.nodes.update(node.id, patch);
    if (patch.state && patch.state !== node.state) store.events.record({ event: 'state', nodeId: node.id, detail: { from: node.state, to: patch.state, reason: 'operator' } });
    return updated;
  })();
}

export interface PlatformAssignment {
  node: NodeRecord;
  changed: boolean;
}

/** A manual assignment refused because a rollout will still assign or reboot the node. */
export class NodeInRolloutError extends NodeConfigError {}

/**
 * What a node boots next (`node set-platform`, `POST /api/v1/nodes/:id/platform`, a rollout);
 * null: the default platform (a rollback to a node that booted the default). The platform it
 * had (assigned, else the one it runs) becomes its previous platform: the rescue entry and a
 * rollback's target. Recorded as a `platform` boot event. An operator's assignment is refused
 * while a rollout still has the node pending or in flight, unless `force`.
 */
export function assignPlatform(
  store: Store,
  node: NodeRecord,
  stamp: string | null,
  by: { reason: 'operator' | 'rollout' | 'rollback'; rolloutId?: number; force?: boolean },
): PlatformAssignment {
  if (node.state === 'retired') throw new NodeConfigError(`node ${node.id} is retired; it boots nothing`);
  if (stamp !== null && !store.platforms.get(stamp)) throw new NodeConfigError(`platform: no platform ${stamp} is imported (see fleetboot platform list)`);
  if (node.bootPlatform === stamp) return { node, changed: false };
  if (by.reason === 'operator' && !by.force) {
    const held = rolloutOfNode(store.rollouts, node.id);
    if (held?.claimed) {
      throw new NodeInRolloutError(
        `node ${node.id} is in rollout ${held.rollout.id} (${held.rollout.state}, its step ${held.step.state}); the rollout would undo or race this. ` +
          `Cancel the rollout (fleetboot rollout cancel ${held.rollout.id}) or force it (--force; over HTTP {"force": true})`,
      );
    }
  }
  const had = node.bootPlatform ?? node.currentPlatform;
  const previousPlatform = had !== null && had !== stamp ? had : node.previousPlatform;
  return writeTransaction(store.db, (): PlatformAssignment => {
    const updated = store.nodes.update(node.id, { bootPlatform: stamp, previousPlatform });
    store.events.record({
      event: 'platform',
      nodeId: node.id,
      detail: { from: node.bootPlatform, to: stamp, previous: previousPlatform, reason: by.reason, ...(by.rolloutId !== undefined ? { rollout: by.rolloutId } : {}) },
    });
    return { node: updated, changed: true };
  })();
}

/** `node retire`: out of service; its token stops working and it gets no config modules. */
export function retireNode(store: Store, node: NodeRecord): NodeRecord {
  return writeTransaction(store.db, () => {
    const updated = store.nodes.update(node.id, { state: 'retired', tokenHash: null });
    store.events.record({ event: 'state', nodeId: node.id, detail: { from: node.state, to: 'retired', reason: 'operator' } });
    return updated;
  })();
}

const sweptStates: readonly NodeState[] = ['discovered', 'setting_up', 'running', 'rebooting'];

/** Marks nodes not heard from for `unknownAfterMs` as unknown; returns those it changed. */
export function sweepUnknown(store: Store, unknownAfterMs: number): NodeRecord[] {
  const cutoff = store.now() - unknownAfterMs;
  const changed: NodeRecord[] = [];
  for (const n of store.nodes.list()) {
    if (!sweptStates.includes(n.state) || n.lastSeen === null || n.lastSeen > cutoff) continue;
    writeTransaction(store.db, () => {
      changed.push(store.nodes.update(n.id, { state: 'unknown' }));
      store.events.record({ event: 'state', nodeId: n.id, detail: { from: n.state, to: 'unknown', reason: 'missed check-ins', lastSeen: n.lastSeen } });
    })();
  }
  return changed;
}

/** The periodic sweep as a head-node Service. */
export class UnknownNodeSweeper {
  readonly name = 'node-sweep';
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly store: Store,
    private readonly unknownAfterSeconds: number,
    private readonly log: Logger,
  ) {}

  sweepOnce(): NodeRecord[] {
    const changed = sweepUnknown(this.store, this.unknownAfterSeconds * 1000);
    for (const n of changed) this.log.warn({ event: 'node_unknown', node: n.id, mac: n.nics[0]?.mac }, 'node missed its check-ins');
    return changed;
  }

  async start(): Promise<void> {
    // Check a few times per timeout so a node turns unknown at most a quarter late.
    const every = Math.min(60_000, Math.max(1000, (this.unknownAfterSeconds * 1000) / 4));
    this.timer = setInterval(() => {
      try {
        this.sweepOnce();
      } catch (err) {
        this.log.error({ err, event: 'node_sweep_failed' }, 'node sweep failed');
      }
    }, every);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
