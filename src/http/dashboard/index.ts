// The dashboard at `/` on the HTTP port: login, then the session-guarded pages and the live feed.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import express, { Router, type Request } from 'express';
import { sourceAddress } from '../auth.ts';
import type { DashboardDeps } from './deps.ts';
import { html } from './html.ts';
import { barePage } from './layout.ts';
import { nodesPages } from './nodes-pages.ts';
import { platformsPages } from './platforms-page.ts';
import { headnodePages } from './headnode-page.ts';
import { rolloutsPages } from './rollouts-page.ts';
import { checkCsrf, clearSessionCookie, cookieOf, defaultSessionLimits, requireSession, sameOrigin, SESSION_COOKIE, SessionStore, setSessionCookie } from './session.ts';

const ASSETS = join(dirname(fileURLToPath(import.meta.url)), 'assets');
// uPlot (npm `uplot`) for the head node's rate charts: its browser build, found through the
// package wherever npm put it, served as it ships.
const requireHere = createRequire(import.meta.url);
const UPLOT: ReadonlyMap<string, string> = new Map([
  ['uPlot.iife.min.js', requireHere.resolve('uplot/dist/uPlot.iife.min.js')],
  ['uPlot.min.css', requireHere.resolve('uplot/dist/uPlot.min.css')],
]);

/** Only a local path may follow a login: `//host` or a scheme would be an open redirect. */
function safeNext(next: unknown): string {
  return typeof next === 'string' && next.startsWith('/') && !next.startsWith('//') && !next.startsWith('/\\') ? next : '/';
}

function loginPage(next: string, error?: string): string {
  return barePage(
    'Log in',
    html`<form method="post" action="/ui/login" class="login">
<h1>fleetboot</h1>
${error ? html`<p class="error">${error}</p>` : null}
<label>API token <input type="password" name="token" autocomplete="current-password" required autofocus></label>
<input type="hidden" name="next" value="${next}">
<button type="submit">Log in</button>
<p class="hint">Or run <code>fleetboot dashboard-url</code> on the head node for a one-time link.</p>
</form>`,
  );
}

export function dashboardRoutes(deps: DashboardDeps): Router {
  const sessions = deps.sessions ?? new SessionStore(deps.apiToken);
  const r = Router();
  r.get('/ui/assets/uplot/:file', (req, res, next) => {
    const file = UPLOT.get(String(req.params['file']));
    if (file) res.sendFile(file, { maxAge: '1h' });
    else next();
  });
  r.use('/ui/assets', express.static(ASSETS, { index: false, fallthrough: false, maxAge: '1h' }));
  r.get('/ui/login', (req, res) => {
    res.type('html').send(loginPage(safeNext(req.query['next'])));
  });
  const form = express.urlencoded({ extended: false, limit: '16kb' });
  // The login form needs no CSRF token (there is no session yet); a cross-site POST is refused
  // by Origin/Sec-Fetch-Site, and SameSite=Strict keeps the cookie from riding along anyway.
  r.post('/ui/login', form, (req: Request, res) => {
    if (!sameOrigin(req)) {
      res.status(403).type('html').send(loginPage('/', 'cross-site login refused'));
      return;
    }
    const address = sourceAddress(req);
    const body = (req.body ?? {}) as Record<string, unknown>;
    const next = safeNext(body['next']);
    const token = typeof body['token'] === 'string' ? body['token'] : '';
    const s = sessions.loginWithToken(token);
    if (!s) {
      const wait = sessions.failedLogins.take(address);
      deps.log.warn({ event: 'dashboard_login_refused', address }, 'dashboard login with a wrong token');
      if (wait > 0) {
        res.setHeader('Retry-After', String(wait));
        res.status(429).type('html').send(loginPage(next, `too many failed logins: wait ${wait} s`));
        return;
      }
      res.status(401).type('html').send(loginPage(next, 'wrong token'));
      return;
    }
    deps.log.info({ event: 'dashboard_login', address, via: 'token' }, 'dashboard login');
    setSessionCookie(req, res, s, defaultSessionLimits.absoluteMs);
    res.redirect(303, next);
  });
  r.get('/ui/login/:token', (req, res) => {
    const s = sessions.loginWithLink(String(req.params['token']));
    const address = sourceAddress(req);
    if (!s) {
      sessions.failedLogins.take(address);
      deps.log.warn({ event: 'dashboard_login_refused', address, via: 'link' }, 'dashboard login link unknown, used or expired');
      res.status(401).type('html').send(loginPage('/', 'this login link is unknown, used or expired: run fleetboot dashboard-url again'));
      return;
    }
    deps.log.info({ event: 'dashboard_login', address, via: 'link' }, 'dashboard login');
    setSessionCookie(req, res, s, defaultSessionLimits.absoluteMs);
    res.redirect(303, '/');
  });

  const guarded = Router();
  guarded.use(requireSession(sessions), form, express.json({ limit: '64kb' }), checkCsrf());
  guarded.get('/ui/events', deps.live.handler());
  guarded.post('/ui/logout', (req, res) => {
    const id = cookieOf(req, SESSION_COOKIE);
    if (id) sessions.destroy(id);
    clearSessionCookie(req, res);
    res.redirect(303, '/ui/login');
  });
  guarded.use(nodesPages(deps));
  guarded.use(platformsPages(deps));
  guarded.use(headnodePages(deps));
  guarded.use(rolloutsPages(deps));
  // Only the dashboard's own paths are guarded: anything else falls through to the app's 404.
  r.use((req, res, next) => (req.path === '/' || req.path.startsWith('/ui/') ? guarded(req, res, next) : next()));
  return r;
}
