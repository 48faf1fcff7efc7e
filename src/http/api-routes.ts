// The /api/v1 route table: each route's method, path, summary, auth, request body and
// response schemas, written once in zod. GET /api/v1/openapi.json is generated from it
// (openapi.ts); test/openapi.test.ts checks the table against the routes express really has.
import { z } from 'zod';
import { powerActions } from '../rollout/node-power.ts';
import { rolloutSpecSchema } from '../rollout/plan.ts';
import { checkinSchema } from '../nodeconfig/sysinfo.ts';
import { describeIssues, nodeNetworkSchema, setupNetworkSchema } from '../nodeconfig/network.ts';
import { zpoolLayoutSchema } from '../nodeconfig/zpool.ts';
import { rolloutStates, stepStates } from '../rollout/journal.ts';
import { nodeStates } from '../store/nodes.ts';
import { uuidSources } from '../uuid.ts';
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

const iso = z.string().describe('ISO 8601 time');
const isoOrNull = iso.nullable();

/**
 * admin-api.ts nodeView(), every field. Extra keys are allowed (a field added later does not
 * break a client); test/openapi.test.ts checks that a real node has no key this does not name.
 * The network and zpool plans are the documents `node setup` takes (the same schemas).
 */
export const nodeSchema = z
  .looseObject({
    id: z.number().int(),
    uuid: z.string().nullable(),
    uuidSources: z.partialRecord(z.enum(uuidSources), z.string()).describe('the UUID as each source spelled it: DHCP option 97, iPXE, the OS'),
    hostname: z.string().nullable(),
    state: z.enum(nodeStates),
    bootPlatform: z.string().nullable().describe('the platform it boots next (null: the default)'),
    currentPlatform: z.string().nullable().describe('the platform it last reported running'),
    previousPlatform: z.string().nullable(),
    arch: z.string().nullable(),
    serial: z.string().nullable(),
    lastBoot: isoOrNull,
    lastSeen: isoOrNull,
    traits: z.record(z.string(), z.string()),
    power: z.looseObject({ kind: z.string() }).nullable().describe('how its power is driven (secrets are file references, never values)'),
    nics: z.array(
      z.object({
        mac: z.string(),
        nicTag: z.string().nullable(),
        ip: z.string().nullable(),
        network: z.string().nullable(),
        vlan: z.number().int().nullable(),
        mtu: z.number().int().nullable(),
        admin: z.boolean(),
      }),
    ),
    sysinfo: z.record(z.string(), z.unknown()).nullable().describe('what the node reported at its last check-in'),
    networkConfig: nodeNetworkSchema.nullable(),
    zpoolConfig: zpoolLayoutSchema.nullable(),
    createdAt: isoOrNull,
    updatedAt: isoOrNull,
  })
  .meta({ id: 'Node' });

const rolloutSummarySchema = z.object({
  verified: z.number().int(),
  inFlight: z.number().int(),
  failed: z.number().int(),
  pending: z.number().int(),
  reverted: z.number().int(),
  wave: z.number().int().nullable().describe('the wave whose turn it is; null when every step is over'),
  waves: z.number().int(),
  waitingFor: z.string(),
});

const rolloutStepSchema = z.object({
  nodeId: z.number().int(),
  label: z.string(),
  wave: z.number().int(),
  canary: z.boolean(),
  domain: z.string(),
  state: z.enum(stepStates),
  reason: z.string().nullable(),
  previousPlatform: z.string().nullable(),
  previousRunning: z.string().nullable(),
  rebootAt: isoOrNull,
  startedAt: isoOrNull,
  finishedAt: isoOrNull,
});

/** rollout/verbs.ts RolloutView, every field; `steps` only where a route says so. */
export const rolloutSchema = z
  .looseObject({
    id: z.number().int(),
    target: z.string(),
    state: z.enum(rolloutStates),
    reason: z.string().nullable(),
    spec: rolloutSpecSchema,
    maxInFlight: z.number().int(),
    failureDomain: z.object({ trait: z.string(), maxInFlight: z.number().int() }).nullable(),
    promotedAt: isoOrNull,
    acceptedFailures: z.number().int(),
    createdAt: isoOrNull,
    updatedAt: isoOrNull,
    summary: rolloutSummarySchema,
    steps: z.array(rolloutStepSchema).optional(),
  })
  .meta({ id: 'Rollout' });

const plannedNodeSchema = z.object({ nodeId: z.number().int(), label: z.string(), domain: z.string(), bootPlatform: z.string().nullable(), currentPlatform: z.string().nullable() });
const leftOutSchema = z.object({ nodeId: z.number().int(), label: z.string(), reason: z.string() });

/** rollout/plan.ts RolloutPlan. */
const planSchema = z
  .looseObject({
    spec: rolloutSpecSchema,
    target: z.string(),
    maxInFlight: z.number().int(),
    failureDomain: z.object({ trait: z.string(), maxInFlight: z.number().int() }).nullable(),
    waves: z.array(z.object({ index: z.number().int(), canary: z.boolean(), nodes: z.array(plannedNodeSchema) })),
    excluded: z.array(leftOutSchema),
    skipped: z.array(leftOutSchema),
    warnings: z.array(z.string()),
    estimate: z.object({
      seconds: z.number(),
      bootSeconds: z.number(),
      bootSecondsFrom: z.enum(['deadline', 'observed']),
      soaks: z.number().int(),
      waitsForPromote: z.boolean(),
    }),
  })
  .meta({ id: 'RolloutPlan' });
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
  /**
   * node-api.ts hands `network` to nodeconfig's parseNodeNetwork and `zpool` to parseZpoolSpec /
   * parseZpoolLayout, which validate with these same schemas (and name the bad field).
   */
  setup: z.strictObject({
    network: setupNetworkSchema,
    zpool: z.union([z.string().describe('a zpool spec, e.g. "mirror,spares=1"'), zpoolLayoutSchema]).optional(),
  }),
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
  { method: 'post', path: '/nodes/:id/setup', summary: "Set a node's network and zpool layout", auth: 'bearer', body: bodies.setup, responses: { 200: nodeBody, ...badRequest, ...notFound } },
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
