// One read transfer on its own UDP port (RFC 1350 §4: each side picks a new TID). The
// socket is connected to the client, so the kernel drops packets from any other TID and
// send() needs no address lookup. The hot path (ACK in → DATA out) allocates nothing of
// ours: DATA packets are built in one buffer per transfer holding `windowsize` slots, and
// the handlers are bound once.
import { createSocket, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { performance } from 'node:perf_hooks';
import { ErrorCode, Opcode, encodeError, encodeOack, parseError } from './packet.ts';
import type { TransferParams } from './options.ts';
import type { TftpSource } from './root.ts';

export type TransferOutcome =
  | { kind: 'done' }
  | { kind: 'aborted'; code: number; message: string; afterOack: boolean }
  | { kind: 'timeout'; block: number; cause: 'retries' | 'lifetime' }
  | { kind: 'failed'; error: Error }
  | { kind: 'stopped' };

export interface RetransmitPolicy {
  /** Floor of the adaptive retransmission timeout. */
  minMs: number;
  /** Ceiling when the client negotiated no `timeout`. */
  maxMs: number;
  /** Consecutive timeouts without progress before the transfer is abandoned. */
  retries: number;
  /** Longest a transfer may run, progress or not, so no client holds a slot for good. */
  lifetimeMs: number;
}

export interface TransferInit {
  source: TftpSource;
  params: TransferParams;
  /** Options to acknowledge; empty means no OACK, DATA 1 goes first (RFC 2347 §2). */
  oack: ReadonlyArray<readonly [string, string]>;
  client: { address: string; port: number };
  /** Local address to send from (the listening address; 0.0.0.0 lets the route choose). */
  localAddress: string;
  retransmit: RetransmitPolicy;
  /** µs to poll for each ACK before sleeping (native path only: the JS path waits on the event loop). */
  busyPollMicros?: number;
  onEnd: (t: TftpTransfer, outcome: TransferOutcome) => void;
}

/** What the server sees of a transfer, JS (Transfer) or native (native.ts NativeTransfer). */
export interface TftpTransfer {
  /** Which data path runs it (logged with each outcome). */
  readonly path: 'js' | 'native';
  readonly startedAt: number;
  /** DATA packets sent again after a timeout; final once onEnd runs. */
  readonly retransmits: number;
  readonly client: { address: string; port: number };
  readonly params: TransferParams;
  readonly size: number;
  start(): void;
  stop(): void;
}

const HEADER = 4;

export class Transfer implements TftpTransfer {
  readonly path = 'js';
  readonly startedAt = performance.now();
  /** DATA packets sent again after a timeout (for the server's counters). */
  retransmits = 0;
  private readonly socket: Socket;
  private readonly source: TftpSource;
  private readonly blksize: number;
  private readonly windowsize: number;
  /** Number of the last DATA block; a block shorter than blksize ends the file (RFC 1350 §6). */
  private readonly lastBlock: number;
  /**
   * 2 × windowsize slots of 4 + blksize bytes, each holding one DATA packet: while one
   * window is in flight the next one is already built, so an ACK is answered by send()
   * alone and the bookkeeping happens while the client works (lock-step is RTT-bound).
   */
  private readonly slots: Buffer;
  private readonly slotViews: Buffer[];
  private readonly slotBlock: Float64Array;
  private readonly slotLength: Int32Array;
  private readonly slotCount: number;
  private readonly oackPacket: Buffer | undefined;
  private state: 'starting' | 'oack' | 'data' | 'ended' = 'starting';
  /** Blocks 1..acked are acknowledged (absolute count: does not wrap at 65535). */
  private acked = 0;
  /** Next block pump() sends. */
  private next = 1;
  /** Highest block sent so far. */
  private sent = 0;
  private timer: NodeJS.Timeout | undefined;
  private lifetimeTimer: NodeJS.Timeout | undefined;
  private deferred: NodeJS.Immediate | undefined;
  private rto: number;
  private srtt = 0;
  private rttvar = 0;
  private readonly rtoCeiling: number;
  private timeouts = 0;
  private windowStartedAt = 0;
  private readonly onMessageBound = (msg: Buffer): void => this.onMessage(msg);
  private readonly onTimeoutBound = (): void => this.onTimeout();
  private readonly pumpBound = (): void => {
    this.deferred = undefined;
    this.pump();
  };

  constructor(private readonly init: TransferInit) {
    this.source = init.source;
    this.blksize = init.params.blksize;
    this.windowsize = init.params.windowsize;
    this.lastBlock = Math.floor(this.source.size / this.blksize) + 1;
    const slot = HEADER + this.blksize;
    this.slotCount = 2 * this.windowsize;
    this.slots = Buffer.allocUnsafe(slot * this.slotCount);
    this.slotViews = [];
    for (let i = 0; i < this.slotCount; i++) {
      this.slotViews.push(this.slots.subarray(i * slot, (i + 1) * slot));
      this.slots.writeUInt16BE(Opcode.DATA, i * slot);
    }
    this.slotBlock = new Float64Array(this.slotCount).fill(-1);
    this.slotLength = new Int32Array(this.slotCount);
    this.oackPacket = init.oack.length > 0 ? encodeOack(init.oack) : undefined;
    // RFC 2349 §2: the client waits `timeout` seconds before it retransmits. We retransmit on
    // an adaptive timer (RFC 6298 §2 style) no later than that: an early resend costs the
    // client one duplicate, which it re-ACKs and we ignore (RFC 1123 §4.2.3.1).
    const { minMs, maxMs } = init.retransmit;
    this.rtoCeiling = init.params.clientTimeout ? Math.max(minMs, init.params.timeoutMs) : Math.max(minMs, maxMs);
    this.rto = Math.min(this.rtoCeiling, Math.max(minMs, init.params.timeoutMs));
    this.socket = createSocket({ type: isIPv6(init.client.address) ? 'udp6' : 'udp4' });
  }

  get client(): { address: string; port: number } {
    return this.init.client;
  }
  get params(): TransferParams {
    return this.init.params;
  }
  get size(): number {
    return this.source.size;
  }

  /** Binds a fresh port, connects it to the client and sends the OACK or the first window. */
  start(): void {
    this.socket.on('error', (error: NodeJS.ErrnoException) => {
      // ICMP port unreachable on the connected socket: the client has gone (often after its
      // final ACK was lost; RFC 1350 §6 leaves that case to the client's dally).
      if (error.code === 'ECONNREFUSED') this.end({ kind: 'aborted', code: -1, message: 'client port closed', afterOack: this.state === 'oack' });
      else this.end({ kind: 'failed', error });
    });
    this.socket.on('message', this.onMessageBound);
    this.lifetimeTimer = setTimeout(() => {
      this.sendError(ErrorCode.notDefined, 'transfer took too long');
      this.end({ kind: 'timeout', block: this.acked + 1, cause: 'lifetime' });
    }, this.init.retransmit.lifetimeMs);
    this.socket.bind({ address: this.init.localAddress, port: 0, exclusive: true }, () => {
      if (this.state === 'ended') return;
      this.socket.connect(this.init.client.port, this.init.client.address, (err?: Error) => {
        if (this.state === 'ended') return;
        if (err) return this.end({ kind: 'failed', error: err });
        if (this.oackPacket) {
          this.state = 'oack';
          this.socket.send(this.oackPacket);
          this.windowStartedAt = performance.now();
          this.arm();
        } else {
          this.state = 'data';
          this.windowStartedAt = performance.now();
          this.pump();
          this.arm();
          this.prefill();
        }
      });
    });
  }

  /** Ends the transfer now (server stopping); the client gets an ERROR so it stops waiting. */
  stop(): void {
    if (this.state === 'ended') return;
    this.sendError(ErrorCode.notDefined, 'server shutting down');
    this.end({ kind: 'stopped' });
  }

  private onMessage(msg: Buffer): void {
    if (msg.length < 4) return;
    const op = msg.readUInt16BE(0);
    if (op === Opcode.ACK) {
      const block = msg.readUInt16BE(2);
      if (this.state === 'oack') {
        // RFC 2347 §2: the client acknowledges the OACK with ACK 0.
        if (block !== 0) return;
        this.state = 'data';
        this.pump();
        this.progress();
        this.prefill();
        return;
      }
      if (this.state !== 'data') return;
      // Block numbers wrap at 65535 → 0; compare modulo 2^16 against the acknowledged count.
      const delta = (block - this.acked) & 0xffff;
      if (delta === 0) {
        // A duplicate ACK answered at once with DATA breeds the Sorcerer's Apprentice
        // (RFC 1123 §4.2.3.1), so one arriving within minMs of our last send is ignored.
        // Later, it is the client's own timeout asking us to go on from there (RFC 7440 §4).
        if (performance.now() - this.windowStartedAt >= this.init.retransmit.minMs) this.resend();
        return;
      }
      // Anything past what we sent is bogus.
      if (delta > this.sent - this.acked) return;
      this.acked += delta;
      if (this.acked >= this.lastBlock) {
        this.end({ kind: 'done' });
        return;
      }
      // RFC 7440 §4: the next window starts after the block acknowledged, also when the
      // client acknowledges mid-window because it saw a gap.
      this.next = this.acked + 1;
      this.pump();
      this.progress();
      this.prefill();
    } else if (op === Opcode.ERROR) {
      const e = parseError(msg);
      this.end({ kind: 'aborted', code: e.code, message: e.message, afterOack: this.state === 'oack' });
    }
    // Anything else from the client's TID is ignored; the retransmission timer covers it.
  }

  /** The client moved forward: sample the RTT (Karn: only unretransmitted rounds) and re-arm. */
  private progress(): void {
    const now = performance.now();
    if (this.timeouts === 0) {
      const sample = now - this.windowStartedAt;
      if (this.srtt === 0) {
        this.srtt = sample;
        this.rttvar = sample / 2;
      } else {
        this.rttvar = 0.75 * this.rttvar + 0.25 * Math.abs(this.srtt - sample);
        this.srtt = 0.875 * this.srtt + 0.125 * sample;
      }
    }
    this.windowStartedAt = now;
    const rto = Math.min(this.rtoCeiling, Math.max(this.init.retransmit.minMs, this.srtt + 4 * this.rttvar));
    this.timeouts = 0;
    if (rto !== this.rto || this.timer === undefined) {
      this.rto = rto;
      this.arm();
    } else {
      this.timer.refresh();
    }
  }

  private arm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(this.onTimeoutBound, this.rto);
  }

  private onTimeout(): void {
    if (this.state === 'ended') return;
    this.timeouts++;
    if (this.timeouts > this.init.retransmit.retries) {
      this.sendError(ErrorCode.notDefined, 'timed out waiting for ACK');
      this.end({ kind: 'timeout', block: this.acked + 1, cause: 'retries' });
      return;
    }
    // Exponential backoff (RFC 6298 §5.5), bounded by the ceiling.
    this.rto = Math.min(this.rtoCeiling, this.rto * 2);
    this.resend();
  }

  /** Sends the OACK or the current window again and re-arms the timer. */
  private resend(): void {
    if (this.state === 'oack') {
      this.socket.send(this.oackPacket!);
    } else {
      this.next = this.acked + 1;
      this.retransmits += Math.min(this.windowsize, this.lastBlock - this.acked);
      this.pump();
    }
    this.windowStartedAt = performance.now();
    this.arm();
  }

  /** Sends blocks next..acked+windowsize, filling slots that do not hold them yet. */
  private pump(): void {
    if (this.state !== 'data') return;
    const end = Math.min(this.acked + this.windowsize, this.lastBlock);
    const n = this.slotCount;
    for (let b = this.next; b <= end; b++) {
      const i = (b - 1) % n;
      if (this.slotBlock[i] !== b) {
        // The slot's previous packet may still sit in libuv's queue (kernel buffer full):
        // rewriting it now would send a torn packet. Wait for the queue to drain.
        if (this.socket.getSendQueueCount() > 0) {
          this.next = b;
          if (this.deferred === undefined) this.deferred = setImmediate(this.pumpBound);
          return;
        }
        if (!this.fill(i, b)) return;
      }
      const len = this.slotLength[i]!;
      if (len === this.blksize) this.socket.send(this.slotViews[i]!);
      else this.socket.send(this.slots, i * (HEADER + this.blksize), HEADER + len);
      if (b > this.sent) this.sent = b;
    }
    this.next = end + 1;
  }

  /**
   * Builds the window after the one in flight. Safe: the slot of block b last held block
   * b - 2×windowsize, which is at or below `acked` since b <= acked + 2×windowsize.
   */
  private prefill(): void {
    if (this.state !== 'data' || this.deferred !== undefined) return;
    const from = this.sent + 1;
    const to = Math.min(this.acked + 2 * this.windowsize, this.lastBlock);
    if (from > to || this.socket.getSendQueueCount() > 0) return;
    const n = this.slotCount;
    for (let b = from; b <= to; b++) {
      const i = (b - 1) % n;
      if (this.slotBlock[i] !== b && !this.fill(i, b)) return;
    }
  }

  private fill(i: number, block: number): boolean {
    const base = i * (HEADER + this.blksize);
    const position = (block - 1) * this.blksize;
    const want = Math.max(0, Math.min(this.blksize, this.source.size - position));
    let got: number;
    try {
      got = this.source.read(this.slots, base + HEADER, position, want);
    } catch (err) {
      this.sendError(ErrorCode.notDefined, 'read error');
      this.end({ kind: 'failed', error: err instanceof Error ? err : new Error(String(err)) });
      return false;
    }
    if (got !== want) {
      this.sendError(ErrorCode.notDefined, 'file changed while being sent');
      this.end({ kind: 'failed', error: new Error(`short read at block ${block}: ${got} of ${want} bytes`) });
      return false;
    }
    this.slots.writeUInt16BE(block & 0xffff, base + 2);
    this.slotBlock[i] = block;
    this.slotLength[i] = want;
    return true;
  }

  private sendError(code: (typeof ErrorCode)[keyof typeof ErrorCode], message: string): void {
    if (this.state === 'starting' || this.state === 'ended') return;
    try {
      this.socket.send(encodeError(code, message));
    } catch {
      // socket already closed: nothing to tell
    }
  }

  private end(outcome: TransferOutcome): void {
    if (this.state === 'ended') return;
    this.state = 'ended';
    if (this.timer) clearTimeout(this.timer);
    if (this.lifetimeTimer) clearTimeout(this.lifetimeTimer);
    if (this.deferred) clearImmediate(this.deferred);
    this.source.close();
    // Let a queued final packet (ERROR) leave before the socket closes.
    const close = (): void => {
      try {
        this.socket.close();
      } catch {
        // already closed
      }
    };
    if (this.socket.getSendQueueCount() > 0) setTimeout(close, 50);
    else setImmediate(close);
    this.init.onEnd(this, outcome);
  }
}
