import assert from 'node:assert/strict';
import { test } from 'node:test';
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { execa } from 'execa';
import { join } from 'node:path';
import { writeTokenFile } from '../src/config/token.ts';
import { parseMac } from '../src/mac.ts';
import { runCli, startHeadNode, tempDir } from './fixtures.ts';
import { dashboardLogin } from './dashboard-fixtures.ts';

/** Logs in with the API token; returns the cookie pair and the page's CSRF token. */
test('without a session a page redirects to the login form, XHR/SSE/POST get 401', async (t) => {
  const { url } = await startHeadNode(t, tempDir(t));
  const pageRes = await fetch(`${url}/`, { headers: { accept: 'text/html' }, redirect: 'manual' });
  assert.equal(pageRes.status, 303);
  assert.equal(pageRes.headers.get('location'), '/ui/login?next=%2F');
  const node = await fetch(`${url}/ui/nodes/1`, { headers: { accept: 'text/html' }, redirect: 'manual' });
  assert.equal(node.status, 303);
  assert.equal((await fetch(`${url}/ui/events`, { headers: { accept: 'text/event-stream' } })).status, 401);
  assert.equal((await fetch(`${url}/`, { headers: { accept: 'application/json' } })).status, 401);
  assert.equal((await fetch(`${url}/ui/nodes/1/retire`, { method: 'POST' })).status, 401);
  assert.equal((await fetch(`${url}/ui/login`)).status, 200);
  assert.equal((await fetch(`${url}/ui/assets/dashboard.css`)).status, 200);
  // Paths outside the dashboard still get the app's JSON 404.
  assert.equal((await fetch(`${url}/nope`)).status, 404);
});

test('a wrong token is refused; the right one gives a session cookie with exactly the attributes', async (t) => {
  const { url, token } = await startHeadNode(t, tempDir(t));
  const bad = await fetch(`${url}/ui/login`, { method: 'POST', body: new URLSearchParams({ token: 'not-the-token-at-all' }), redirect: 'manual' });
  assert.equal(bad.status, 401);
  assert.equal(bad.headers.get('set-cookie'), null);
  const { setCookie } = await dashboardLogin(url, token);
  const attrs = setCookie.split(';').map((s) => s.trim());
  assert.match(attrs[0]!, /^fleetboot_session=[A-Za-z0-9_-]{43}$/);
  assert.ok(attrs.includes('HttpOnly'));
  assert.ok(attrs.includes('SameSite=Strict'));
  assert.ok(attrs.includes('Path=/'));
  assert.ok(!attrs.includes('Secure'), 'not over plain HTTP');
});

test('failed logins are rate-limited per address', async (t) => {
  const { url } = await startHeadNode(t, tempDir(t));
  const statuses: number[] = [];
  for (let i = 0; i < 12; i++) statuses.push((await fetch(`${url}/ui/login`, { method: 'POST', body: new URLSearchParams({ token: 'wrong-wrong-wrong' }) })).status);
  assert.deepEqual(statuses.slice(0, 10), Array(10).fill(401));
  assert.equal(statuses[11], 429);
});

