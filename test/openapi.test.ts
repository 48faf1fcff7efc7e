import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Router } from 'express';
import { adminApi } from '../src/http/admin-api.ts';
import { apiRoutes, type ApiRoute } from '../src/http/api-routes.ts';
import { nodeAdminRoutes, nodeRoutes } from '../src/http/node-api.ts';
import { openApiPath } from '../src/http/openapi.ts';
import { rolloutRoutes } from '../src/http/rollout-api.ts';
import { parseMac } from '../src/mac.ts';
import { silentLogger } from '../src/log.ts';
import { startHeadNode, tempDir } from './fixtures.ts';
import { checkinReport } from './node-fixtures.ts';

type Json = Record<string, unknown>;
interface Layer {
  route?: { path: string; methods: Record<string, boolean> };
}

/** `METHOD /path` of every route an express 5 Router declares (router.stack[].route). */
function declared(router: Router, prefix: string): string[] {
  const out: string[] = [];
  for (const layer of (router as unknown as { stack: Layer[] }).stack) {
    if (!layer.route) continue;
    for (const [m, on] of Object.entries(layer.route.methods)) if (on) out.push(`${m} ${prefix}${layer.route.path}`);
  }
  return out;
}

const key = (r: Pick<ApiRoute, 'method' | 'path'>): string => `${r.method} ${r.path}`;

test('every /api/v1 route express declares is in the route table and the document, and vice versa', async (t) => {
  const { head, url } = await startHeadNode(t, tempDir(t));
  const deps = { config: head.config, store: head.store, log: silentLogger, templates: head.templates };
  const onApp = [
    ...declared(adminApi(head.store), ''),
    ...declared(nodeAdminRoutes(deps), ''),
    ...declared(rolloutRoutes({ store: head.store, log: silentLogger }), ''),
    ...declared(nodeRoutes(deps), '').filter((k) => k.includes(' /api/v1/')).map((k) => k.replace(' /api/v1/', ' /')),
    // Declared on the app itself in app.ts.
    'get /openapi.json',
    'post /dashboard/login-links',
  ].sort();
  assert.deepEqual([...apiRoutes.map(key)].sort(), onApp);

  const doc = (await (await fetch(`${url}/api/v1/openapi.json`)).json()) as { paths: Record<string, Record<string, unknown>> };
  const documented = Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m} ${p}`)).sort();
  assert.deepEqual(documented, apiRoutes.map((r) => `${r.method} /api/v1${openApiPath(r.path)}`).sort());
});

test('GET /api/v1/openapi.json needs no token and is a structurally valid OpenAPI 3.1.0 document', async (t) => {
  const { url } = await startHeadNode(t, tempDir(t));
  const res = await fetch(`${url}/api/v1/openapi.json`);
  assert.equal(res.status, 200);
  const doc = (await res.json()) as Json;
  assert.equal(doc.openapi, '3.1.0');
  const info = doc.info as Json;
  assert.equal(typeof info.title, 'string');
  assert.equal(typeof info.version, 'string');
  const components = doc.components as { schemas: Record<string, Json>; securitySchemes: Record<string, Json> };
  assert.deepEqual(components.securitySchemes.bearer, { type: 'http', scheme: 'bearer', description: 'the API token' });
  const schemes = new Set(Object.keys(components.securitySchemes));
  const operationIds = new Set<string>();
  // Every $ref resolves inside the document (OAS 3.1.0 §4.8.23 Reference Object).
  const refs = (v: unknown): string[] =>
    v === null || typeof v !== 'object' ? [] : Object.entries(v as Json).flatMap(([k, x]) => (k === '$ref' && typeof x === 'string' ? [x] : refs(x)));
  for (const ref of refs(doc)) {
    const m = /^#\/components\/schemas\/(.+)$/.exec(ref);
    assert.ok(m && components.schemas[m[1]!], `dangling $ref ${ref}`);
  }
  for (const [name, schema] of Object.entries(components.schemas)) assert.notEqual(schema.$ref, `#/components/schemas/${name}`, `${name} refers to itself`);
  for (const [path, ops] of Object.entries(doc.paths as Record<string, Record<string, Json>>)) {
    assert.match(path, /^\/[\w/{}.-]*$/);
    const templated = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
    for (const [method, op] of Object.entries(ops)) {
      assert.ok(['get', 'post', 'put', 'delete', 'patch'].includes(method), method);
      assert.equal(typeof op.summary, 'string');
      assert.ok(!operationIds.has(op.operationId as string), `duplicate operationId ${String(op.operationId)}`);
      operationIds.add(op.operationId as string);
      // §4.8.12.1: every templated path segment has a required path parameter.
      const params = ((op.parameters ?? []) as { name: string; in: string; required: boolean }[]).filter((p) => p.in === 'path');
      assert.deepEqual(params.map((p) => p.name).sort(), templated, path);
      assert.ok(params.every((p) => p.required));
      for (const req of (op.security ?? []) as Json[]) for (const s of Object.keys(req)) assert.ok(schemes.has(s), `${path}: unknown security scheme ${s}`);
      const responses = op.responses as Record<string, Json>;
      assert.ok(Object.keys(responses).length > 0);
      for (const [status, r] of Object.entries(responses)) {
        assert.match(status, /^[1-5]\d\d$/);
        assert.equal(typeof r.description, 'string');
        assert.ok(((r.content as Json)['application/json'] as Json).schema, `${method} ${path} ${status}: no schema`);
      }
    }
  }
});

