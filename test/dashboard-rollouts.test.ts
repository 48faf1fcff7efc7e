// The dashboard's rollout pages on a running head node with fake power drivers: the list, one
// rollout with the verbs its state allows, the step fragment, and pause/resume from the page
// through the session's CSRF token.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { verbsFor } from '../src/http/dashboard/rollouts-page.ts';
import { tempDir } from './fixtures.ts';
import { fakeFleet, platformB } from './rollout-fleet.ts';
import { dashboardLogin } from './dashboard-fixtures.ts';

const buttons = (page: string): string[] => [...page.matchAll(/<button name="verb" value="([a-z]+)"/g)].map((m) => m[1]!);

test('verbsFor offers exactly the verbs the orchestrator accepts in each state', () => {
  assert.deepEqual(verbsFor('running'), ['pause', 'cancel']);
  assert.deepEqual(verbsFor('waiting_promote'), ['promote', 'pause', 'cancel']);
  assert.deepEqual(verbsFor('paused'), ['resume', 'cancel']);
  for (const over of ['done', 'failed', 'cancelled'] as const) assert.deepEqual(verbsFor(over), []);
});

test('a rollout is listed, shown with its steps and the verbs its state allows, and paused and resumed from its page', { timeout: 120_000 }, async (t) => {
  const f = await fakeFleet(t, tempDir(t), ['cn1', 'cn2', 'cn3']);
  // The canary never checks in: the rollout stays running with cn1 in flight.
  f.machines.get('cn1')!.silent = true;
  const url = f.h.url;
  const { cookie, csrf } = await dashboardLogin(url, f.h.token);
  const get = async (path: string): Promise<string> => {
    const res = await fetch(`${url}${path}`, { headers: { cookie, accept: 'text/html' } });
    assert.equal(res.status, 200, path);
    return res.text();
  };
  assert.match(await get('/ui/rollouts'), /No rollout yet/);

  const started = await fetch(`${url}/api/v1/rollouts`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${f.h.token}` },
    body: JSON.stringify({ target: platformB, selector: 'all', canary: 1, maxInFlight: 1 }),
  });
  assert.equal(started.status, 201);
  const id = ((await started.json()) as { rollout: { id: number } }).rollout.id;
  const end = Date.now() + 60_000;
  while (f.machines.get('cn1')!.cycles === 0) {
    assert.ok(Date.now() < end, 'the canary was never power-cycled');
    await new Promise((r) => setTimeout(r, 25));
  }

  const list = await get('/ui/rollouts');
  assert.match(list, new RegExp(`<a href="/ui/rollouts/${id}">${id}</a></td><td>${platformB}</td><td><span class="badge state-running">`));
  const shown = await get(`/ui/rollouts/${id}`);
  assert.deepEqual(buttons(shown), ['pause', 'cancel']);
  assert.match(shown, /data-confirm="Pause this rollout\?/);
  assert.match(shown, /<dt>Canaries<\/dt><dd>1/);
  for (const label of ['cn1', 'cn2', 'cn3']) assert.match(shown, new RegExp(`<a href="/ui/nodes/\\d+">${label}</a>`));
  assert.match(await get(`/ui/rollouts/${id}/steps`), /<tr data-node="\d+"><td>1<\/td><td><a href="\/ui\/nodes\/\d+">cn1<\/a><\/td><td>canary<\/td>[\s\S]*?state-power_cycl/);

  const post = (verb: string, fields: Record<string, string>, origin = url): Promise<Response> =>
    fetch(`${url}/ui/rollouts/${id}/${verb}`, { method: 'POST', headers: { cookie, origin, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(fields).toString(), redirect: 'manual' });
  // Without the CSRF token, or from another site, nothing changes.
  assert.equal((await post('pause', {})).status, 403);
  assert.equal((await post('pause', { _csrf: csrf }, 'https://evil.example')).status, 403);
  assert.equal(f.h.head.store.rollouts.get(id)!.state, 'running');

  const paused = await post('pause', { _csrf: csrf });
  assert.equal(paused.status, 303);
  assert.match(decodeURIComponent(paused.headers.get('location') ?? ''), /is paused/);
  assert.equal(f.h.head.store.rollouts.get(id)!.state, 'paused');
  assert.deepEqual(buttons(await get(`/ui/rollouts/${id}`)), ['resume', 'cancel']);
  // A verb the state does not allow is refused by the orchestrator and said on the page.
  const promoted = await post('promote', { _csrf: csrf });
  assert.match(decodeURIComponent(promoted.headers.get('location') ?? ''), /promote is for a rollout waiting/);
  assert.equal(f.h.head.store.rollouts.get(id)!.state, 'paused');

  assert.equal((await post('resume', { _csrf: csrf })).status, 303);
  assert.equal(f.h.head.store.rollouts.get(id)!.state, 'running');
  assert.equal((await post('cancel', { _csrf: csrf })).status, 303);
  assert.equal(f.h.head.store.rollouts.get(id)!.state, 'cancelled');
  assert.match(await get(`/ui/rollouts/${id}`), /This rollout is over/);
  assert.equal((await post('nonsense', { _csrf: csrf })).status, 404);
});
