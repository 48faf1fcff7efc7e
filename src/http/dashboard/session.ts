// Dashboard sessions. A browser cannot hold the bearer token safely, so the token (or a
// one-time link from `fleetboot dashboard-url`) is exchanged for a random session id in an
// HttpOnly cookie; state-changing requests then also need a per-session CSRF token and a
// same-origin Origin/Sec-Fetch-Site (OWASP CSRF Prevention Cheat Sheet: synchronizer token
// pattern plus "Verifying Origin with standard headers", and Fetch Metadata).
import { createHash, randomBytes } from 'node:crypto';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { tokenMatches } from '../../config/token.ts';
import { sendError } from '../errors.ts';
import { TokenBuckets } from '../rate-limit.ts';

export const SESSION_COOKIE = 'fleetboot_session';

export interface Session {
  id: string;
  csrfToken: string;
  /** SHA-256 of the API token the session was made under: a rotation ends it. */
  tokenHash: string;
  createdAt: number;
  lastUsed: number;
}

export interface SessionLimits {
  idleMs: number;
  absoluteMs: number;
  maxSessions: number;
  loginLinkMs: number;
  maxLoginLinks: number;
}

export const defaultSessionLimits: SessionLimits = {
  idleMs: 12 * 3600_000,
  absoluteMs: 7 * 24 * 3600_000,
  maxSessions: 1000,
  loginLinkMs: 5 * 60_000,
  maxLoginLinks: 100,
};

const hashOf = (token: string): string => createHash('sha256').update(token).digest('hex');
/** 256 bits from the CSPRNG (OWASP Session Management: at least 64 bits of entropy). */
const randomId = (): string => randomBytes(32).toString('base64url');

/** The in-memory session table and the one-time login links. Bounded; lost on restart (log in again). */
export class SessionStore {
  private readonly sessions = new Map<string, Session>();
  private readonly links = new Map<string, { expiresAt: number; tokenHash: string }>();
  /** Failed logins per source address: 10 at once, then one every 6 s. */
  readonly failedLogins = new TokenBuckets({ perSecond: 1 / 6, burst: 10 });

  constructor(
    private readonly apiToken: () => string,
    private readonly limits: SessionLimits = defaultSessionLimits,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.sessions.size;
  }

  /** A new session, when `token` is the API token; null otherwise. */
  loginWithToken(token: string): Session | null {
    if (!tokenMatches(token, this.apiToken())) return null;
    return this.create();
  }

  /** A single-use login link token, valid for limits.loginLinkMs. */
  createLoginLink(): { token: string; expiresAt: number } {
    const now = this.now();
    for (const [t, l] of this.links) if (l.expiresAt <= now) this.links.delete(t);
    if (this.links.size >= this.limits.maxLoginLinks) {
      const oldest = this.links.keys().next().value;
      if (oldest !== undefined) this.links.delete(oldest);
    }
    const token = randomId();
    const expiresAt = now + this.limits.loginLinkMs;
    this.links.set(hashOf(token), { expiresAt, tokenHash: hashOf(this.apiToken()) });
    return { token, expiresAt };
  }

  /** Spends a login link: a session when it is known, unexpired and made under the current API token. */
  loginWithLink(token: string): Session | null {
    const key = hashOf(token);
    const link = this.links.get(key);
    if (!link) return null;
    this.links.delete(key);
    if (link.expiresAt <= this.now() || link.tokenHash !== hashOf(this.apiToken())) return null;
    return this.create();
  }

  private create(): Session {
    const now = this.now();
    if (this.sessions.size >= this.limits.maxSessions) {
      this.sweep();
      // Still full: the least recently used goes (Map keeps insertion order; touch re-inserts).
      const oldest = this.sessions.keys().next().value;
      if (this.sessions.size >= this.limits.maxSessions && oldest !== undefined) this.sessions.delete(oldest);
    }
    const s: Session = { id: randomId(), csrfToken: randomId(), tokenHash: hashOf(this.apiToken()), createdAt: now, lastUsed: now };
    this.sessions.set(hashOf(s.id), s);
    return s;
  }

  /** The live session of a cookie value, touched; null when unknown, expired or made under an older API token. */
  get(id: string): Session | null {
    const key = hashOf(id);
    const s = this.sessions.get(key);
    if (!s) return null;
    const now = this.now();
    if (now - s.lastUsed > this.limits.idleMs || now - s.createdAt > this.limits.absoluteMs || s.tokenHash !== hashOf(this.apiToken())) {
      this.sessions.delete(key);
      return null;
    }
    s.lastUsed = now;
    this.sessions.delete(key);
    this.sessions.set(key, s);
    return s;
  }

  destroy(id: string): void {
    this.sessions.delete(hashOf(id));
  }