/** Validates a real response against the table's zod schema for that route and status. */
function checkResponse(method: ApiRoute['method'], path: string, status: number, body: unknown): void {
  const route = apiRoutes.find((r) => r.method === method && r.path === path);
  assert.ok(route, `${method} ${path} not in the table`);
  const schema = route.responses[status];
  assert.ok(schema, `${method} ${path}: status ${status} undocumented (${JSON.stringify(body)})`);
  const r = schema.safeParse(body);
  assert.ok(r.success, `${method} ${path} ${status}: ${r.success ? '' : r.error.message}`);
}

test('real responses validate against the documented schemas; a bad body is a 400 naming the field', async (t) => {
  const { head, url, token } = await startHeadNode(t, tempDir(t));
  const mac = parseMac('52:54:00:12:34:57')!;
  const { node } = head.store.nodes.discover({ mac, uuid: '6b4a3e5c-0d3f-4f0e-9d7a-2f6c1b2a3c4e' });
  const call = async (method: ApiRoute['method'], path: string, concrete: string, body?: unknown, auth = true): Promise<{ status: number; json: unknown }> => {
    const res = await fetch(`${url}/api/v1${concrete}`, {
      method: method.toUpperCase(),
      headers: { ...(auth ? { authorization: `Bearer ${token}` } : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const json: unknown = await res.json();
    checkResponse(method, path, res.status, json);
    return { status: res.status, json };
  };
  const id = String(node.id);
  assert.equal((await call('get', '/openapi.json', '/openapi.json')).status, 200);
  assert.equal((await call('get', '/counters', '/counters')).status, 200);
  assert.equal((await call('get', '/nodes', '/nodes')).status, 200);
  assert.equal((await call('get', '/nodes/:id', `/nodes/${id}`)).status, 200);
  assert.equal((await call('get', '/nodes/:id', '/nodes/nope')).status, 404);
  assert.equal((await call('get', '/nodes/:id/config', `/nodes/${id}/config`)).status, 200);
  assert.equal((await call('post', '/nodes/:id/set', `/nodes/${id}/set`, { set: ['hostname=cn9'] })).status, 200);
  assert.equal((await call('post', '/nodes/:id/platform', `/nodes/${id}/platform`, { stamp: 'no-such-stamp' })).status, 400);
  assert.equal((await call('post', '/nodes/:id/power', `/nodes/${id}/power`, { action: 'status' })).status, 409);
  assert.equal((await call('get', '/rollouts', '/rollouts')).status, 200);
  assert.equal((await call('get', '/rollouts/:id', '/rollouts/99')).status, 404);
  assert.equal((await call('post', '/rollouts/:id/:verb', '/rollouts/99/pause')).status, 404);
  assert.equal((await call('post', '/nodes/:id/setup', `/nodes/${id}/setup`, { network: { hostname: 'cn9', nics: [{ mac, tags: ['admin'] }], interfaces: [] } })).status, 200);
  assert.equal((await call('post', '/nodes/:id/setup', `/nodes/${id}/setup`, { network: { nics: 'x' } })).status, 400);
  assert.equal((await call('post', '/rollouts/plan', '/rollouts/plan', {})).status, 400);
  assert.equal((await call('post', '/rollouts', '/rollouts', {})).status, 400);
  assert.equal((await call('post', '/dashboard/login-links', '/dashboard/login-links')).status, 201);
  const checkin = checkinReport(parseMac('52:54:00:12:34:58')!);
  assert.equal((await call('post', '/nodes/checkin', '/nodes/checkin', checkin, false)).status, 201);
  assert.equal((await call('post', '/nodes/checkin', '/nodes/checkin', { ...checkin, cpu: 'x' }, false)).status, 400);
  assert.equal((await call('post', '/nodes/:id/retire', `/nodes/${id}/retire`)).status, 200);

  for (const [path, concrete, body, field] of [
    ['/nodes/:id/power', `/nodes/${id}/power`, { action: 'explode' }, 'action'],
    ['/nodes/:id/platform', `/nodes/${id}/platform`, { stamp: 'x', force: 'yes' }, 'force'],
    ['/nodes/:id/set', `/nodes/${id}/set`, { set: 'hostname=x' }, 'set'],
  ] as const) {
    const r = await call('post', path, concrete, body);
    assert.equal(r.status, 400, JSON.stringify(r.json));
    assert.match((r.json as { error: { message: string } }).error.message, new RegExp(`^${field}\\b`));
  }
});
