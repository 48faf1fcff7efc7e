// The native data path: native/tftp_data.c (built by `npm ci` through binding.gyp) runs a
// transfer's OACK exchange and data phase on a thread of its own, with the same rules as
// the JS Transfer (transfer.ts): adaptive retransmission timer with the same floor, ceiling
// and retry limit, block-number rollover, no Sorcerer's Apprentice, client ERROR aborts.
// JS still parses the request, resolves the file and negotiates options; it hears once, at
// the end, and logs and records exactly as for a JS transfer. `createTransfer` is the one
// place that picks the path; without the addon, with FLEETBOOT_TFTP_NATIVE=0 or
// `native: false`, every transfer runs in JS.
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';
import { encodeOack } from './packet.ts';
import type { TransferParams } from './options.ts';
import { Transfer, type TftpTransfer, type TransferInit, type TransferOutcome } from './transfer.ts';

interface NativeStartOptions {
  local: string;
  address: string;
  port: number;
  data: Buffer | null;
  fd: number;
  size: number;
  blksize: number;
  windowsize: number;
  oack: Buffer | null;
  rtoMs: number;
  rtoCeilingMs: number;
  minMs: number;
  retries: number;
  /** Longest the transfer may run (tftp_data.c ends it with ST_TIMEOUT, code 1, past this). */
  lifetimeMs: number;
  /** Busy-poll budget per ACK wait (spin_recv in native/tftp_data.c); 0 never polls. */
  spinUs: number;
}

type NativeDone = (status: number, code: number, message: string, afterOack: boolean, block: number, retransmits: number) => void;

interface NativeAddon {
  start(options: NativeStartOptions, done: NativeDone): object;
  cancel(handle: object): void;
}

/** Status codes of native/tftp_data.c. */
const Status = { done: 0, aborted: 1, timeout: 2, failed: 3, stopped: 4 } as const;
/** The native side keeps one header array per window slot (MAX_WINDOW in tftp_data.c). */
const NATIVE_MAX_WINDOW = 64;

function load(): NativeAddon | null {
  try {
    const mod = createRequire(import.meta.url)('../../build/Release/fleetboot_tftp.node') as Partial<NativeAddon>;
    return typeof mod.start === 'function' && typeof mod.cancel === 'function' ? (mod as NativeAddon) : null;
  } catch {
    return null;
  }
}

const addon = load();

/** Whether the native data path is built and not switched off by FLEETBOOT_TFTP_NATIVE=0. */
export function nativeAvailable(): boolean {
  return addon !== null && process.env.FLEETBOOT_TFTP_NATIVE !== '0';
}

/**
 * The one place that picks the data path: native when available, allowed and the transfer
 * fits it (a source with a Buffer or fd, windowsize within the native limit, no IPv6
 * scope id), else the JS Transfer.
 */
export function createTransfer(init: TransferInit, allowNative = true): TftpTransfer {
  const backing = init.source.backing?.();
  if (
    allowNative &&
    addon !== null &&
    nativeAvailable() &&
    backing !== undefined &&
    init.params.windowsize <= NATIVE_MAX_WINDOW &&
    !init.client.address.includes('%') &&
    !init.localAddress.includes('%')
  ) {
    return new NativeTransfer(addon, init, backing);
  }
  return new Transfer(init);
}

class NativeTransfer implements TftpTransfer {
  path: 'js' | 'native' = 'native';
  readonly startedAt = performance.now();
  retransmits = 0;
  private handle: object | undefined;
  /** The JS Transfer that took over when the native start failed (no thread, no socket...). */
  private fallback: Transfer | undefined;
  private ended = false;

  constructor(
    private readonly addon: NativeAddon,
    private readonly init: TransferInit,
    private readonly backing: { data: Buffer } | { fd: number },
  ) {}

  get client(): { address: string; port: number } {
    return this.init.client;
  }
  get params(): TransferParams {
    return this.init.params;
  }
  get size(): number {
    return this.init.source.size;
  }

  start(): void {
    // Same timer bounds as transfer.ts (RFC 2349 §2 ceiling, RFC 6298 §2-style adaptation).
    const { minMs, maxMs, retries, lifetimeMs } = this.init.retransmit;
    const p = this.init.params;
    const rtoCeilingMs = p.clientTimeout ? Math.max(minMs, p.timeoutMs) : Math.max(minMs, maxMs);
    const rtoMs = Math.min(rtoCeilingMs, Math.max(minMs, p.timeoutMs));
    try {
      this.handle = this.addon.start(
        {
          local: this.init.localAddress,
          address: this.init.client.address,
          port: this.init.client.port,
          data: 'data' in this.backing ? this.backing.data : null,
          fd: 'fd' in this.backing ? this.backing.fd : -1,
          size: this.init.source.size,
          blksize: p.blksize,
          windowsize: p.windowsize,
          oack: this.init.oack.length > 0 ? encodeOack(this.init.oack) : null,
          rtoMs,
          rtoCeilingMs,
          minMs,
          retries,
          lifetimeMs,
          spinUs: this.init.busyPollMicros ?? 0,
        },
        (status, code, message, afterOack, block, retransmits) => {
          this.handle = undefined;
          this.retransmits = retransmits;
          this.end(outcomeOf(status, code, message, afterOack, block));
        },
      );
    } catch {
      // Nothing was sent yet: the JS path serves this transfer instead.
      this.path = 'js';
      this.fallback = new Transfer({
        ...this.init,
        onEnd: (t, outcome) => {
          this.retransmits = t.retransmits;
          this.end(outcome);
        },
      });
      this.fallback.start();
    }
  }

  /** Server stopping: the worker sends the client an ERROR and exits; we end now. */
  stop(): void {
    if (this.ended) return;
    if (this.fallback) return this.fallback.stop();
    if (this.handle) this.addon.cancel(this.handle);
    this.end({ kind: 'stopped' });
  }

  private end(outcome: TransferOutcome): void {
    if (this.ended) return;
    this.ended = true;
    // Safe while the worker still runs: it holds its own dup of the fd / a reference to the
    // bytes. (A fallback Transfer has closed the source itself.)
    if (!this.fallback) this.init.source.close();
    this.init.onEnd(this, outcome);
  }
}

function outcomeOf(status: number, code: number, message: string, afterOack: boolean, block: number): TransferOutcome {
  switch (status) {
    case Status.done:
      return { kind: 'done' };
    case Status.aborted:
      return { kind: 'aborted', code, message, afterOack };
    case Status.timeout:
      // tftp_data.c: code 1 when the transfer outlived lifetimeMs, 0 after the retry limit.
      return { kind: 'timeout', block, cause: code === 1 ? 'lifetime' : 'retries' };
    case Status.stopped:
      return { kind: 'stopped' };
    default:
      return { kind: 'failed', error: new Error(code ? `${message} (errno ${code})` : message) };
  }
}
