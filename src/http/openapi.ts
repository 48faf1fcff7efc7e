// Builds the OpenAPI 3.1.0 document (https://spec.openapis.org/oas/v3.1.0) from api-routes.ts.
// Schemas come from zod 4's z.toJSONSchema(), which emits JSON Schema draft 2020-12, the
// dialect OpenAPI 3.1 schema objects use (OAS 3.1.0 §4.8.24). Schemas carrying a zod `id`
// meta go under components.schemas and are referenced.
import { z } from 'zod';
import { apiRoutes, type ApiRoute } from './api-routes.ts';

type Json = Record<string, unknown>;

/** `/nodes/:id` → `/nodes/{id}` (OAS 3.1.0 §4.8.8 path templating). */
export function openApiPath(expressPath: string): string {
  return expressPath.replace(/:([A-Za-z_]\w*)/g, '{$1}');
}

/** zod puts schemas with an `id` under `$defs`; the document keeps them in components.schemas. */
function relocateRefs(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(relocateRefs);
  if (v === null || typeof v !== 'object') return v;
  return Object.fromEntries(
    Object.entries(v).map(([k, x]) => [k, k === '$ref' && typeof x === 'string' ? x.replace(/^#\/\$defs\//, '#/components/schemas/') : relocateRefs(x)]),
  );
}

export function openApiDocument(version: string, routes: readonly ApiRoute[] = apiRoutes): Json {
  const components: Json = {};
  const schema = (s: z.ZodType, io: 'input' | 'output'): Json => {
    const out = relocateRefs(z.toJSONSchema(s, { target: 'draft-2020-12', io, unrepresentable: 'any' })) as Json;
    const defs = (out.$defs ?? {}) as Json;
    for (const [k, v] of Object.entries(defs)) components[k] = v;
    delete out.$defs;
    delete out.$schema;
    // A top-level schema with an id: move it to components and reference it.
    const id = (z.globalRegistry.get(s) as { id?: string } | undefined)?.id;
    if (id) {
      // zod emits a schema with an id as a $ref to its own $defs entry, copied above.
      if (out.$ref !== `#/components/schemas/${id}`) {
        delete out.id;
        components[id] = out;
      }
      return { $ref: `#/components/schemas/${id}` };
    }
    return out;
  };
  const paths: Record<string, Json> = {};
  for (const r of routes) {
    const p = `/api/v1${openApiPath(r.path)}`;
    const params = [...r.path.matchAll(/:([A-Za-z_]\w*)/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } }));
    const op: Json = {
      operationId: `${r.method}${openApiPath(r.path).replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ?? '').toUpperCase())}`,
      summary: r.summary,
      security: r.auth === 'bearer' ? [{ bearer: [] }] : r.auth === 'node' ? [{}, { nodeToken: [] }, { nodeTokenQuery: [] }] : [],
      responses: Object.fromEntries(Object.entries(r.responses).map(([status, s]) => [status, { description: Number(status) < 400 ? 'success' : 'error', content: { 'application/json': { schema: schema(s, 'output') } } }])),
    };
    if (params.length > 0) op.parameters = params;
    if (r.body) op.requestBody = { required: true, content: { 'application/json': { schema: schema(r.body, 'input') } } };
    paths[p] = { ...(paths[p] ?? {}), [r.method]: op };
  }
  return {
    openapi: '3.1.0',
    info: { title: 'fleetboot head-node API', version },
    servers: [{ url: '/' }],
    security: [{ bearer: [] }],
    paths,
    components: { schemas: components, securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'the API token' },
        nodeToken: { type: 'http', scheme: 'bearer', description: "a node's own token, issued at its first check-in" },
        nodeTokenQuery: { type: 'apiKey', in: 'query', name: 'token', description: "a node's own token as ?token=" },
      } },
  };
}
