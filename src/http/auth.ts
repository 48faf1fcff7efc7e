import type { NextFunction, Request, Response } from 'express';
import { tokenMatches } from '../config/token.ts';
import { sendError } from './errors.ts';

/** Admin API guard: `Authorization: Bearer <token>` (RFC 6750 §2.1), else 401 with a JSON body. */
export function requireBearer(token: string) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(req.get('authorization') ?? '');
    if (!m?.[1] || !tokenMatches(m[1], token)) {
      res.set('WWW-Authenticate', 'Bearer realm="fleetboot"');
      return sendError(res, 401, 'unauthorized', 'missing or wrong bearer token (see the API token file in the head-node config)');
    }
    next();
  };
}
