// The admin API: what `fleetboot` CLI verbs and operators' scripts read. Every route here
// sits behind the bearer token.
import type { BootSlotStats } from '../boot/boot-slots.ts';
import { Router } from 'express';
import type { Store } from '../store/store.ts';
import type { NodeRecord } from '../store/nodes.ts';
import type { DhcpStats } from '../dhcp/server.ts';
import type { TftpStats } from '../tftp/server.ts';
import type { StoreWorkerCounters } from '../store/store-worker.ts';
import { HttpError } from './errors.ts';

/** The running head node's counters since it started (`GET /api/v1/counters`, `fleetboot status`). */
export interface HeadNodeCounters {
  startedAt: string;
  /** Null when the service is off. */
  dhcp: DhcpStats | null;
  tftp: TftpStats | null;
  store: StoreWorkerCounters;
  /** Boot storm admission: slots in use, nodes waiting, what was admitted and deferred. */
  bootSlots?: BootSlotStats;
  /** HTTP: bytes of platform files (/os/...) sent in responses that finished, all platforms together. */
  http?: { platformBytesSent: number };
}

/** The public shape of a node: timestamps as ISO strings, no secrets. */
export function nodeView(n: NodeRecord): Record<string, unknown> {
  const iso = (t: number | null): string | null => (t === null ? null : new Date(t).toISOString());
  return {
    id: n.id,
    uuid: n.uuid,
    uuidSources: n.uuidSources,
    hostname: n.hostname,
    state: n.state,
    bootPlatform: n.bootPlatform,
    currentPlatform: n.currentPlatform,
    previousPlatform: n.previousPlatform,
    arch: n.arch,
    serial: n.serial,
    lastBoot: iso(n.lastBoot),
    lastSeen: iso(n.lastSeen),
    traits: n.traits,
    // Power specs hold how to reach the driver, never a secret (a password is a file reference).
    power: n.power,
    nics: n.nics.map((c) => ({ mac: c.mac, nicTag: c.nicTag, ip: c.ip, network: c.network, vlan: c.vlan, mtu: c.mtu, admin: c.isAdmin })),
    sysinfo: n.sysinfo,
    networkConfig: n.networkConfig,
    zpoolConfig: n.zpoolConfig,
    createdAt: iso(n.createdAt),
    updatedAt: iso(n.updatedAt),
  };
}

export function adminApi(store: Store, counters?: () => HeadNodeCounters): Router {
  const r = Router();
  r.get('/counters', (_req, res) => {
    if (!counters) throw new HttpError(404, 'not_found', 'this server keeps no counters');
    res.json(counters());
  });
  r.get('/nodes', (_req, res) => {
    res.json({ nodes: store.nodes.list().map(nodeView) });
  });
  r.get('/nodes/:id', (req, res) => {
    const node = store.nodes.find(req.params.id);
    if (!node) throw new HttpError(404, 'not_found', `no node ${JSON.stringify(req.params.id)} (id, UUID, MAC or hostname)`);
    res.json({ node: nodeView(node), timeline: store.events.timeline(node.id).map((e) => ({ ...e, at: new Date(e.at).toISOString() })) });
  });
  return r;
}
