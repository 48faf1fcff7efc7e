// Read-only TFTP server: RFC 1350 with option negotiation (RFC 2347), blksize (RFC 2348),
// timeout and tsize (RFC 2349) and windowsize (RFC 7440). It serves one virtual root (the
// iPXE binaries plus files other modules register, see root.ts) and nothing else.
//
// Why not npm `tftp` (0.1.2, the obvious npm pick)? Measured here (docs/netboot-notes.md): it
// crashes the process on a request for a missing file unless every request gets an error
// listener, aborts most windowsize transfers at 0.5% loss (`cb is not a function`), ignores
// the `timeout` option (a fixed 3 s per lost packet), accepts uploads unless told not to, and
// has had no commit since 2018. A read-only server is a few hundred lines we can test
// against real clients (curl, atftp, OVMF's request pattern) and make faster than tftpd-hpa.
//
// Shape: one listening socket takes requests; each accepted request becomes a transfer on
// its own connected socket, so a slow or lossy client only ever waits on its own timer.
// Lock-step TFTP is one round trip per block, and through the event loop each costs an
// epoll wake, a recvmsg, a JS callback and a send (measured: 0.6-0.78× tftpd-hpa). So once
// the request is parsed, the file resolved and the options negotiated here, createTransfer
// (native.ts, the one place that chooses) hands the OACK exchange and data phase to a
// thread of the native addon (native/tftp_data.c: blocking recv, sendmmsg per window, the
// same timer and retry rules), which reports once at the end; without the addon, or with
// FLEETBOOT_TFTP_NATIVE=0 or `native: false`, the JS Transfer (transfer.ts) runs it on the
// event loop. Either way onEnd logs and records the outcome the same way.
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import type { AddressInfo } from 'node:net';
import { isIPv6 } from 'node:net';
import { performance } from 'node:perf_hooks';
import { TFTP_BUSY_POLL_MICROS } from '../config/schema.ts';
import { capture } from '../capture.ts';
import type { Logger } from '../log.ts';
import type { Mac } from '../mac.ts';
import type { NodeRecord } from '../store/nodes.ts';
import type { Store } from '../store/store.ts';
import { negotiate } from './options.ts';
import { ErrorCode, encodeError, parseRequest, toNetascii, type ErrorCodeValue } from './packet.ts';
import { MemorySource, VirtualRoot, checkPath, type TftpContent, type TftpProvider, type TftpSource } from './root.ts';
import { createTransfer } from './native.ts';
import type { TftpTransfer, TransferOutcome } from './transfer.ts';

export interface TftpServerOptions {
  /** Address to listen on (config.tftp.listen). */
  listen: string;
  /** Port (config.tftp.port; 0 picks an ephemeral port, as tests do). */
  port: number;
  /** The iPXE binaries folder (config.ipxeDir), served as the root. */
  dir: string;
  log: Logger;
  /** Registry: names the node behind a client address and records its `tftp_get` events. */
  store?: Store;
  /** Initial retransmission timeout when the client sends no `timeout` option (ms). */
  defaultTimeoutMs?: number;
  /** Floor of the adaptive retransmission timeout (ms). */
  minRetransmitMs?: number;
  /** Consecutive unanswered retransmissions before a transfer is abandoned. */
  retries?: number;
  /** Largest windowsize granted (RFC 7440 §3 lets the server lower the client's value). */
  maxWindowsize?: number;
  /** Transfers served at once; further requests get ERROR 0 "server busy". */
  maxTransfers?: number;
  /** Transfers served at once to one client address (config.tftp.maxTransfersPerAddress). */
  maxTransfersPerAddress?: number;
  /** Largest `timeout` option accepted, in seconds (config.tftp.maxTimeoutSeconds). */
  maxTimeoutSeconds?: number;
  /** Longest a transfer may run, in seconds, progress or not (config.tftp.maxTransferSeconds). */
  maxTransferSeconds?: number;
  /** Files up to this size are cached in memory. */
  cacheFileMaxBytes?: number;
  /** false: every transfer runs in JS even when the native data path is built (see native.ts). */
  native?: boolean;
  /** Native path: µs to poll for an ACK before sleeping for it (config.tftp.busyPollMicros). */
  busyPollMicros?: number;
  /** The MAC a ProxyDHCP client claimed `ip` with (dhcp/proxy-addresses.ts), for addresses no node holds. */
  proxyMacOf?: (ip: string) => Mac | undefined;
}

