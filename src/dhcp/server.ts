// The DHCP server: full mode (RFC 2131 address allocation plus PXE boot fields) or
// ProxyDHCP mode (PXE spec §2.2.3: boot fields only, no address, on ports 67 and 4011).
//
// Interfaces (docs/netboot-notes.md pitfall 8): one socket per admin interface, each bound to its
// device with SO_BINDTODEVICE (./udp.ts), so a packet's socket says which network it came
// from and replies leave by that interface. Networks without an interface are reached
// through relays only: an unbound socket takes their relayed (giaddr != 0) requests.
// Sockets receive and send in batches (recvmmsg/sendmmsg, ./udp.ts).
//
// Durability: leases and boot events produced while handling packets are queued and
// written in one SQLite transaction per burst (flush); a reply whose packet changed a written
// lease (an ACK) is sent only after that transaction commits, so an address promised on the
// wire is always on disk first. Replies that bind nothing (offers, NAKs) leave at once.
import type { RemoteInfo } from 'node:dgram';
import { capture } from '../capture.ts';
import { ipInSubnet, parseCidr, intToIpv4, ipv4ToInt, type FleetbootConfig, type NetworkConfig } from '../config/schema.ts';
import type { Service } from '../headnode.ts';
import type { Logger } from '../log.ts';
import { macFromBytes, type Mac } from '../mac.ts';
import type { BootEventKind } from '../store/events.ts';
import type { Lease } from '../store/leases.ts';
import type { Store } from '../store/store.ts';
import { admitMachine, unknownMachineAnswer } from '../nodeconfig/admission.ts';
import { archName, bootAnswerFor, classifyClient, ipxeNoPxeDhcp, pxeDiscoveryControl, type BootSettings, type ClientKind } from './boot.ts';
import { clientKey, LeaseBook, leaseClientKey } from './lease-book.ts';
import { ProxyAddresses } from './proxy-addresses.ts';
import {
  BootOp,
  BROADCAST_FLAG,
  decodePacket,
  encodePacket,
  noOptions,
  type DhcpOptions,
  type DhcpPacket,
  type MessageTypeName,
} from './packet.ts';
import { DhcpSocket, type DhcpSocketOptions, type ReplySocket } from './udp.ts';
import { writeTransaction } from '../store/db.ts';

export interface DhcpServerDeps {
  config: FleetbootConfig;
  store: Store;
  log: Logger;
  /** The HTTP port nodes fetch from (the bound one when config.http.port is 0). */
  httpPort?: () => number;
  /** Opens a listening socket; default a DhcpSocket (native/dhcp_io.c). Tests pass their own. */
  openSocket?: (options: DhcpSocketOptions) => ReplySocket;
  /** Where proxy mode remembers which MAC claimed which address (default: a fresh one). */
  proxyAddresses?: ProxyAddresses;
}

/** Counters a test or `status` can read; malformed and ignored packets only move these. */
export interface DhcpStats {
  received: number;
  malformed: number;
  ignored: number;
  replies: number;
  /** Replies lost: the send failed for good, or the retry queue was full. */
  sendErrors: number;
  /** Sends that hit a full buffer (EAGAIN, ENOBUFS) and were queued to be tried again. */
  sendRetries: number;
  /** Replies waiting in the retry queue now. */
  sendQueued: number;
  /**
   * Datagrams the kernel dropped before the server read them: kept out of the receive buffer
   * by the socket filter (not a BOOTREQUEST), or arriving at a full buffer. Also counted in
   * received and malformed.
   */
  kernelDrops: number;
  writeErrors: number;
  /** New MACs not registered nor answered: dhcp.maxUnbootedDiscovered was reached (docs/hardening.md "DHCP exhaustion"). */
  unknownCapped: number;
  /** Leases taken back from a discovered-but-never-booted or unregistered client for another one. */
  reclaimed: number;
  /** DISCOVERs left unanswered for want of an address. */
  poolExhausted: number;
}

/**
 * What a received packet was: its option 53 message type (RFC 2132 §9.6) for those a client
 * sends, `other` for another type or a packet that is no Ethernet BOOTREQUEST with option 53,
 * `malformed` for one read but not decodable (or longer than a receive slot), `unknown` for
 * one the kernel dropped unread (DhcpStats.kernelDrops: the socket filter's garbage, or a full
 * receive buffer).
 */
export const dhcpPacketTypes = ['discover', 'request', 'decline', 'release', 'inform', 'other', 'malformed', 'unknown'] as const;
export type DhcpPacketType = (typeof dhcpPacketTypes)[number];
/**
 * What the server decided for it: replied with an OFFER, ACK or NAK; `recorded` a change and
 * owed no reply (RELEASE, DECLINE, a REQUEST choosing another server: RFC 2131 §4.3.2-4.3.4);
 * `ignored` it (policy, no network, no record); `capped` (dhcp.maxUnbootedDiscovered);
 * `exhausted` (no free address); `dropped` unread or undecodable; `failed` (handling threw).
 */
export const dhcpPacketOutcomes = ['offered', 'acked', 'naked', 'recorded', 'ignored', 'capped', 'exhausted', 'dropped', 'failed'] as const;
export type DhcpPacketOutcome = (typeof dhcpPacketOutcomes)[number];

const PT = { discover: 0, request: 1, decline: 2, release: 3, inform: 4, other: 5, malformed: 6, unknown: 7 } as const satisfies Record<DhcpPacketType, number>;
const PO = { offered: 0, acked: 1, naked: 2, recorded: 3, ignored: 4, capped: 5, exhausted: 6, dropped: 7, failed: 8 } as const satisfies Record<DhcpPacketOutcome, number>;
const typeOfMessage: Record<MessageTypeName, number> = { discover: PT.discover, request: PT.request, decline: PT.decline, release: PT.release, inform: PT.inform, offer: PT.other, ack: PT.other, nak: PT.other };

/** Packets by type and outcome: one cell per pair, bumped once per packet with no allocation. */
export class DhcpPacketCounts {
  // Float64: exact up to 2^53, where a Uint32Array would wrap after 2^32 packets (days of a boot storm).
  private readonly cells = new Float64Array(dhcpPacketTypes.length * dhcpPacketOutcomes.length);

  add(type: number, outcome: number, n = 1): void {
    this.cells[type * dhcpPacketOutcomes.length + outcome]! += n;
  }

  get(type: DhcpPacketType, outcome: DhcpPacketOutcome): number {
    return this.cells[PT[type] * dhcpPacketOutcomes.length + PO[outcome]]!;
  }
}

