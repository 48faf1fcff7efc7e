// Option negotiation for a read request (RFC 2347 §2). The server answers only options it
// understands and accepts; unknown options are left out of the OACK, never an error.

export interface TransferParams {
  blksize: number;
  windowsize: number;
  /** Initial retransmission timeout in ms: the client's `timeout` option, else the server default. */
  timeoutMs: number;
  /** Whether the client negotiated `timeout` (then we keep its value rather than adapting). */
  clientTimeout: boolean;
}

export interface NegotiationLimits {
  /** Upper bound for windowsize (RFC 7440 §3 lets the server answer a smaller value). */
  maxWindowsize: number;
  /** Upper bound for blksize × windowsize, so one transfer's buffers stay small. */
  maxWindowBytes: number;
  defaultTimeoutMs: number;
  /** Largest `timeout` (seconds) accepted from a client; a larger one is left out of the OACK. */
  maxTimeoutSeconds: number;
}

export type Negotiation =
  | { ok: true; params: TransferParams; oack: Array<[string, string]> }
  | { ok: false; message: string };

const decimal = /^\d{1,10}$/;

export function negotiate(options: ReadonlyMap<string, string>, size: number, limits: NegotiationLimits): Negotiation {
  const oack: Array<[string, string]> = [];
  const params: TransferParams = { blksize: 512, windowsize: 1, timeoutMs: limits.defaultTimeoutMs, clientTimeout: false };

  const blksize = options.get('blksize');
  if (blksize !== undefined) {
    // RFC 2348 §2: valid values are 8..65464; a larger request may be answered with less.
    const n = decimal.test(blksize) ? Number(blksize) : NaN;
    if (!(n >= 8)) return { ok: false, message: `blksize "${blksize}" is outside 8..65464` };
    params.blksize = Math.min(n, 65464);
    oack.push(['blksize', String(params.blksize)]);
  }

  const timeout = options.get('timeout');
  if (timeout !== undefined && decimal.test(timeout)) {
    // RFC 2349 §2: 1..255 seconds; the server must echo exactly the value it accepts, so a
    // value over our bound is not clamped but refused by leaving it out of the OACK, which
    // RFC 2347 §2 allows for any option; the transfer then runs on the server's own timer.
    // Accepting 255 would let one silent client hold a transfer slot for 7 × 255 s.
    const n = Number(timeout);
    if (n >= 1 && n <= Math.min(255, limits.maxTimeoutSeconds)) {
      params.timeoutMs = n * 1000;
      params.clientTimeout = true;
      oack.push(['timeout', String(n)]);
    }
  }

  const tsize = options.get('tsize');
  // RFC 2349 §4: in a read request the client sends 0 and the server answers the size.
  if (tsize !== undefined && decimal.test(tsize)) oack.push(['tsize', String(size)]);

  const windowsize = options.get('windowsize');
  if (windowsize !== undefined && decimal.test(windowsize)) {
    // RFC 7440 §3: 1..65535; the server may answer a smaller value, which the client must use.
    const n = Number(windowsize);
    if (n >= 1 && n <= 65535) {
      const byBytes = Math.max(1, Math.floor(limits.maxWindowBytes / params.blksize));
      params.windowsize = Math.min(n, limits.maxWindowsize, byBytes);
      oack.push(['windowsize', String(params.windowsize)]);
    }
  }
  return { ok: true, params, oack };
}