/** Counters for `status` and tests; refusals by reason. */
export interface TftpStats {
  requests: number;
  served: number;
  bytesServed: number;
  refused: Record<string, number>;
  notFound: number;
  aborted: number;
  timedOut: number;
  failed: number;
  retransmits: number;
  malformed: number;
  active: number;
  /** Requests answered ERROR 0 because every transfer slot was taken. */
  busy: number;
  /** Requests answered ERROR 0 because their address held its share of the slots. */
  addressLimited: number;
  /** Transfers ended because they outlived maxTransferSeconds. */
  lifetimeExceeded: number;
}

/** Defaults of the slot bounds (config.tftp; docs/tftp.md "Bounds"). */
export const TFTP_LIMITS = { maxTransfers: 4096, maxTransfersPerAddress: 32, maxTimeoutSeconds: 5, maxTransferSeconds: 300 } as const;

const NETASCII_MAX_BYTES = 16 * 1024 * 1024;

interface Requester {
  node: NodeRecord | null;
  mac: Mac | null;
}

export class TftpServer {
  readonly name = 'tftp';
  readonly root: VirtualRoot;
  readonly stats: TftpStats = {
    requests: 0,
    served: 0,
    bytesServed: 0,
    refused: {},
    notFound: 0,
    aborted: 0,
    timedOut: 0,
    failed: 0,
    retransmits: 0,
    malformed: 0,
    active: 0,
    busy: 0,
    addressLimited: 0,
    lifetimeExceeded: 0,
  };
  private socket: Socket | undefined;
  /** Transfers by client `address:port`: a retransmitted RRQ must not start a second one. */
  private readonly transfers = new Map<string, TftpTransfer>();
  private readonly pending = new Set<string>();
  /** Who holds a slot (set up or running), by `address:port`, and how many each address holds. */
  private readonly slotHolders = new Map<string, string>();
  private readonly slotsByAddress = new Map<string, number>();
  private readonly requesters = new WeakMap<TftpTransfer, Requester & { file: string }>();
  private idleWaiters: Array<() => void> = [];

  constructor(private readonly options: TftpServerOptions) {
    this.root = new VirtualRoot({
      dir: options.dir,
      ...(options.cacheFileMaxBytes !== undefined ? { cacheFileMaxBytes: options.cacheFileMaxBytes } : {}),
    });
  }

  /** Serves `path` (or, ending in `/`, every path under it) from a provider; see VirtualRoot.register. */
  register(path: string, provider: TftpProvider): () => void {
    return this.root.register(path, provider);
  }

