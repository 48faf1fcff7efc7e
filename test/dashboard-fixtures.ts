// The dashboard tests' login: the token form posted as a browser would, the session cookie it
// sets, and the CSRF token the first page carries (meta csrf-token).
import assert from 'node:assert/strict';

export interface DashboardSession {
  /** `fleetboot_session=...`, for a Cookie header. */
  cookie: string;
  csrf: string;
  /** The whole Set-Cookie header, attributes and all. */
  setCookie: string;
}

export async function dashboardLogin(url: string, token: string): Promise<DashboardSession> {
  const res = await fetch(`${url}/ui/login`, { method: 'POST', body: new URLSearchParams({ token, next: '/' }), redirect: 'manual' });
  assert.equal(res.status, 303);
  const setCookie = res.headers.get('set-cookie') ?? '';
  const cookie = setCookie.split(';')[0]!;
  const page = await (await fetch(`${url}/`, { headers: { cookie, accept: 'text/html' } })).text();
  const csrf = /<meta name="csrf-token" content="([^"]+)">/.exec(page)?.[1];
  assert.ok(csrf, 'the page carries the CSRF token');
  return { cookie, csrf, setCookie };
}