test('a one-time login link from the admin API works once, then is refused', async (t) => {
  const { url, token } = await startHeadNode(t, tempDir(t));
  assert.equal((await fetch(`${url}/api/v1/dashboard/login-links`, { method: 'POST' })).status, 401);
  const res = await fetch(`${url}/api/v1/dashboard/login-links`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
  assert.equal(res.status, 201);
  const { path } = (await res.json()) as { path: string };
  assert.match(path, /^\/ui\/login\/[A-Za-z0-9_-]{43}$/);
  const first = await fetch(`${url}${path}`, { redirect: 'manual' });
  assert.equal(first.status, 303);
  const cookie = (first.headers.get('set-cookie') ?? '').split(';')[0]!;
  assert.equal((await fetch(`${url}/`, { headers: { cookie } })).status, 200);
  const second = await fetch(`${url}${path}`, { redirect: 'manual' });
  assert.equal(second.status, 401);
  assert.equal(second.headers.get('set-cookie'), null);
});

test('an expired login link is refused', async (t) => {
  let now = Date.now();
  const { url, token } = await startHeadNode(t, tempDir(t), {}, () => now);
  const link = async (): Promise<{ path: string; expiresAt: string }> =>
    (await (await fetch(`${url}/api/v1/dashboard/login-links`, { method: 'POST', headers: { authorization: `Bearer ${token}` } })).json()) as { path: string; expiresAt: string };
  const stale = await link();
  assert.equal(Date.parse(stale.expiresAt), now + 5 * 60_000);
  const fresh = await link();
  now += 5 * 60_000 - 1;
  assert.equal((await fetch(`${url}${fresh.path}`, { redirect: 'manual' })).status, 303);
  now += 1;
  assert.equal((await fetch(`${url}${stale.path}`, { redirect: 'manual' })).status, 401);
  assert.equal((await fetch(`${url}/ui/login/not-a-link`, { redirect: 'manual' })).status, 401);
});

test('a POST action needs the CSRF token and a same-site origin; with both it works', async (t) => {
  const { url, token, head } = await startHeadNode(t, tempDir(t));
  const { node } = head.store.nodes.discover({ mac: parseMac('52:54:00:00:00:01')! });
  const { cookie, csrf } = await dashboardLogin(url, token);
  const noToken = await fetch(`${url}/ui/nodes/${node.id}/retire`, { method: 'POST', headers: { cookie }, redirect: 'manual' });
  assert.equal(noToken.status, 403);
  const wrong = await fetch(`${url}/ui/nodes/${node.id}/retire`, { method: 'POST', headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' }, body: '_csrf=nope', redirect: 'manual' });
  assert.equal(wrong.status, 403);
  const crossSite = await fetch(`${url}/ui/nodes/${node.id}/retire`, { method: 'POST', headers: { cookie, 'x-csrf-token': csrf, origin: 'http://evil.example' }, redirect: 'manual' });
  assert.equal(crossSite.status, 403);
  const fetchMeta = await fetch(`${url}/ui/nodes/${node.id}/retire`, { method: 'POST', headers: { cookie, 'x-csrf-token': csrf, 'sec-fetch-site': 'cross-site' }, redirect: 'manual' });
  assert.equal(fetchMeta.status, 403);
  assert.equal(head.store.nodes.get(node.id)!.state, 'discovered');
  const ok = await fetch(`${url}/ui/nodes/${node.id}/retire`, { method: 'POST', headers: { cookie, 'content-type': 'application/x-www-form-urlencoded', origin: url }, body: new URLSearchParams({ _csrf: csrf }).toString(), redirect: 'manual' });
  assert.equal(ok.status, 303);
  assert.equal(head.store.nodes.get(node.id)!.state, 'retired');
  const crossLogin = await fetch(`${url}/ui/login`, { method: 'POST', headers: { origin: 'http://evil.example' }, body: new URLSearchParams({ token }), redirect: 'manual' });
  assert.equal(crossLogin.status, 403);
});

test('logging out and rotating the API token both end the session', async (t) => {
  const { url, token, head } = await startHeadNode(t, tempDir(t));
  const a = await dashboardLogin(url, token);
  const b = await dashboardLogin(url, token);
  const out = await fetch(`${url}/ui/logout`, { method: 'POST', headers: { cookie: a.cookie, 'x-csrf-token': a.csrf }, redirect: 'manual' });
  assert.equal(out.status, 303);
  assert.equal((await fetch(`${url}/`, { headers: { cookie: a.cookie } })).status, 401);
  assert.equal((await fetch(`${url}/`, { headers: { cookie: b.cookie } })).status, 200);
  writeTokenFile(head.config.apiTokenFile);
  assert.notEqual(head.apiToken, token);
  assert.equal((await fetch(`${url}/`, { headers: { cookie: b.cookie } })).status, 401);
  await dashboardLogin(url, head.apiToken);
});

test('fleetboot dashboard-url asks the running head node for a one-time link that logs in', async (t) => {
  const dir = tempDir(t);
  const { head } = await startHeadNode(t, dir);
  const port = head.http.address()!.port;
  writeFileSync(join(dir, 'fleetboot.json'), JSON.stringify({ http: { listen: '127.0.0.1', port } }));
  const r = await runCli(['dashboard-url'], dir);
  assert.equal(r.exitCode, 0, String(r.stderr));
  const url = /^(http:\/\/127\.0\.0\.1:\d+\/ui\/login\/[A-Za-z0-9_-]{43})$/m.exec(String(r.stdout))?.[1];
  assert.ok(url, String(r.stdout));
  const res = await fetch(url, { redirect: 'manual' });
  assert.equal(res.status, 303);
  assert.match(res.headers.get('set-cookie') ?? '', /^fleetboot_session=/);
  assert.equal((await fetch(url, { redirect: 'manual' })).status, 401);
  await head.stop();
  const down = await runCli(['dashboard-url'], dir);
  assert.equal(down.exitCode, 1);
  assert.match(String(down.stderr), /does not answer/);
});

test('with http.unixSocket the head node serves on it too, and dashboard-url asks through it (a head node in another namespace)', async (t) => {
  const dir = tempDir(t);
  const socket = join(dir, 'http.sock');
  // A socket file left by a head node that was killed (-9): replaced, not an EADDRINUSE.
  await execa(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(socket)}, () => process.kill(process.pid, 'SIGKILL'))`], { reject: false });
  assert.ok(statSync(socket).isSocket(), 'a stale socket file is there');
  const { head } = await startHeadNode(t, dir, { http: { listen: '127.0.0.1', port: 0, unixSocket: socket } });
  const port = head.http.address()!.port;
  const health = await new Promise<string>((resolve, reject) => {
    request({ socketPath: socket, path: '/healthz' }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve(body));
    }).on('error', reject).end();
  });
  assert.deepEqual(JSON.parse(health), { status: 'ok' });
  // The config a CLI reads gives a TCP port nobody listens on: only the socket reaches the head node.
  writeFileSync(join(dir, 'fleetboot.json'), JSON.stringify({ http: { listen: '127.0.0.1', port: 9, unixSocket: socket } }));
  const r = await runCli(['dashboard-url', '--base-url', `http://127.0.0.1:${port}`, '--json'], dir);
  assert.equal(r.exitCode, 0, String(r.stderr));
  const { url } = JSON.parse(String(r.stdout)) as { url: string };
  assert.match(url, new RegExp(`^http://127\\.0\\.0\\.1:${port}/ui/login/[A-Za-z0-9_-]{43}$`));
  assert.equal((await fetch(url, { redirect: 'manual' })).status, 303);
  const bad = await runCli(['dashboard-url', '--base-url', 'http://h:1/path'], dir);
  assert.equal(bad.exitCode, 2);
  assert.match(String(bad.stderr), /--base-url "http:\/\/h:1\/path": expected http\(s\):\/\/HOST\[:PORT\] with no path/);
  await head.stop();
  assert.ok(!existsSync(socket), 'the socket file goes with the head node');
});