  async start(): Promise<AddressInfo> {
    const socket = createSocket({ type: isIPv6(this.options.listen) ? 'udp6' : 'udp4' });
    socket.on('message', (msg, rinfo) => {
      void this.onRequest(msg, rinfo).catch((err: unknown) => {
        this.options.log.error({ err, event: 'tftp_error', client: rinfo.address }, 'tftp request failed');
      });
    });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind({ address: this.options.listen, port: this.options.port, exclusive: true }, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    socket.on('error', (err) => this.options.log.error({ err, event: 'tftp_error' }, 'tftp socket error'));
    this.socket = socket;
    const addr = socket.address();
    this.options.log.info({ event: 'tftp_listening', address: addr.address, port: addr.port, root: this.options.dir }, 'tftp listening');
    return addr;
  }

  async stop(): Promise<void> {
    for (const t of [...this.transfers.values()]) t.stop();
    const socket = this.socket;
    this.socket = undefined;
    if (socket) await new Promise<void>((resolve) => socket.close(() => resolve()));
  }

  /** Resolves once no transfer is running or being set up (tests, graceful shutdown). */
  whenIdle(): Promise<void> {
    if (this.transfers.size === 0 && this.pending.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  address(): AddressInfo | undefined {
    return this.socket?.address();
  }

  private async onRequest(msg: Buffer, rinfo: RemoteInfo): Promise<void> {
    const key = `${rinfo.address}:${rinfo.port}`;
    if (this.transfers.has(key) || this.pending.has(key)) return; // RRQ retransmitted while we answer
    capture('tftp-request', msg);
    const parsed = parseRequest(msg);
    if (!parsed.ok) {
      this.stats.malformed++;
      const who = this.requester(rinfo.address);
      this.refuse(rinfo, who, 'malformed', parsed.reason, null);
      return;
    }
    this.stats.requests++;
    const req = parsed.request;
    const who = this.requester(rinfo.address);
    if (req.kind === 'write') return this.refuse(rinfo, who, 'write', 'this server is read-only', req.filename);
    // RFC 1350 §5: netascii and octet; "mail" is obsolete (RFC 1350 says it should not be used).
    if (req.mode !== 'octet' && req.mode !== 'netascii') return this.refuse(rinfo, who, 'mode', `unknown mode "${req.mode}"`, req.filename);
    const checked = checkPath(req.filename);
    if (!checked.ok) return this.refuse(rinfo, who, checked.reason, `path refused (${checked.reason})`, req.filename);
    if (this.transfers.size + this.pending.size >= (this.options.maxTransfers ?? TFTP_LIMITS.maxTransfers)) {
      this.stats.busy++;
      this.sendError(rinfo, ErrorCode.notDefined, 'server busy, try again');
      this.options.log.warn({ event: 'tftp_busy', client: rinfo.address, file: checked.path, ...this.who(who) }, 'tftp busy');
      return;
    }
    // One address may hold only its share of the slots, so a host that sends requests and
    // never ACKs cannot lock every other client out.
    const perAddress = this.options.maxTransfersPerAddress ?? TFTP_LIMITS.maxTransfersPerAddress;
    if ((this.slotsByAddress.get(rinfo.address) ?? 0) >= perAddress) {
      this.stats.addressLimited++;
      this.sendError(rinfo, ErrorCode.notDefined, `too many transfers from this address (at most ${perAddress}), try again`);
      this.options.log.warn({ event: 'tftp_busy', reason: 'address_limit', client: rinfo.address, file: checked.path, ...this.who(who) }, 'tftp busy for this address');
      return;
    }

    this.pending.add(key);
    this.takeSlot(key, rinfo.address);
    let source: TftpSource | undefined;
    try {
      const found = await this.root.resolve({ path: checked.path, clientAddress: rinfo.address, node: who.node, mac: who.mac });
      if (found.kind === 'refused') return this.refuse(rinfo, who, found.reason, 'path refused', req.filename);
      if (found.kind === 'missing') {
        this.stats.notFound++;
        this.sendError(rinfo, ErrorCode.fileNotFound, 'file not found');
        this.options.log.info({ event: 'tftp_not_found', client: rinfo.address, file: checked.path, ...this.who(who) }, 'tftp file not found');
        return;
      }
      source = found.source;
      if (req.mode === 'netascii') {
        // netascii changes the length (RFC 1350 §5), so the whole file is converted in memory first.
        if (source.size > NETASCII_MAX_BYTES) {
          source.close();
          return this.refuse(rinfo, who, 'mode', `netascii is limited to ${NETASCII_MAX_BYTES} bytes; use octet`, req.filename);
        }
        source = this.netascii(source);
      }
      const negotiation = negotiate(req.options, source.size, {
        maxWindowsize: this.options.maxWindowsize ?? 64,
        maxWindowBytes: 2 * 1024 * 1024,
        defaultTimeoutMs: this.options.defaultTimeoutMs ?? 1000,
        maxTimeoutSeconds: this.options.maxTimeoutSeconds ?? TFTP_LIMITS.maxTimeoutSeconds,
      });
      if (!negotiation.ok) {
        source.close();
        this.sendError(rinfo, ErrorCode.optionNegotiation, negotiation.message);
        this.options.log.info({ event: 'tftp_refused', reason: 'options', client: rinfo.address, file: checked.path, ...this.who(who) }, negotiation.message);
        return;
      }
      if (!this.socket) {
        source.close();
        return; // stopped while resolving
      }
      const transfer = createTransfer({
        source,
        params: negotiation.params,
        oack: negotiation.oack,
        client: { address: rinfo.address, port: rinfo.port },
        localAddress: this.options.listen,
        retransmit: {
          minMs: this.options.minRetransmitMs ?? 200,
          maxMs: this.options.defaultTimeoutMs ?? 1000,
          retries: this.options.retries ?? 6,
          lifetimeMs: (this.options.maxTransferSeconds ?? TFTP_LIMITS.maxTransferSeconds) * 1000,
        },
        busyPollMicros: this.options.busyPollMicros ?? TFTP_BUSY_POLL_MICROS,
        onEnd: (t, outcome) => this.onEnd(key, t, outcome),
      }, this.options.native ?? true);
      this.transfers.set(key, transfer);
      this.requesters.set(transfer, { ...who, file: checked.path });
      this.stats.active = this.transfers.size;
      transfer.start();
    } catch (err) {
      source?.close();
      this.stats.failed++;
      this.sendError(rinfo, ErrorCode.notDefined, 'internal error');
      this.options.log.error({ err, event: 'tftp_error', client: rinfo.address, file: checked.path, ...this.who(who) }, 'tftp provider failed');
    } finally {
      this.pending.delete(key);
      if (!this.transfers.has(key)) this.releaseSlot(key);
      this.checkIdle();
    }
  }

  private takeSlot(key: string, address: string): void {
    this.slotHolders.set(key, address);
    this.slotsByAddress.set(address, (this.slotsByAddress.get(address) ?? 0) + 1);
  }

  /** Idempotent: a transfer that ended while its request was still being set up is released once. */
  private releaseSlot(key: string): void {
    const address = this.slotHolders.get(key);
    if (address === undefined) return;
    this.slotHolders.delete(key);
    const left = (this.slotsByAddress.get(address) ?? 1) - 1;
    if (left > 0) this.slotsByAddress.set(address, left);
    else this.slotsByAddress.delete(address);
  }

  private checkIdle(): void {
    if (this.transfers.size > 0 || this.pending.size > 0 || this.idleWaiters.length === 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  private onEnd(key: string, t: TftpTransfer, outcome: TransferOutcome): void {
    this.transfers.delete(key);
    if (!this.pending.has(key)) this.releaseSlot(key);
    this.stats.active = this.transfers.size;
    this.stats.retransmits += t.retransmits;
    const who = this.requesters.get(t);
    const ms = Math.round(performance.now() - t.startedAt);
    const base = {
      client: t.client.address,
      file: who?.file,
      size: t.size,
      blksize: t.params.blksize,
      windowsize: t.params.windowsize,
      ms,
      retransmits: t.retransmits,
      path: t.path,
      ...this.who(who ?? { node: null, mac: null }),
    };
    switch (outcome.kind) {
      case 'done': {
        this.stats.served++;
        this.stats.bytesServed += t.size;
        this.options.log.info({ event: 'tftp_get', ...base }, 'tftp sent file');
        this.recordGet(t, who, ms, true);
        break;
      }
      case 'aborted':
        // OVMF asks for tsize, then aborts with ERROR 8 once it has the size (docs/netboot-notes.md): normal.
        this.stats.aborted++;
        this.options.log.info({ event: 'tftp_aborted', code: outcome.code, message: outcome.message, afterOack: outcome.afterOack, ...base }, 'tftp client ended the transfer');
        break;
      case 'timeout':
        this.stats.timedOut++;
        if (outcome.cause === 'lifetime') this.stats.lifetimeExceeded++;
        this.options.log.warn(
          { event: 'tftp_timeout', block: outcome.block, cause: outcome.cause, ...base },
          outcome.cause === 'lifetime' ? 'tftp transfer outlived its time limit' : 'tftp transfer timed out',
        );
        // Only the ACK of the last window missing: RFC 1350 §6 (and RFC 7440 §4 for windows)
        // lets the client end its side once it has sent its final ACK, so on a lossy link it
        // may have the whole file (and OVMF boots it). `block` is the first unacknowledged
        // block; with a window of W the last block went out if it is within W of it. The
        // timeline keeps the transfer, marked as unconfirmed.
        const last = Math.floor(t.size / t.params.blksize) + 1;
        if (outcome.cause === 'retries' && outcome.block <= last && last < outcome.block + t.params.windowsize) this.recordGet(t, who, ms, false);
        break;
      case 'failed':
        this.stats.failed++;
        this.options.log.error({ err: outcome.error, event: 'tftp_error', ...base }, 'tftp transfer failed');
        break;
      case 'stopped':
        break;
    }
    this.checkIdle();
  }

  private requester(address: string): Requester {
    try {
      return this.options.store?.nodes.requesterAt(address, this.options.proxyMacOf) ?? { node: null, mac: null };
    } catch {
      return { node: null, mac: null };
    }
  }

  /** The `tftp_get` boot event; `finalAck` false: every block was sent, the last one never acknowledged. */
  private recordGet(t: TftpTransfer, who: (Requester & { file: string }) | undefined, ms: number, finalAck: boolean): void {
    try {
      this.options.store?.events.record({
        event: 'tftp_get',
        nodeId: who?.node?.id ?? null,
        mac: who?.mac ?? null,
        detail: {
          file: who?.file,
          size: t.size,
          client: t.client.address,
          ms,
          blksize: t.params.blksize,
          windowsize: t.params.windowsize,
          retransmits: t.retransmits,
          ...(finalAck ? {} : { finalAck: false }),
        },
      });
    } catch (err) {
      this.options.log.warn({ err, event: 'tftp_error' }, 'could not record tftp_get boot event');
    }
  }

  private who(r: Requester): { mac?: Mac; node?: number; hostname?: string } {
    return {
      ...(r.mac ? { mac: r.mac } : {}),
      ...(r.node ? { node: r.node.id } : {}),
      ...(r.node?.hostname ? { hostname: r.node.hostname } : {}),
    };
  }

  /** ERROR 2, logged with the reason and counted, so an operator sees what was refused and why. */
  private refuse(rinfo: RemoteInfo, who: Requester, reason: string, message: string, file: string | null): void {
    this.stats.refused[reason] = (this.stats.refused[reason] ?? 0) + 1;
    this.sendError(rinfo, ErrorCode.accessViolation, message);
    this.options.log.warn({ event: 'tftp_refused', reason, client: rinfo.address, file, ...this.who(who) }, `tftp refused: ${message}`);
  }

  private sendError(rinfo: RemoteInfo, code: ErrorCodeValue, message: string): void {
    this.socket?.send(encodeError(code, message), rinfo.port, rinfo.address);
  }

  private netascii(source: TftpSource): TftpSource {
    const raw = Buffer.allocUnsafe(source.size);
    source.read(raw, 0, 0, source.size);
    source.close();
    return new MemorySource(toNetascii(raw));
  }
}

export type { TftpContent, TftpProvider };
