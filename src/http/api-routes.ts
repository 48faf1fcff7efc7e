// The /api/v1 route table: each route's method, path, summary, auth, request body and
// response schemas, written once in zod. GET /api/v1/openapi.json is generated from it
// (openapi.ts); test/openapi.test.ts checks the table against the routes express really has.
import { z } from 'zod';
import { powerActions } from '../rollout/node-power.ts';
import { rolloutSpecSchema } from '../rollout/plan.ts';
import { checkinSchema } from '../nodeconfig/sysinfo.ts';
import { describeIssues } from '../nodeconfig/network.ts';
import { HttpError } from './errors.ts';

/** bearer: the API token; node: the node's own token (bearer header or `?token=`, optional for a first check-in); none. */
export type ApiAuth = 'bearer' | 'node' | 'none';
export type ApiMethod = 'get' | 'post';

export interface ApiRoute {
  method: ApiMethod;
  /** Express syntax (`:id`), relative to /api/v1. */
  path: string;
  summary: string;
  auth: ApiAuth;
  body?: z.ZodType;
  /** Status code → response body schema. */
  responses: Record<number, z.ZodType>;
}

/** errors.ts: every failure is {"error": {"code", "message"}}. */
export const errorSchema = z.object({ error: z.object({ code: z.string(), message: z.string() }) }).meta({ id: 'Error' });

/** admin-api.ts nodeView(): extra keys allowed so a new field does not break clients. */
export const nodeSchema = z
  .looseObject({
    id: z.number().int(),
    uuid: z.string().nullable(),
    hostname: z.string().nullable(),
    state: z.string(),
    bootPlatform: z.string().nullable(),
    currentPlatform: z.string().nullable(),
    previousPlatform: z.string().nullable(),
    lastBoot: z.string().nullable(),
    lastSeen: z.string().nullable(),
    nics: z.array(z.looseObject({ mac: z.string(), admin: z.boolean() })),
    createdAt: z.string().nullable(),
    updatedAt: z.string().nullable(),
  })
  .meta({ id: 'Node' });

/** rollout/verbs.ts RolloutView. */
export const rolloutSchema = z.looseObject({ id: z.number().int(), state: z.string() }).meta({ id: 'Rollout' });
const planSchema = z.looseObject({ waves: z.array(z.looseObject({ nodes: z.array(z.looseObject({ nodeId: z.number().int() })) })) }).meta({ id: 'RolloutPlan' });
const nodeBody = z.object({ node: nodeSchema });
const rolloutBody = z.object({ rollout: rolloutSchema });

/** Request bodies the routes parse with (validBody below) and the document describes. */
export const bodies = {
  set: z.object({ set: z.array(z.string(), { error: 'expected an array of "key=value" strings' }) }),
  platform: z.object({
    stamp: z.string({ error: 'expected the stamp of an imported platform' }).min(1, { error: 'expected the stamp of an imported platform' }),
    force: z.boolean({ error: 'expected true or false' }).optional(),
  }),
  power: z.object({ action: z.enum(powerActions, { error: `expected one of ${powerActions.join(', ')}` }) }),
} as const;

/** Parses a request body with its route's schema: a 400 naming the bad fields (errors.ts shape) otherwise. */
export function validBody<S extends z.ZodType>(schema: S, body: unknown): z.output<S> {
  const r = schema.safeParse(body ?? {});
  if (!r.success) throw new HttpError(400, 'bad_request', describeIssues(r.error));
  return r.data;
}

const checkinReply = z.object({ node: z.object({ id: z.number().int(), state: z.string(), hostname: z.string().nullable() }) });
const notFound = { 404: errorSchema };
const badRequest = { 400: errorSchema };