type Port = 'dhcp' | 'proxy';

interface Listener {
  socket: ReplySocket;
  /** The device this socket is bound to; null for the relay-only socket. */
  iface: string | null;
  port: Port;
}

interface Outgoing {
  bytes: Buffer;
  socket: ReplySocket;
  address: string;
  port: number;
  /** For the log line when the send fails. */
  mac: Mac;
  nodeId: number | null;
  type: MessageTypeName | undefined;
  /** When a send of it first found the buffer full (performance.now()); null before. */
  blockedSince: number | null;
}

interface PendingEvent {
  event: BootEventKind;
  nodeId: number | null;
  mac: Mac;
  detail: Record<string, unknown>;
}

const ZERO = '0.0.0.0';
/** Most replies sent in one go (see queueSend). */
const MAX_BURST = 32;
const BROADCAST = '255.255.255.255';
/**
 * A reply whose send found the buffer full is queued and tried again, after 1 ms and then
 * twice as long each time the buffer took nothing (at most 64 ms). It is given up after a
 * second, well before the client retransmits (4 s, RFC 2131 §4.1) and would get a fresh
 * one; at most SEND_QUEUE_MAX wait, so a flood cannot grow the queue without bound.
 */
const SEND_MAX_WAIT_MS = 1000;
const SEND_QUEUE_MAX = 4096;
const SEND_RETRY_MAX_MS = 64;
/** The shortest time between two log lines about one kind of per-packet trouble (logAtMostEvery). */
const QUIET_LOG_MS = 60_000;

export class DhcpServer implements Service {
  readonly name = 'dhcp';
  readonly stats: DhcpStats = { received: 0, malformed: 0, ignored: 0, replies: 0, sendErrors: 0, sendRetries: 0, sendQueued: 0, kernelDrops: 0, writeErrors: 0, unknownCapped: 0, reclaimed: 0, poolExhausted: 0 };
  /** Every packet received, by type and outcome (GET /metrics). */
  readonly packets = new DhcpPacketCounts();
  /** The outcome of the packet being handled (a PO value), counted when onMessage returns. */
  private outcome: number = PO.ignored;
  private listeners: Listener[] = [];
  private book: LeaseBook | null = null;
  private pendingLeases = new Map<string, Lease>();
  /** For each address in pendingLeases, the book's entry before the batch (none: undefined). */
  private beforeBatch = new Map<string, Lease | undefined>();
  private pendingEvents: PendingEvent[] = [];
  /** Replies that wait for the next commit: their packet changed a lease that is written. */
  private pendingReplies: Outgoing[] = [];
  private flushTimeout: NodeJS.Timeout | null = null;
  private flushImmediate: NodeJS.Immediate | null = null;
  private settledWaiters: (() => void)[] = [];
  /** The per-turn write, built once (better-sqlite3 transaction function). */
  private writeBatch: ((leases: readonly Lease[], events: readonly PendingEvent[]) => void) | null = null;
  private lastFlushAt = -Infinity;
  private httpPortCache: number | null = null;
  private sweepTimer: NodeJS.Timeout | null = null;
  /** Replies whose send hit a full buffer, oldest first, and the timer that tries them again. */
  private sendQueue: Outgoing[] = [];
  private sendTimer: NodeJS.Timeout | null = null;
  private sendDelayMs = 1;
  /** A flood the filter keeps out wakes no batch: its drops are counted on this timer too. */
  private dropsTimer: NodeJS.Timeout | null = null;
  private boundPorts: { dhcp: number; proxy: number | null } = { dhcp: 0, proxy: null };
  /** Per event name, when it was last logged and how many happened since (see logAtMostEvery). */
  private readonly quietLogs = new Map<string, { at: number; since: number }>();
  /** Per-network values computed once, not per packet. */
  private readonly maskOf = new Map<NetworkConfig, string>();
  /** Proxy mode: address -> MAC of PXE clients, learnt from their requests (proxy-addresses.ts). */
  readonly proxyAddresses: ProxyAddresses;

  constructor(private readonly deps: DhcpServerDeps) {
    this.proxyAddresses = deps.proxyAddresses ?? new ProxyAddresses();
  }

  private get config(): FleetbootConfig {
    return this.deps.config;
  }

  private get log(): Logger {
    return this.deps.log;
  }

  /** The server's view of an address, offers included (offers are never written: putLease). */
  lease(ip: string): Lease | undefined {
    return this.book?.get(ip);
  }

  /** Ports actually bound (tests bind port 0). */
  ports(): { dhcp: number; proxy: number | null } {
    return { ...this.boundPorts };
  }

  async start(): Promise<{ dhcp: number; proxy: number | null }> {
    const mode = this.config.dhcp.mode;
    if (mode === 'off') throw new Error('dhcp.mode is "off"');
    for (const n of this.config.networks) {
      if (!n.serverAddress) throw new Error(`networks.${n.name}.serverAddress is needed for DHCP (option 54, siaddr)`);
    }
    this.book = new LeaseBook(this.deps.store.leases.list(), this.config.dhcp.matchClientId, (l) => this.provisionalLease(l));
    const ifaces = [...new Set(this.config.networks.flatMap((n) => (n.interface ? [n.interface] : [])))];
    // One unbound socket serves networks without an interface (relayed requests, or the single
    // unnamed network of a one-segment setup).
    const needUnbound = ifaces.length === 0 || this.config.networks.some((n) => !n.interface);
    if (ifaces.length === 0 && this.config.networks.length === 1 && this.config.networks[0]!.relayAddresses.length === 0) {
      this.log.warn(
        { event: 'dhcp_unbound', network: this.config.networks[0]!.name },
        'no networks[].interface set: DHCP answers direct requests arriving on any interface; name the admin interface to restrict it',
      );
    }
    const ports: Port[] = mode === 'proxy' ? ['dhcp', 'proxy'] : ['dhcp'];
    try {
      for (const port of ports) {
        let bound = port === 'dhcp' ? this.config.dhcp.port : this.config.dhcp.proxyPort;
        for (const iface of [...ifaces, ...(needUnbound ? [null] : [])]) {
          const l = this.listen(port, bound, iface);
          bound = l.socket.port;
          if (port === 'dhcp') this.boundPorts.dhcp = bound;
          else this.boundPorts.proxy = bound;
        }
      }
    } catch (err) {
      await this.stop();
      throw err;
    }
    this.sweepTimer = setInterval(() => this.expireLeases(), 30_000);
    this.sweepTimer.unref();
    this.dropsTimer = setInterval(() => this.countKernelDrops(), 1000);
    this.dropsTimer.unref();
    this.log.info({ event: 'dhcp_started', mode, ports: this.boundPorts, interfaces: ifaces, leases: this.book.size }, 'DHCP server listening');
    return this.ports();
  }