  private sweep(): void {
    const now = this.now();
    const tokenHash = hashOf(this.apiToken());
    for (const [k, s] of this.sessions) {
      if (now - s.lastUsed > this.limits.idleMs || now - s.createdAt > this.limits.absoluteMs || s.tokenHash !== tokenHash) this.sessions.delete(k);
    }
  }
}

/** The cookie header's value for `name` (RFC 6265 §5.4: "name=value" pairs joined by "; "). */
export function cookieOf(req: Request, name: string): string | null {
  const header = req.headers.cookie;
  if (!header) return null;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return null;
}

/** Whether the request reached us over TLS (directly; a TLS-terminating proxy is not trusted). */
function overTls(req: Request): boolean {
  return 'encrypted' in req.socket && (req.socket as { encrypted?: boolean }).encrypted === true;
}

/** Sets the session cookie: HttpOnly, SameSite=Strict, Path=/, Secure over TLS (RFC 6265bis §4.1.2.7). */
export function setSessionCookie(req: Request, res: Response, s: Session, maxAgeMs: number): void {
  const attrs = [`${SESSION_COOKIE}=${s.id}`, 'HttpOnly', 'SameSite=Strict', 'Path=/', `Max-Age=${Math.floor(maxAgeMs / 1000)}`];
  if (overTls(req)) attrs.push('Secure');
  res.append('Set-Cookie', attrs.join('; '));
}

export function clearSessionCookie(req: Request, res: Response): void {
  const attrs = [`${SESSION_COOKIE}=`, 'HttpOnly', 'SameSite=Strict', 'Path=/', 'Max-Age=0'];
  if (overTls(req)) attrs.push('Secure');
  res.append('Set-Cookie', attrs.join('; '));
}

/** The session of a request that passed requireSession. */
export function sessionOf(res: Response): { id: string; csrfToken: string } {
  const s = res.locals['session'] as Session | undefined;
  if (!s) throw new Error('sessionOf called on a request that did not pass requireSession');
  return { id: s.id, csrfToken: s.csrfToken };
}

/** A browser navigation to a page (not fetch/XHR/EventSource, not a form POST). */
function wantsPage(req: Request): boolean {
  if (req.method !== 'GET' && req.method !== 'HEAD') return false;
  if (req.get('sec-fetch-dest') && req.get('sec-fetch-dest') !== 'document') return false;
  const accept = req.get('accept') ?? '';
  return accept.includes('text/html');
}

/** No or unknown session: a page redirects to the login form (303, RFC 9110 §15.4.4); XHR, SSE and POST get 401. */
export function requireSession(sessions: SessionStore): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    const id = cookieOf(req, SESSION_COOKIE);
    const s = id ? sessions.get(id) : null;
    if (s) {
      res.locals['session'] = s;
      next();
      return;
    }
    if (id) clearSessionCookie(req, res);
    if (wantsPage(req)) {
      res.redirect(303, `/ui/login?next=${encodeURIComponent(req.originalUrl)}`);
      return;
    }
    sendError(res, 401, 'unauthorized', 'no dashboard session: log in at /ui/login');
  };
}

/**
 * Refuses a cross-site request that changes state: Sec-Fetch-Site other than same-origin/none
 * (Fetch Metadata, W3C "Fetch Metadata Request Headers" §2.1), or an Origin whose host is not
 * the Host we were asked as (RFC 6454 §7). A request with neither header (curl) passes this
 * check; the CSRF token still guards it.
 */
export function sameOrigin(req: Request): boolean {
  const site = req.get('sec-fetch-site');
  if (site && site !== 'same-origin' && site !== 'none') return false;
  const origin = req.get('origin');
  if (origin === undefined) return true;
  if (origin === 'null') return false;
  try {
    return new URL(origin).host === req.get('host');
  } catch {
    return false;
  }
}

/** Every non-GET: same origin, and the session's CSRF token in X-CSRF-Token or the `_csrf` form field. */
export function checkCsrf(): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    if (req.method === 'GET' || req.method === 'HEAD' || req.method === 'OPTIONS') {
      next();
      return;
    }
    if (!sameOrigin(req)) {
      sendError(res, 403, 'cross_site', 'a cross-site request may not change anything');
      return;
    }
    const s = res.locals['session'] as Session;
    const body = req.body as Record<string, unknown> | undefined;
    const sent = req.get('x-csrf-token') ?? (typeof body?.['_csrf'] === 'string' ? body['_csrf'] : undefined);
    if (typeof sent !== 'string' || !tokenMatches(sent, s.csrfToken)) {
      sendError(res, 403, 'csrf', 'missing or wrong CSRF token (X-CSRF-Token header or _csrf form field): reload the page');
      return;
    }
    next();
  };
}