export const apiRoutes: readonly ApiRoute[] = [
  { method: 'get', path: '/openapi.json', summary: 'This OpenAPI 3.1 document', auth: 'none', responses: { 200: z.looseObject({ openapi: z.string() }) } },
  {
    method: 'post',
    path: '/nodes/checkin',
    summary: "A node agent's check-in report (201 when it registers the machine)",
    auth: 'node',
    body: checkinSchema,
    responses: { 200: checkinReply, 201: checkinReply, ...badRequest, 403: errorSchema, 413: errorSchema },
  },
  {
    method: 'get',
    path: '/counters',
    summary: "The head node's counters since it started (HeadNodeCounters)",
    auth: 'bearer',
    responses: { 200: z.looseObject({ startedAt: z.string(), dhcp: z.looseObject({}).nullable(), tftp: z.looseObject({}).nullable(), store: z.looseObject({}) }), ...notFound },
  },
  { method: 'get', path: '/nodes', summary: 'Every registered node', auth: 'bearer', responses: { 200: z.object({ nodes: z.array(nodeSchema) }) } },
  { method: 'get', path: '/nodes/:id', summary: 'One node (id, UUID, MAC or hostname) and its timeline', auth: 'bearer', responses: { 200: z.object({ node: nodeSchema, timeline: z.array(z.looseObject({ at: z.string() })) }), ...notFound } },
  { method: 'post', path: '/nodes/:id/setup', summary: "Set a node's network and zpool layout", auth: 'bearer', body: z.looseObject({ network: z.unknown().optional(), zpool: z.unknown().optional() }), responses: { 200: nodeBody, ...badRequest, ...notFound } },
  { method: 'post', path: '/nodes/:id/set', summary: 'Set node fields from key=value strings', auth: 'bearer', body: bodies.set, responses: { 200: nodeBody, ...badRequest, ...notFound } },
  {
    method: 'post',
    path: '/nodes/:id/platform',
    summary: 'Assign an imported platform to a node',
    auth: 'bearer',
    body: bodies.platform,
    responses: { 200: z.object({ node: nodeSchema, changed: z.boolean() }), ...badRequest, ...notFound, 409: errorSchema },
  },
  {
    method: 'post',
    path: '/nodes/:id/power',
    summary: 'Run a power action through the node power driver',
    auth: 'bearer',
    body: bodies.power,
    responses: { 200: z.looseObject({ node: z.number().int() }), 202: z.looseObject({ node: z.number().int(), instructions: z.string() }), ...badRequest, ...notFound, 409: errorSchema, 502: errorSchema },
  },
  { method: 'post', path: '/nodes/:id/retire', summary: 'Retire a node', auth: 'bearer', responses: { 200: nodeBody, ...notFound } },
  {
    method: 'get',
    path: '/nodes/:id/config',
    summary: "A node's rendered zpool plan, boot arguments and config modules",
    auth: 'bearer',
    responses: { 200: z.looseObject({ zpoolPlan: z.unknown(), zpoolError: z.string().nullable(), bootArgs: z.unknown(), modules: z.unknown() }), ...notFound },
  },
  { method: 'get', path: '/rollouts', summary: 'Every rollout (without steps)', auth: 'bearer', responses: { 200: z.object({ rollouts: z.array(rolloutSchema) }) } },
  { method: 'post', path: '/rollouts/plan', summary: 'Plan a rollout (dry run)', auth: 'bearer', body: rolloutSpecSchema, responses: { 200: z.object({ plan: planSchema }), ...badRequest, 409: errorSchema } },
  { method: 'post', path: '/rollouts', summary: 'Start a rollout', auth: 'bearer', body: rolloutSpecSchema, responses: { 201: z.object({ rollout: rolloutSchema, plan: planSchema }), ...badRequest, 409: errorSchema } },
  { method: 'get', path: '/rollouts/:id', summary: 'One rollout with its steps', auth: 'bearer', responses: { 200: rolloutBody, ...notFound } },
  { method: 'post', path: '/rollouts/:id/:verb', summary: 'pause, resume, cancel or promote a rollout', auth: 'bearer', responses: { 200: rolloutBody, ...notFound, 409: errorSchema } },
  { method: 'post', path: '/dashboard/login-links', summary: 'A one-time dashboard login link (when the dashboard is served)', auth: 'bearer', responses: { 201: z.object({ path: z.string(), expiresAt: z.string() }) } },
];