  private listen(port: Port, portNumber: number, iface: string | null): Listener {
    const l = {} as Listener;
    l.iface = iface;
    l.port = port;
    l.socket = (this.deps.openSocket ?? ((o: DhcpSocketOptions) => new DhcpSocket(o)))({
      address: this.config.dhcp.listen,
      port: portNumber,
      device: iface,
      // Bursts of PXE clients (a rack powering on) must not overflow the default ~200 KiB buffer.
      receiveBuffer: 4 << 20,
      onMessage: (msg, rinfo) => this.onMessage(msg, rinfo, l),
      onTruncated: (rinfo) => {
        this.stats.received++;
        this.stats.malformed++;
        this.packets.add(PT.malformed, PO.dropped);
        this.log.debug({ event: 'dhcp_malformed', from: rinfo.address, reason: 'datagram longer than 4 KiB' }, 'dropped malformed DHCP packet');
      },
      // Garbage (not even a BOOTREQUEST header) is counted per batch, never decoded or logged.
      onScreened: (count) => {
        this.stats.received += count;
        this.stats.malformed += count;
        this.packets.add(PT.malformed, PO.dropped, count);
      },
      onBatchDone: () => this.countKernelDrops(),
    });
    this.listeners.push(l);
    return l;
  }

  /** Adds what the kernel dropped since the last look to the counters (see DhcpStats.kernelDrops). */
  private countKernelDrops(): void {
    let total = 0;
    for (const l of this.listeners) total += l.socket.kernelDrops?.() ?? 0;
    const delta = total - this.stats.kernelDrops;
    if (delta <= 0) return;
    this.stats.kernelDrops = total;
    this.stats.received += delta;
    this.stats.malformed += delta;
    this.packets.add(PT.unknown, PO.dropped, delta);
  }

  async stop(): Promise<void> {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
    if (this.dropsTimer) clearInterval(this.dropsTimer);
    this.dropsTimer = null;
    this.countKernelDrops();
    this.flush();
    // One last try for replies still queued; what the buffer does not take now is lost.
    if (this.sendTimer) clearTimeout(this.sendTimer);
    this.sendTimer = null;
    const queued = this.sendQueue;
    this.sendQueue = [];
    for (const o of queued) o.blockedSince = -Infinity;
    this.sendReplies(queued);
    this.stats.sendQueued = 0;
    const ls = this.listeners;
    this.listeners = [];
    for (const l of ls) l.socket.close();
  }

  private onMessage(msg: Buffer, rinfo: RemoteInfo, l: Listener): void {
    this.stats.received++;
    let type: number = PT.malformed;
    this.outcome = PO.dropped;
    try {
      capture('dhcp-packet', msg);
      const decoded = decodePacket(msg);
      if (!decoded.ok) {
        this.stats.malformed++;
        this.log.debug({ event: 'dhcp_malformed', from: rinfo.address, reason: decoded.reason }, 'dropped malformed DHCP packet');
        return;
      }
      const p = decoded.packet;
      // Every path below sets this.outcome; a path that forgot reads as ignored.
      this.outcome = PO.ignored;
      if (p.op !== BootOp.request || !p.options.messageType || p.htype !== 1 || p.hlen !== 6) {
        type = PT.other;
        this.ignore(p, rinfo, 'not an Ethernet BOOTREQUEST with option 53');
        return;
      }
      type = typeOfMessage[p.options.messageType];
      this.handle(p, rinfo, l);
    } catch (err) {
      // Never let one packet take the socket loop down (docs/style.md "Errors").
      this.stats.malformed++;
      this.outcome = PO.failed;
      this.log.warn({ err, event: 'dhcp_error', from: rinfo.address }, 'DHCP packet handling failed');
    } finally {
      this.packets.add(type, this.outcome);
    }
  }

  private ignore(p: DhcpPacket | null, rinfo: RemoteInfo, reason: string, mac?: Mac): void {
    this.stats.ignored++;
    this.outcome = PO.ignored;
    this.log.debug({ event: 'dhcp_ignored', mac, from: rinfo.address, type: p?.options.messageType, reason }, 'DHCP packet ignored');
  }

  /** RFC 2131 §4.3.1: giaddr names the network of a relayed request; else the arrival interface does. */
  private networkFor(p: DhcpPacket, l: Listener): NetworkConfig | undefined {
    const nets = this.config.networks;
    if (p.giaddr !== ZERO) {
      return nets.find((n) => n.relayAddresses.includes(p.giaddr)) ?? nets.find((n) => ipInSubnet(p.giaddr, n.subnet));
    }
    if (l.iface) return nets.find((n) => n.interface === l.iface);
    // Unbound socket: a direct request can only be placed when there is one network and no interfaces.
    const unnamed = nets.filter((n) => !n.interface);
    return unnamed.length === 1 && nets.length === 1 ? unnamed[0] : undefined;
  }

