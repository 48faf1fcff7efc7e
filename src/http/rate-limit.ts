// A token bucket per source address (the classic shaper of RFC 2697 §3, one rate, one burst)
// over the routes an unauthenticated client can make us do work for: the boot scripts and the
// check-in. Past the burst a client gets 429 with Retry-After (RFC 6585 §4, RFC 9110 §10.2.3).
// A rack behind one relay or NAT shares one address, so the bucket is sized for a booting
// fleet, not a single machine (config http.rateLimit, docs/hardening.md "HTTP").
import type { NextFunction, Request, Response } from 'express';
import { sourceAddress } from './auth.ts';
import { sendError } from './errors.ts';

export interface RateLimit {
  /** Tokens added per second; 0 turns the limit off. */
  perSecond: number;
  /** Bucket size: requests an address may make at once. */
  burst: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

/** Addresses tracked before full buckets (idle clients) are forgotten. */
const SWEEP_AT = 10_000;

export class TokenBuckets {
  private readonly buckets = new Map<string, Bucket>();
  /** Requests refused since start, for the counters. */
  refused = 0;

  constructor(
    private readonly limit: RateLimit,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Takes a token for `address`: 0 when allowed, else the seconds until one is there. */
  take(address: string): number {
    const now = this.now();
    let b = this.buckets.get(address);
    if (!b) {
      if (this.buckets.size >= SWEEP_AT) this.sweep(now);
      b = { tokens: this.limit.burst, at: now };
      this.buckets.set(address, b);
    } else {
      b.tokens = Math.min(this.limit.burst, b.tokens + ((now - b.at) / 1000) * this.limit.perSecond);
      b.at = now;
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    this.refused++;
    return Math.max(1, Math.ceil((1 - b.tokens) / this.limit.perSecond));
  }

  /** Forgets addresses whose bucket has refilled: they would start full anyway. */
  private sweep(now: number): void {
    for (const [address, b] of this.buckets) {
      if (b.tokens + ((now - b.at) / 1000) * this.limit.perSecond >= this.limit.burst) this.buckets.delete(address);
    }
  }
}

/**
 * Middleware limiting requests that `applies` selects; others pass untouched. The refusal
 * names the limit, so an operator seeing it in a node's console knows which setting to raise.
 */
export function rateLimit(limit: RateLimit, applies: (req: Request) => boolean, onRefused?: (req: Request, retryAfter: number) => void) {
  if (limit.perSecond <= 0) return (_req: Request, _res: Response, next: NextFunction): void => next();
  const buckets = new TokenBuckets(limit);
  return (req: Request, res: Response, next: NextFunction): void => {
    if (!applies(req)) return next();
    const wait = buckets.take(sourceAddress(req));
    if (wait === 0) return next();
    onRefused?.(req, wait);
    res.set('Retry-After', String(wait));
    sendError(res, 429, 'rate_limited', `more than ${limit.burst} requests at once or ${limit.perSecond}/s from this address (http.rateLimit); retry in ${wait} s`);
  };
}
