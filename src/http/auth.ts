import type { NextFunction, Request, Response } from 'express';
import { tokenMatches } from '../config/token.ts';
import { sendError } from './errors.ts';

/** The request's source address as the registry stores it (IPv4-mapped IPv6 unwrapped). */
export function sourceAddress(req: Request): string {
  const ip = req.socket.remoteAddress ?? '';
  return ip.startsWith('::ffff:') ? ip.slice(7) : ip;
}

/** The token of `Authorization: Bearer <token>` (RFC 6750 §2.1), or null. */
export function bearerToken(req: Request): string | null {
  return /^Bearer\s+(\S+)\s*$/i.exec(req.get('authorization') ?? '')?.[1] ?? null;
}

/**
 * Admin API guard: `Authorization: Bearer <token>` (RFC 6750 §2.1), else 401 with a JSON body.
 * `token` may be a function giving the current token (config/token.ts followTokenFile), so a
 * rotated token takes effect at the next request and the old one stops working.
 */
export function requireBearer(token: string | (() => string)) {
  const current = typeof token === 'string' ? () => token : token;
  return (req: Request, res: Response, next: NextFunction): void => {
    const presented = bearerToken(req);
    if (presented === null || !tokenMatches(presented, current())) {
      res.set('WWW-Authenticate', 'Bearer realm="fleetboot"');
      return sendError(res, 401, 'unauthorized', 'missing or wrong bearer token (see the API token file in the head-node config)');
    }
    next();
  };
}