  private handle(p: DhcpPacket, rinfo: RemoteInfo, l: Listener): void {
    const mac = macFromBytes(p.chaddr);
    const type = p.options.messageType!;
    const net = this.networkFor(p, l);
    if (!net) return this.ignore(p, rinfo, p.giaddr !== ZERO ? `no network for relay ${p.giaddr}` : 'no network on this interface', mac);
    const client = classifyClient(p.options);
    const mode = this.config.dhcp.mode;
    if (mode === 'proxy' && client.kind === 'os') return this.ignore(p, rinfo, 'proxy mode answers PXE clients only', mac);

    // A machine not in the registry is admitted, answered unregistered, or not answered at
    // all, as the unknown-node policy says (nodeconfig/admission.ts).
    let nic = this.deps.store.nodes.nicByMac(mac);
    if (!nic) {
      const channel = mode === 'proxy' ? 'proxy-dhcp' : 'dhcp';
      if (type === 'discover' || type === 'request' || type === 'inform') {
        const arch = p.options.clientArch?.[0];
        const a = admitMachine(
          this.deps.store,
          this.config.unknownNodePolicy,
          channel,
          { mac, uuid: p.options.clientUuid ?? null, uuidFrom: 'dhcp', arch: arch === undefined ? null : archName(arch) },
          { maxUnbootedDiscovered: this.config.dhcp.maxUnbootedDiscovered },
        );
        if (!a.admitted && a.capped) {
          // A flood of new MACs: counted, logged once a minute, never per packet.
          this.stats.unknownCapped++;
          this.stats.ignored++;
          this.outcome = PO.capped;
          this.logAtMostEvery('dhcp_unknown_capped', { mac, network: net.name, reason: a.reason }, 'new machines not registered: too many discovered nodes never booted');
          return;
        }
        if (!a.admitted && a.answer === 'refuse') return this.ignore(p, rinfo, a.reason, mac);
        if (a.admitted) {
          if (a.created) this.log.info({ event: 'node_discovered', mac, node: a.node.id }, 'new node discovered by DHCP');
          nic = { nodeId: a.node.id, ip: a.node.nics.find((n) => n.mac === mac)?.ip ?? null };
        }
      } else if (unknownMachineAnswer(this.config.unknownNodePolicy, channel).answer === 'refuse') {
        return this.ignore(p, rinfo, `${type} from a machine the unknown-node policy does not answer`, mac);
      }
    }
    const nodeId = nic?.nodeId ?? null;
    const key = clientKey(mac, p.options.clientId, this.config.dhcp.matchClientId);
    const ctx: Ctx = { p, rinfo, l, net, mac, nodeId, client, key, persisted: false };

    if (mode === 'proxy') return this.handleProxy(ctx);
    switch (type) {
      case 'discover':
        return this.onDiscover(ctx, nic?.ip ?? null);
      case 'request':
        return this.onRequest(ctx, nic?.ip ?? null);
      case 'release':
        return this.onRelease(ctx);
      case 'decline':
        return this.onDecline(ctx);
      case 'inform':
        return this.onInform(ctx);
      default:
        return this.ignore(p, rinfo, `unexpected ${type} from a client`, mac);
    }
  }

  // ---- full mode -------------------------------------------------------------------------

  private now(): number {
    return this.deps.store.now();
  }

  /**
   * A registered NIC's static address counts when it lies in the network it booted on and no
   * other client holds a live lease on it (an address is never given to two clients; the
   * NIC gets a dynamic one until that lease ends).
   */
  private staticFor(ctx: Ctx, staticIp: string | null): string | null {
    if (!staticIp || !ipInSubnet(staticIp, ctx.net.subnet)) return null;
    if (!this.book!.availableTo(staticIp, ctx.key, this.now())) {
      this.log.warn({ event: 'dhcp_static_in_use', mac: ctx.mac, node: ctx.nodeId, ip: staticIp }, 'static address is leased to another client');
      return null;
    }
    return staticIp;
  }

  private reservedFor(mac: Mac): (ip: string) => boolean {
    return (ip) => {
      const owner = this.deps.store.nodes.staticOwner(ip);
      return owner !== null && owner !== mac;
    };
  }

  private leaseSecondsFor(ctx: Ctx): number {
    const asked = ctx.p.options.leaseSeconds;
    // RFC 2131 §4.3.1: the client may ask for a lease time; the server may give less.
    return asked !== undefined && asked >= 60 ? Math.min(asked, ctx.net.leaseSeconds) : ctx.net.leaseSeconds;
  }

  private onDiscover(ctx: Ctx, staticIp: string | null): void {
    const { p, net, mac, key } = ctx;
    const book = this.book!;
    const now = this.now();
    // xid and secs (RFC 2131 §4.1, §4.4.1): a client's retransmission repeats the xid with a
    // larger secs, so the timeline shows each retry of an exchange as such.
    this.event(ctx, 'dhcp_discover', { network: net.name, arch: p.options.clientArch?.[0] ?? null, vendorClass: p.options.vendorClassId ?? null, xid: p.xid, secs: p.secs });
    // RFC 2131 §4.3.1 order: static binding, current/previous binding, requested address, a free one.
    let ip = this.staticFor(ctx, staticIp);
    if (!ip) {
      const prev = book.forClient(key, net.name);
      // A live binding stays put even if the address became another NIC's static one since.
      const live = prev !== undefined && prev.state === 'bound' && prev.expiresAt > now;
      if (prev && book.availableTo(prev.ip, key, now) && (live || !this.reservedFor(mac)(prev.ip)) && inRange(prev.ip, net)) ip = prev.ip;
    }
    const req = p.options.requestedAddress;
    if (!ip && req && inRange(req, net) && book.availableTo(req, key, now) && !this.reservedFor(mac)(req)) ip = req;
    ip ??= book.allocate(net, key, now, this.reservedFor(mac));
    if (!ip) {
      // docs/hardening.md "DHCP exhaustion": the pool is full; a discovered-but-never-booted
      // (or unregistered) client's lease goes first, never a booted node's.
      const taken = book.reclaim(net, key, this.reservedFor(mac), (l) => this.provisionalLease(l));
      if (taken) {
        this.stats.reclaimed++;
        if (this.log.isLevelEnabled('debug')) {
          this.log.debug({ event: 'dhcp_reclaimed', mac, node: ctx.nodeId, ip: taken.ip, from: taken.mac, network: net.name }, 'lease taken back for another client');
        }
        ip = taken.ip;
      }
    }
    if (!ip) {
      this.stats.poolExhausted++;
      this.outcome = PO.exhausted;
      this.logAtMostEvery('dhcp_pool_exhausted', { mac, node: ctx.nodeId, network: net.name }, 'no free address to offer');
      return;
    }
    const held = book.get(ip);
    const seconds = this.leaseSecondsFor(ctx);
    // A bound lease renewed by DISCOVER keeps its state; otherwise the address is held for the offer.
    const keepBound = held && held.state === 'bound' && leaseClientKey(held, this.config.dhcp.matchClientId) === key && held.expiresAt > now;
    this.putLease(ctx, ip, keepBound ? 'bound' : 'offered', keepBound ? held.expiresAt : now + this.config.dhcp.offerSeconds * 1000);
    this.reply(ctx, 'offer', ip, seconds);
  }

  private onRequest(ctx: Ctx, staticIp: string | null): void {
    const { p, net, key } = ctx;
    const book = this.book!;
    const now = this.now();
    const o = p.options;
    this.event(ctx, 'dhcp_request', { network: net.name, requested: o.requestedAddress ?? null, ciaddr: p.ciaddr, serverId: o.serverId ?? null, xid: p.xid, secs: p.secs });
    const fixed = this.staticFor(ctx, staticIp);
    if (o.serverId !== undefined) {
      // SELECTING (RFC 2131 §4.3.2): the client chose a server; if not us, free our offer.
      if (o.serverId !== net.serverAddress) {
        const mine = book.forClient(key, net.name);
        if (mine && mine.state === 'offered') this.putLease(ctx, mine.ip, 'released', now, mine, false);
        this.outcome = PO.recorded;
        return;
      }
      const ip = o.requestedAddress ?? (p.ciaddr !== ZERO ? p.ciaddr : undefined);
      const lease = ip ? book.get(ip) : undefined;
      const ok = ip !== undefined && (ip === fixed || (lease !== undefined && leaseClientKey(lease, this.config.dhcp.matchClientId) === key && lease.state !== 'declined'));
      if (!ok || !ip) return this.nak(ctx, 'requested address was not offered to this client');
      return this.ack(ctx, ip);
    }
    // INIT-REBOOT (option 50, no ciaddr) or RENEWING/REBINDING (ciaddr, no option 50): §4.3.2.
    const ip = o.requestedAddress ?? (p.ciaddr !== ZERO ? p.ciaddr : undefined);
    if (!ip) return this.ignore(p, ctx.rinfo, 'REQUEST without an address', ctx.mac);
    if (!ipInSubnet(ip, net.subnet)) return this.nak(ctx, `${ip} is not on network ${net.name}`);
    if (fixed && ip !== fixed) return this.nak(ctx, `this NIC's address is ${fixed}`);
    if (ip === fixed) return this.ack(ctx, ip);
    const lease = book.get(ip);
    if (lease && leaseClientKey(lease, this.config.dhcp.matchClientId) === key && lease.state !== 'declined') return this.ack(ctx, ip);
    if (!inRange(ip, net) || !book.availableTo(ip, key, now) || this.reservedFor(ctx.mac)(ip)) {
      return this.nak(ctx, `${ip} belongs to another client`);
    }
    // INIT-REBOOT with no record of the client: RFC 2131 §4.3.2 says remain silent.
    if (p.ciaddr === ZERO) return this.ignore(p, ctx.rinfo, 'INIT-REBOOT for an address we have no record of', ctx.mac);
    // RENEWING/REBINDING for a free address in our range: grant it (e.g. after a database loss).
    return this.ack(ctx, ip);
  }

  private ack(ctx: Ctx, ip: string): void {
    const seconds = this.leaseSecondsFor(ctx);
    this.putLease(ctx, ip, 'bound', this.now() + seconds * 1000);
    this.reply(ctx, 'ack', ip, seconds);
  }

  private nak(ctx: Ctx, reason: string): void {
    this.outcome = PO.naked;
    this.event(ctx, 'dhcp_nak', { reason });
    this.log.info({ event: 'dhcp_nak', mac: ctx.mac, node: ctx.nodeId, reason }, 'DHCPNAK');
    this.send(ctx, this.baseReply(ctx, 'nak', ZERO, reason), true);
  }

  private onRelease(ctx: Ctx): void {
    const ip = ctx.p.ciaddr;
    const lease = this.book!.get(ip);
    this.outcome = PO.recorded;
    this.event(ctx, 'dhcp_release', { ip });
    this.log.info({ event: 'dhcp_release', mac: ctx.mac, node: ctx.nodeId, ip }, 'DHCPRELEASE');
    // RFC 2131 §4.3.4: mark the address free, but remember the client for its next DISCOVER.
    if (lease && leaseClientKey(lease, this.config.dhcp.matchClientId) === ctx.key && lease.state === 'bound') this.putLease(ctx, ip, 'released', this.now(), lease);
  }

  private onDecline(ctx: Ctx): void {
    const ip = ctx.p.options.requestedAddress;
    if (!ip) return this.ignore(ctx.p, ctx.rinfo, 'DECLINE without option 50', ctx.mac);
    const lease = this.book!.get(ip);
    this.outcome = PO.recorded;
    this.event(ctx, 'dhcp_decline', { ip });
    this.log.warn({ event: 'dhcp_decline', mac: ctx.mac, node: ctx.nodeId, ip }, 'client declined an address (in use on the wire?)');
    // RFC 2131 §4.3.3: the address is marked not available for a while.
    if (lease && leaseClientKey(lease, this.config.dhcp.matchClientId) === ctx.key) {
      this.putLease(ctx, ip, 'declined', this.now() + this.config.dhcp.declineSeconds * 1000, { ...lease, mac: null, clientId: null });
    }
  }

  private onInform(ctx: Ctx): void {
    this.outcome = PO.acked;
    this.event(ctx, 'dhcp_inform', { ciaddr: ctx.p.ciaddr });
    // RFC 2131 §4.3.5: DHCPACK with configuration, no lease time, no yiaddr, sent to ciaddr.
    const r = this.baseReply(ctx, 'ack', ZERO);
    this.addNetworkOptions(r.options, ctx.net);
    this.addBoot(ctx, r, 'full');
    this.send(ctx, r, false);
  }

  /**
   * Records a lease change in the book and, when `persist`, queues it for the disk before the
   * reply goes. Offers are not written: RFC 2131 §4.3.1 lets a server not even reserve an
   * offered address, and one lost in a crash costs the client a NAK and a new DISCOVER, never
   * an address given twice (only an ACK binds, and an ACK is always on disk first). Kea does
   * the same (no lease on DISCOVER unless offer-lifetime is set).
   */
  private putLease(ctx: Ctx, ip: string, state: Lease['state'], expiresAt: number, base?: Lease, persist = state !== 'offered'): void {
    const now = this.now();
    const l: Lease = {
      ip,
      network: ctx.net.name,
      mac: base ? base.mac : ctx.mac,
      clientId: base ? base.clientId : (ctx.p.options.clientId?.toString('hex') ?? null),
      hostname: base ? base.hostname : (ctx.p.options.hostname ?? null),
      state,
      expiresAt,
      // RFC 3046 §2.2: the relay info is stored with the lease (leases.relay_info).
      relayInfo: base ? base.relayInfo : (ctx.p.options.relayAgentInfo?.raw ?? null),
      updatedAt: now,
    };
    const old = this.book!.get(ip);
    // A DISCOVER from a client already bound to the address changes nothing: no write.
    if (old && sameLease(old, l)) return;
    this.book!.put(l, (state === 'offered' || state === 'bound') && this.provisionalClient(ctx));
    if (!persist) return;
    if (!this.beforeBatch.has(ip)) this.beforeBatch.set(ip, old);
    this.pendingLeases.set(ip, l);
    ctx.persisted = true;
    this.scheduleFlush();
  }

  /** Whether the packet's client is discovered-but-never-booted, or not registered at all (asked once per packet). */
  private provisionalClient(ctx: Ctx): boolean {
    ctx.provisional ??= ctx.nodeId === null || this.deps.store.nodes.isUnbootedDiscovered(ctx.nodeId);
    return ctx.provisional;
  }

  /** The same question for whoever holds a lease (store/nodes.ts UNBOOTED_DISCOVERED). */
  private provisionalLease(l: Lease): boolean {
    const nic = l.mac ? this.deps.store.nodes.nicByMac(l.mac) : null;
    return nic === null || this.deps.store.nodes.isUnbootedDiscovered(nic.nodeId);
  }

  /**
   * A warning for something a flood repeats per packet: the first one, then at most one a
   * minute, carrying how many happened since the last line (the stats count them all).
   */
  private logAtMostEvery(event: string, fields: Record<string, unknown>, msg: string): void {
    const now = performance.now();
    const q = this.quietLogs.get(event);
    if (q && now - q.at < QUIET_LOG_MS) {
      q.since++;
      return;
    }
    this.quietLogs.set(event, { at: now, since: 0 });
    this.log.warn({ event, ...fields, since: q ? q.since + 1 : 1 }, msg);
  }

  /** Marks bound and offered leases past their time `expired` (RFC 2131 §4.4.5: the client must stop using it). */
  expireLeases(): number {
    const now = this.now();
    let n = 0;
    for (const l of this.book?.values() ?? []) {
      if ((l.state === 'bound' || l.state === 'offered') && l.expiresAt <= now) {
        const expired: Lease = { ...l, state: 'expired', updatedAt: now };
        this.book!.put(expired);
        // An offer was never written (putLease), so its end is not either.
        if (l.state === 'offered') continue;
        if (!this.beforeBatch.has(l.ip)) this.beforeBatch.set(l.ip, l);
        this.pendingLeases.set(l.ip, expired);
        n++;
      }
    }
    if (n > 0) {
      this.log.info({ event: 'dhcp_leases_expired', count: n }, 'leases expired');
      this.scheduleFlush();
    }
    return n;
  }

  private addNetworkOptions(o: DhcpOptions, net: NetworkConfig): void {
    let mask = this.maskOf.get(net);
    if (mask === undefined) this.maskOf.set(net, (mask = intToIpv4(parseCidr(net.subnet).mask)));
    o.subnetMask = mask;
    if (net.gateway) o.routers = [net.gateway];
    if (net.resolvers.length) o.domainServers = net.resolvers;
    if (net.dnsDomain) o.domainName = net.dnsDomain;
    if (net.ntpServers.length) o.ntpServers = net.ntpServers;
    if (net.mtu) o.interfaceMtu = net.mtu;
  }

  private reply(ctx: Ctx, type: 'offer' | 'ack', ip: string, seconds: number): void {
    this.outcome = type === 'offer' ? PO.offered : PO.acked;
    const r = this.baseReply(ctx, type, ip);
    // RFC 2131 §4.4.5: T1 = 0.5 and T2 = 0.875 of the lease time.
    r.options.leaseSeconds = seconds;
    r.options.renewalSeconds = Math.floor(seconds * 0.5);
    r.options.rebindingSeconds = Math.floor(seconds * 0.875);
    this.addNetworkOptions(r.options, ctx.net);
    const boot = this.addBoot(ctx, r, 'full');
    if (type === 'ack') this.event(ctx, 'dhcp_ack', { ip, network: ctx.net.name, leaseSeconds: seconds, boot: boot ?? null });
    // OFFERs are logged, not stored: the timeline keeps DISCOVER, REQUEST and ACK (one row
    // fewer per exchange on the hot path).
    // One line per packet belongs at debug: at info it would cost more than the exchange
    // (the boot events above are the per-node record).
    if (this.log.isLevelEnabled('debug')) {
      this.log.debug({ event: `dhcp_${type}`, mac: ctx.mac, node: ctx.nodeId, ip, network: ctx.net.name, boot }, `DHCP${type.toUpperCase()}`);
    }
    this.send(ctx, r, false);
  }

  private baseReply(ctx: Ctx, type: MessageTypeName, yiaddr: string, message?: string): DhcpPacket {
    const { p, net } = ctx;
    const options = noOptions();
    options.messageType = type;
    options.serverId = net.serverAddress!;
    if (message !== undefined) options.message = message;
    // RFC 3046 §2.2: echo option 82 unchanged in replies to the relay.
    if (p.giaddr !== ZERO && p.options.relayAgentInfo) options.relayAgentInfo = p.options.relayAgentInfo;
    return {
      op: BootOp.reply,
      htype: p.htype,
      hlen: p.hlen,
      hops: 0,
      xid: p.xid,
      secs: 0,
      flags: p.flags,
      // RFC 2131 table 3: ciaddr is echoed only in ACKs to INFORM/renewals.
      ciaddr: type === 'ack' ? p.ciaddr : ZERO,
      yiaddr,
      siaddr: ZERO,
      giaddr: p.giaddr,
      chaddr: p.chaddr,
      sname: '',
      file: '',
      options,
    };
  }

  /** config.http.publicUrl, else http://<serverAddress>:<HTTP port>: the base URL every boot file and script names. */
  private httpBaseFor(net: NetworkConfig): string {
    if (this.config.http.publicUrl) return this.config.http.publicUrl.replace(/\/+$/, '');
    this.httpPortCache ??= this.deps.httpPort?.() ?? this.config.http.port;
    return `http://${net.serverAddress}:${this.httpPortCache}`;
  }

  /** Fills in the boot fields per the client table (docs/netboot-notes.md); returns the decision. */
  private addBoot(ctx: Ctx, r: DhcpPacket, mode: 'full' | 'proxy'): string | undefined {
    const net = ctx.net;
    const settings: BootSettings = {
      httpBase: this.httpBaseFor(net),
      serverAddress: net.serverAddress!,
      bios: this.config.boot.bios,
      efiX64: this.config.boot.efiX64,
      efiArm64: this.config.boot.efiArm64,
    };
    const answer = bootAnswerFor(ctx.client, settings);
    if (!answer) return undefined;
    const o = r.options;
    r.file = answer.bootfile.length <= 127 ? answer.bootfile : '';
    o.bootfileName = answer.bootfile;
    if (answer.tftp) {
      // docs/netboot-notes.md pitfall 4 (OVMF): siaddr + BOOTP file + option 67 + option 66.
      r.siaddr = net.serverAddress!;
      o.tftpServerName = net.serverAddress!;
    } else {
      r.siaddr = net.serverAddress!;
    }
    if (answer.vendorClass) o.vendorClassId = answer.vendorClass;
    if (mode === 'proxy') {
      // PXE spec §2.2.3: a ProxyDHCP reply carries option 60 PXEClient and option 43, and the client's UUID.
      o.vendorClassId = answer.vendorClass ?? 'PXEClient';
      o.vendorSpecific = pxeDiscoveryControl;
      if (ctx.p.options.clientUuid) o.clientUuid = ctx.p.options.clientUuid;
    } else if (ctx.client.kind === 'ipxe' || ctx.client.kind === 'pxe') {
      // Pitfall 3: tell iPXE no ProxyDHCP is coming. Pitfall 4: never 60 without 43 in full mode.
      o.ipxeEncap = ipxeNoPxeDhcp;
    }
    return answer.reason;
  }

  // ---- ProxyDHCP -------------------------------------------------------------------------

  private handleProxy(ctx: Ctx): void {
    const type = ctx.p.options.messageType;
    this.learnProxyAddress(ctx);
    // PXE spec §2.2.3: answer DISCOVER on 67 with a proxy OFFER, REQUEST on 4011 with an ACK.
    const want = ctx.l.port === 'dhcp' ? 'discover' : 'request';
    if (type !== want) return this.ignore(ctx.p, ctx.rinfo, `proxy: ${type} on the ${ctx.l.port} port`, ctx.mac);
    this.event(ctx, type === 'discover' ? 'dhcp_discover' : 'dhcp_request', { network: ctx.net.name, proxy: true, arch: ctx.p.options.clientArch?.[0] ?? null, xid: ctx.p.xid, secs: ctx.p.secs });
    const r = this.baseReply(ctx, type === 'discover' ? 'offer' : 'ack', ZERO);
    r.ciaddr = ctx.p.ciaddr;
    const boot = this.addBoot(ctx, r, 'proxy');
    if (!boot) return this.ignore(ctx.p, ctx.rinfo, 'no boot file for this client architecture', ctx.mac);
    this.outcome = type === 'discover' ? PO.offered : PO.acked;
    if (type === 'request') this.event(ctx, 'dhcp_ack', { proxy: true, boot });
    if (this.log.isLevelEnabled('debug')) {
      this.log.debug({ event: type === 'discover' ? 'dhcp_proxy_offer' : 'dhcp_proxy_ack', mac: ctx.mac, node: ctx.nodeId, boot }, 'ProxyDHCP reply');
    }
    if (ctx.l.port === 'proxy') {
      // The client already has an address and asked us directly: reply to where it came from.
      this.queueSend(ctx, r, ctx.rinfo.address, ctx.rinfo.port);
      return;
    }
    this.send(ctx, r, false);
  }

  /**
   * Remembers the address a PXE client says it holds: on 67, the REQUEST confirming the other
   * server's lease names it in option 50 (RFC 2131 §4.3.2 SELECTING/INIT-REBOOT) or ciaddr
   * (RENEWING); on 4011 the client already has it, in ciaddr (PXE spec §2.2.5). Only an
   * address inside the network the packet arrived on is kept.
   */
  private learnProxyAddress(ctx: Ctx): void {
    const { p } = ctx;
    if (p.options.messageType !== 'request') return;
    const ip = ctx.l.port === 'dhcp' ? (p.options.requestedAddress ?? (p.ciaddr !== ZERO ? p.ciaddr : undefined)) : p.ciaddr !== ZERO ? p.ciaddr : undefined;
    if (ip === undefined || !ipInSubnet(ip, ctx.net.subnet)) return;
    this.proxyAddresses.learn(ip, ctx.mac, p.options.leaseSeconds);
  }

  // ---- sending ---------------------------------------------------------------------------

  /** RFC 2131 §4.1 reply addressing: relay, then ciaddr, then broadcast. */
  private send(ctx: Ctx, r: DhcpPacket, isNak: boolean): void {
    const { p } = ctx;
    if (p.giaddr !== ZERO) {
      if (isNak) r.flags |= BROADCAST_FLAG; // §4.1: a NAK via a relay asks it to broadcast
      return this.queueSend(ctx, r, p.giaddr, this.config.dhcp.relayReplyPort);
    }
    if (!isNak && p.ciaddr !== ZERO) return this.queueSend(ctx, r, p.ciaddr, this.config.dhcp.clientPort);
    // Unicast to yiaddr would need an ARP entry for chaddr, which a UDP socket cannot
    // install; §4.1 allows broadcasting instead.
    this.queueSend(ctx, r, BROADCAST, this.config.dhcp.clientPort);
  }

  private queueSend(ctx: Ctx, r: DhcpPacket, address: string, port: number): void {
    const out: Outgoing = {
      bytes: encodePacket(r),
      socket: ctx.l.socket,
      address,
      port,
      mac: ctx.mac,
      nodeId: ctx.nodeId,
      type: r.options.messageType,
      blockedSince: null,
    };
    if (!ctx.persisted) {
      // Nothing this reply says has to be on disk first (an offer binds nothing: RFC 2131
      // §4.3.1, putLease), so it does not wait for the commit: it leaves now, one datagram
      // as the client's arrived, and commits carry only ACKs (see MAX_BURST). Sending these
      // one by one rather than per receive batch cost no CPU measurably and overflowed
      // perfdhcp's receive buffer less (bench/dhcp at 15,500/s).
      this.sendReplies([out]);
      return;
    }
    this.pendingReplies.push(out);
    // A relay (or perfdhcp) takes replies into a ~200 KiB socket buffer: hundreds at once
    // overflow it. Past MAX_BURST replies, commit and send now instead of at the timer.
    if (this.pendingReplies.length >= MAX_BURST) this.flush();
    else this.scheduleFlush();
  }

  private event(ctx: Ctx, event: BootEventKind, detail: Record<string, unknown>): void {
    this.pendingEvents.push({ event, nodeId: ctx.nodeId, mac: ctx.mac, detail });
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushTimeout || this.flushImmediate) return;
    // Under load, group up to 4 ms of packets into one commit (a WAL commit costs far more
    // than a row; DHCP clients wait seconds); when idle, answer on the next turn.
    if (performance.now() - this.lastFlushAt < 8) this.flushTimeout = setTimeout(() => this.flush(), 4);
    else this.flushImmediate = setImmediate(() => this.flush());
  }

  /** Writes this turn's leases and events in one transaction, then sends the replies. */
  private flush(): void {
    // An early flush (MAX_BURST) leaves no timer behind to wake the loop for nothing.
    if (this.flushTimeout) clearTimeout(this.flushTimeout);
    if (this.flushImmediate) clearImmediate(this.flushImmediate);
    this.flushTimeout = null;
    this.flushImmediate = null;
    try {
      this.writeAndSend();
    } finally {
      for (const w of this.settledWaiters.splice(0)) w();
    }
  }

  /**
   * Resolves once every reply decided so far has been sent or dropped, and the writes they
   * wait for are done (tests use it to prove a silence).
   */
  async settled(): Promise<void> {
    if (!this.flushTimeout && !this.flushImmediate) return;
    await new Promise<void>((resolve) => this.settledWaiters.push(resolve));
  }

  private writeAndSend(): void {
    this.lastFlushAt = performance.now();
    const leases = [...this.pendingLeases.values()];
    const events = this.pendingEvents;
    const replies = this.pendingReplies;
    const before = this.beforeBatch;
    this.beforeBatch = new Map();
    this.pendingLeases = new Map();
    this.pendingEvents = [];
    this.pendingReplies = [];
    if (leases.length === 0 && events.length === 0 && replies.length === 0) return;
    const store = this.deps.store;
    if (!store.db.open) return;
    try {
      this.writeBatch ??= writeTransaction(store.db, (ls: readonly Lease[], es: readonly PendingEvent[]) => {
        // Multi-row statements: far fewer calls into SQLite per burst.
        store.leases.saveMany(ls);
        store.events.recordAll(es);
      });
      this.writeBatch(leases, events);
    } catch (err) {
      // Nothing promised on the wire unless it is on disk: drop the replies; clients retry.
      this.stats.writeErrors++;
      this.log.error({ err, event: 'dhcp_write_failed', leases: leases.length }, 'lease write failed; replies dropped');
      // The transaction rolled back: the book goes back to what it held before the batch
      // (disk as it still is, plus offers, which were never written).
      for (const [ip, l] of before) {
        if (l) this.book?.put(l);
        else this.book?.delete(ip);
      }
      return;
    }
    this.sendReplies(replies);
  }

  private sendReplies(replies: readonly Outgoing[]): void {
    if (replies.length === 0) return;
    // Replies already waiting for room go first: a new one would only find the buffer full too.
    if (this.sendQueue.length > 0 && this.listeners.length > 0) {
      for (const o of replies) this.enqueue(o, 'retry queue not empty');
      return;
    }
    if (replies.length === 1) return this.sendFrom(replies[0]!.socket, replies);
    const bySocket = new Map<ReplySocket, Outgoing[]>();
    for (const out of replies) {
      const list = bySocket.get(out.socket);
      if (list) list.push(out);
      else bySocket.set(out.socket, [out]);
    }
    for (const [socket, outs] of bySocket) this.sendFrom(socket, outs);
  }

  /** One sendmmsg for replies that all leave through `socket`. */
  private sendFrom(socket: ReplySocket, outs: readonly Outgoing[]): void {
    const failed = socket.sendAll(
      outs.map((o) => o.bytes),
      outs.map((o) => o.address),
      outs.map((o) => o.port),
    );
    this.stats.replies += outs.length - failed.length;
    const now = performance.now();
    for (const f of failed) {
      const o = outs[f.index]!;
      o.blockedSince ??= now;
      if (f.retryable && now - o.blockedSince < SEND_MAX_WAIT_MS && this.listeners.length > 0) {
        this.stats.sendRetries++;
        this.enqueue(o, f.error);
      } else this.lose(o, f.error);
    }
  }

  private enqueue(o: Outgoing, why: string): void {
    if (this.sendQueue.length >= SEND_QUEUE_MAX) return this.lose(o, `${why}; retry queue full (${SEND_QUEUE_MAX})`);
    this.sendQueue.push(o);
    this.stats.sendQueued = this.sendQueue.length;
    this.sendTimer ??= setTimeout(() => this.retrySends(), this.sendDelayMs);
  }

  /** Tries the queue again; backs off while the buffer stays full, resets once it takes replies. */
  private retrySends(): void {
    this.sendTimer = null;
    const queued = this.sendQueue;
    this.sendQueue = [];
    const before = this.stats.replies;
    this.sendReplies(queued);
    this.stats.sendQueued = this.sendQueue.length;
    if (this.sendQueue.length === 0) {
      this.sendDelayMs = 1;
      return;
    }
    this.sendDelayMs = this.stats.replies > before ? 1 : Math.min(SEND_RETRY_MAX_MS, this.sendDelayMs * 2);
    if (this.sendTimer) clearTimeout(this.sendTimer);
    this.sendTimer = setTimeout(() => this.retrySends(), this.sendDelayMs);
  }

  private lose(o: Outgoing, error: string): void {
    this.stats.sendErrors++;
    this.log.warn({ error, event: 'dhcp_send_failed', mac: o.mac, node: o.nodeId, type: o.type, to: o.address }, 'DHCP reply not sent');
  }
}

interface Ctx {
  p: DhcpPacket;
  rinfo: RemoteInfo;
  l: Listener;
  net: NetworkConfig;
  mac: Mac;
  nodeId: number | null;
  client: ClientKind;
  key: string;
  /** This packet changed a lease that is written: its reply waits for the commit. */
  persisted: boolean;
  /** The client may lose its lease when the pool runs out (provisionalClient); computed once. */
  provisional?: boolean;
}

function sameLease(a: Lease, b: Lease): boolean {
  return (
    a.state === b.state &&
    a.expiresAt === b.expiresAt &&
    a.network === b.network &&
    a.mac === b.mac &&
    a.clientId === b.clientId &&
    a.hostname === b.hostname &&
    (a.relayInfo === b.relayInfo || (a.relayInfo !== null && b.relayInfo !== null && a.relayInfo.equals(b.relayInfo)))
  );
}

const rangeOf = new WeakMap<NetworkConfig, readonly [number, number]>();

function inRange(ip: string, net: NetworkConfig): boolean {
  if (!net.range) return false;
  let r = rangeOf.get(net);
  if (!r) rangeOf.set(net, (r = [ipv4ToInt(net.range.start), ipv4ToInt(net.range.end)]));
  const n = ipv4ToInt(ip);
  return n >= r[0] && n <= r[1];
}
