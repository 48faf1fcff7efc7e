// A rollout's plan (docs/design.md "Rolling upgrades") as a pure function of the spec, the fleet
// and the imported platforms, like boot/plan.ts: nodes, limits and boot time in, ordered
// waves out. The orchestrator only carries a stored plan out; formatters only print it.
import { z } from 'zod';
import { parseMac } from '../mac.ts';
import type { Nic, NodeRecord } from '../store/nodes.ts';
import type { PlatformRecord } from '../store/platforms.ts';
import { meaningfulUuid, uuidKey } from '../uuid.ts';

/** Nodes without the failure-domain trait share this one domain (see `failureDomain`). */
export const noDomain = '(none)';

const traitName = z.string().regex(/^[\w-]{1,64}$/, 'expected a trait name (letters, digits, _ and -)');
const seconds = (min: number) => z.number().int(`expected whole seconds`).min(min).max(7 * 24 * 3600);

/** `"25%"` of the nodes to upgrade: more than 0, at most 100. */
const percentText = /^(\d{1,3}(?:\.\d+)?)%$/;

const maxInFlightSchema = z
  .union([z.number(), z.string()], { error: 'expected a node count (1, 2, ...) or a percentage like "25%"' })
  .superRefine((v, ctx) => {
    if (typeof v === 'number') {
      if (!Number.isInteger(v) || v < 1) ctx.addIssue({ code: 'custom', message: `expected a whole number of nodes, at least 1, got ${v}` });
      return;
    }
    const m = percentText.exec(v);
    const p = m ? Number(m[1]) : NaN;
    if (!(p > 0 && p <= 100)) ctx.addIssue({ code: 'custom', message: `expected a percentage above 0% and at most 100%, like "25%", got ${JSON.stringify(v)}` });
  });

/** Which nodes a rollout names; stored as this JSON (migration 002's `selector` column). */
export type RolloutSelector = { all: true } | { nodes: string[] } | { trait: Record<string, string> };

/**
 * The selector as JSON or as an operator types it: `all`, `rack=b12` (several pairs with
 * commas, all must match), or node refs `cn1,cn2,52:54:00:12:34:56`.
 */
const selectorSchema = z.unknown().transform((value, ctx): RolloutSelector => {
  const fail = (message: string): never => {
    ctx.addIssue({ code: 'custom', message });
    return z.NEVER as never;
  };
  if (typeof value === 'string') {
    const parts = value.split(',').map((s) => s.trim()).filter((s) => s !== '');
    if (parts.length === 0) return fail('expected "all", a trait match like "rack=b12" or node refs like "cn1,cn2"');
    if (parts.length === 1 && parts[0] === 'all') return { all: true };
    if (parts.some((p) => p.includes('='))) {
      const trait: Record<string, string> = {};
      for (const p of parts) {
        const m = /^([\w-]{1,64})=(.+)$/.exec(p);
        if (!m) return fail(`expected trait=value pairs like "rack=b12", got ${JSON.stringify(p)}`);
        trait[m[1]!] = m[2]!;
      }
      return { trait };
    }
    return { nodes: [...new Set(parts)] };
  }
  const parsed = z
    .union([
      z.strictObject({ all: z.literal(true) }),
      z.strictObject({ nodes: z.array(z.string().min(1)).min(1, 'expected at least one node ref') }),
      z.strictObject({
        trait: z.record(traitName, z.string().min(1)).refine((t) => Object.keys(t).length > 0, 'expected at least one trait=value'),
      }),
    ])
    .safeParse(value);
  if (!parsed.success) return fail('expected "all", {"all": true}, {"nodes": ["cn1", ...]} or {"trait": {"rack": "b12"}}');
  const s = parsed.data;
  return 'nodes' in s ? { nodes: [...new Set(s.nodes)] } : s;
});

/**
 * What `fleetboot rollout plan/start` and `POST /api/v1/rollouts` accept. The parsed value
 * is plain JSON and parses to itself again, so it can be stored as is.
 */
export const rolloutSpecSchema = z.strictObject({
  /** The platform stamp every selected node should boot. */
  target: z.string().min(1, 'expected a platform stamp'),
  selector: selectorSchema,
  /** Nodes upgraded first, on their own; 0 for none. */
  canary: z.number().int('expected a whole number of nodes').min(0).default(1),
  /** Nodes rebooting at once: a count, or a percentage of the nodes to upgrade (at least 1). */
  maxInFlight: maxInFlightSchema.default(1),
  /**
   * At most `maxInFlight` nodes sharing the value of `trait` (a rack, a PDU) reboot at once.
   * Nodes without the trait count as one domain, "(none)": unlabelled nodes may share a rack.
   */
  failureDomain: z.strictObject({ trait: traitName, maxInFlight: z.number().int().min(1).default(1) }).optional(),
  /** Wait after a wave finishes before the next one starts. */
  soakSeconds: seconds(0).default(300),
  /** A node not back on the target this long after its reboot is rolled back. */
  bootDeadlineSeconds: seconds(1).default(900),
  /** Failed nodes tolerated; one more pauses the rollout. */
  failureBudget: z.number().int('expected a whole number of nodes').min(0).default(0),
  /** After the canaries: go on by itself, or wait for `fleetboot rollout promote`. */
  afterCanary: z.enum(['continue', 'promote']).default('promote'),
});
export type RolloutSpecInput = z.input<typeof rolloutSpecSchema>;
export type RolloutSpec = z.output<typeof rolloutSpecSchema>;

/** Why a plan cannot be made; `field` is the spec field to fix (a 4xx / CLI exit 2). */
export class RolloutPlanError extends Error {
  override readonly name = 'RolloutPlanError';
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
  }
}

/** Parses a spec from the wire or the CLI, throwing a RolloutPlanError naming the first bad field. */
export function parseRolloutSpec(input: unknown): RolloutSpec {
  const r = rolloutSpecSchema.safeParse(input);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  throw new RolloutPlanError(issue && issue.path.length > 0 ? issue.path.map(String).join('.') : '(top level)', issue?.message ?? 'invalid');
}

export interface PlannedNode {
  nodeId: number;
  /** Hostname, else admin MAC, else `node <id>`: what the operator recognises. */
  label: string;
  /** Its failure domain: the trait's value, `(none)`, or `(all)` with no failure domain set. */
  domain: string;
  /** What it boots now (null: the default platform): what a rollback assigns again. */
  bootPlatform: string | null;
  /** What it last reported running. */
  currentPlatform: string | null;
}

export interface RolloutWave {
  /** 1-based, in the order the waves run. */
  index: number;
  canary: boolean;
  nodes: PlannedNode[];
}

export interface LeftOutNode {
  nodeId: number;
  label: string;
  reason: string;
}

export interface RolloutPlan {
  spec: RolloutSpec;
  target: string;
  /** The resolved limit (a percentage turned into nodes). */
  maxInFlight: number;
  failureDomain: { trait: string; maxInFlight: number } | null;
  waves: RolloutWave[];
  /** Selected but not upgradable: retired, or never set up. */
  excluded: LeftOutNode[];
  /** Selected but already running and booting the target. */
  skipped: LeftOutNode[];
  /** Things an operator should know before starting; none stops the plan. */
  warnings: string[];
  estimate: RolloutEstimate;
}

export interface RolloutEstimate {
  /** Waves x boot time + soaks between waves; the wait for `promote` is not in it. */
  seconds: number;
  bootSeconds: number;
  /** Where `bootSeconds` came from: the deadline (an upper bound) or the caller's figure. */
  bootSecondsFrom: 'deadline' | 'observed';
  soaks: number;
  waitsForPromote: boolean;
}

export interface PlanOptions {
  /** A typical boot (reboot to check-in), e.g. a median from boot timelines; default: the deadline. */
  typicalBootSeconds?: number;
  /** The head node's concurrent boot limit (0: none): waves are no larger. */
  bootSlotLimit?: number;
}

/** What the planner reads of a node: a NodeRecord is one. */
export type PlannableNode = Pick<NodeRecord, 'id' | 'uuid' | 'hostname' | 'state' | 'bootPlatform' | 'currentPlatform' | 'networkConfig' | 'traits'> & {
  nics: readonly Pick<Nic, 'mac' | 'isAdmin'>[];
};

/** The name an operator knows a node by. */
export function nodeLabel(node: Pick<PlannableNode, 'id' | 'hostname' | 'nics'>): string {
  return node.hostname ?? node.nics.find((n) => n.isAdmin)?.mac ?? node.nics[0]?.mac ?? `node ${node.id}`;
}

/** Finds a node the way `NodeRepo.find` does (id, MAC of any NIC, UUID, hostname), over a list. */
function findNode<N extends PlannableNode>(nodes: readonly N[], ref: string): N | undefined {
  if (/^\d+$/.test(ref)) return nodes.find((n) => n.id === Number(ref));
  const mac = parseMac(ref);
  if (mac && /[:.-]/.test(ref)) return nodes.find((n) => n.nics.some((c) => c.mac === mac));
  const uuid = meaningfulUuid(ref);
  // Either SMBIOS byte order names the same machine (src/uuid.ts).
  if (uuid) return nodes.find((n) => n.uuid !== null && uuidKey(n.uuid.toLowerCase()) === uuidKey(uuid));
  return nodes.find((n) => n.hostname === ref) ?? (mac ? nodes.find((n) => n.nics.some((c) => c.mac === mac)) : undefined);
}

/** The selected nodes in selection order: the operator's order for a list, else by id. */
function select<N extends PlannableNode>(selector: RolloutSelector, nodes: readonly N[]): N[] {
  const byId = [...nodes].sort((a, b) => a.id - b.id);
  if ('all' in selector) return byId;
  if ('trait' in selector) {
    const want = Object.entries(selector.trait);
    return byId.filter((n) => want.every(([k, v]) => n.traits[k] === v));
  }
  const picked: N[] = [];
  const missing: string[] = [];
  for (const ref of selector.nodes) {
    const n = findNode(nodes, ref);
    if (!n) missing.push(ref);
    else if (!picked.includes(n)) picked.push(n);
  }
  if (missing.length > 0) {
    throw new RolloutPlanError('selector', `no node is ${missing.map((m) => JSON.stringify(m)).join(', ')} (a node ref is an id, MAC, UUID or hostname)`);
  }
  return picked;
}

function describeSelector(selector: RolloutSelector): string {
  if ('all' in selector) return 'all nodes';
  if ('trait' in selector) return Object.entries(selector.trait).map(([k, v]) => `${k}=${v}`).join(',');
  return selector.nodes.join(',');
}

/** Nodes a count or a percentage of `total` allows in flight: at least 1. */
export function resolveMaxInFlight(limit: number | string, total: number): number {
  if (typeof limit === 'number') {
    if (!Number.isInteger(limit) || limit < 1) throw new RolloutPlanError('maxInFlight', `expected at least 1 node, got ${limit}`);
    return limit;
  }
  const m = percentText.exec(limit);
  const p = m ? Number(m[1]) : NaN;
  if (!(p > 0 && p <= 100)) throw new RolloutPlanError('maxInFlight', `expected a percentage above 0% and at most 100%, got ${JSON.stringify(limit)}`);
  return Math.max(1, Math.floor((total * p) / 100));
}

/**
 * Packs nodes into waves of at most `max`, at most `perDomain` of one domain in each. Each
 * place goes to the domain with the most nodes left (ties: the domain seen first), which
 * spreads waves across domains and takes no more waves than the larger of
 * ceil(nodes / max) and ceil(biggest domain / perDomain).
 */
function packWaves(nodes: readonly PlannedNode[], max: number, perDomain: number): PlannedNode[][] {
  const queues = new Map<string, PlannedNode[]>();
  for (const n of nodes) {
    const q = queues.get(n.domain) ?? [];
    q.push(n);
    queues.set(n.domain, q);
  }
  const order = [...queues.keys()];
  const waves: PlannedNode[][] = [];
  let left = nodes.length;
  while (left > 0) {
    const wave: PlannedNode[] = [];
    const taken = new Map<string, number>();
    while (wave.length < max) {
      let best: string | null = null;
      for (const d of order) {
        const remaining = queues.get(d)!.length;
        if (remaining === 0 || (taken.get(d) ?? 0) >= perDomain) continue;
        if (best === null || remaining > queues.get(best)!.length) best = d;
      }
      if (best === null) break;
      wave.push(queues.get(best)!.shift()!);
      taken.set(best, (taken.get(best) ?? 0) + 1);
      left--;
    }
    waves.push(wave);
  }
  return waves;
}

/** The canaries: one node from each domain in turn, in selection order, so they span domains. */
function pickCanaries(nodes: readonly PlannedNode[], count: number): Set<PlannedNode> {
  const queues = new Map<string, PlannedNode[]>();
  for (const n of nodes) queues.set(n.domain, [...(queues.get(n.domain) ?? []), n]);
  const picked = new Set<PlannedNode>();
  while (picked.size < count) {
    for (const q of queues.values()) {
      const n = q.shift();
      if (n && picked.size < count) picked.add(n);
    }
  }
  return picked;
}

/**
 * Plans a rollout. Refuses (RolloutPlanError naming the field) an unknown target platform,
 * a selection with no node to upgrade, a canary count above the nodes to upgrade and a bad
 * max-in-flight. Retired nodes and nodes never set up (`discovered`, no network config) are
 * excluded; nodes already running and booting the target are skipped; both are listed.
 */
export function planRollout(
  spec: RolloutSpec,
  nodes: readonly PlannableNode[],
  platforms: readonly Pick<PlatformRecord, 'stamp'>[],
  options: PlanOptions = {},
): RolloutPlan {
  if (!platforms.some((p) => p.stamp === spec.target)) {
    const known = platforms.map((p) => p.stamp);
    throw new RolloutPlanError(
      'target',
      `platform ${JSON.stringify(spec.target)} is not imported (${known.length > 0 ? `imported: ${known.join(', ')}` : 'none is imported'}; see \`fleetboot platform list\`)`,
    );
  }
  const selected = select(spec.selector, nodes);
  if (selected.length === 0) throw new RolloutPlanError('selector', `${describeSelector(spec.selector)} matches no node`);

  const excluded: LeftOutNode[] = [];
  const skipped: LeftOutNode[] = [];
  const warnings: string[] = [];
  const domainTrait = spec.failureDomain?.trait ?? null;
  const toUpgrade: PlannedNode[] = [];
  for (const n of selected) {
    const label = nodeLabel(n);
    if (n.state === 'retired') excluded.push({ nodeId: n.id, label, reason: 'retired' });
    else if (n.state === 'discovered' && n.networkConfig == null) excluded.push({ nodeId: n.id, label, reason: 'never set up (discovered, no network config)' });
    else if (n.currentPlatform === spec.target && n.bootPlatform === spec.target) skipped.push({ nodeId: n.id, label, reason: `already runs ${spec.target}` });
    else {
      const domain = domainTrait === null ? '(all)' : (n.traits[domainTrait] ?? noDomain);
      toUpgrade.push({ nodeId: n.id, label, domain, bootPlatform: n.bootPlatform, currentPlatform: n.currentPlatform });
      if (n.state === 'unknown' || n.state === 'failed') warnings.push(`${label} is ${n.state}; it may not check in before its deadline`);
    }
  }
  if (toUpgrade.length === 0) {
    const why = [skipped.length > 0 ? `${skipped.length} already on ${spec.target}` : '', excluded.length > 0 ? `${excluded.length} excluded` : '']
      .filter((s) => s !== '')
      .join(', ');
    throw new RolloutPlanError('selector', `${describeSelector(spec.selector)}: no node to upgrade (${why})`);
  }
  if (spec.canary > toUpgrade.length) {
    throw new RolloutPlanError('canary', `${spec.canary} canaries but only ${toUpgrade.length} node${toUpgrade.length === 1 ? '' : 's'} to upgrade`);
  }
  const asked = resolveMaxInFlight(spec.maxInFlight, toUpgrade.length);
  // A wave larger than the head node's boot slots (boot/boot-slots.ts) would only queue in
  // iPXE and run into its boot deadline: waves are sized to what the head node admits at once.
  const slots = options.bootSlotLimit ?? 0;
  const maxInFlight = slots > 0 && asked > slots ? slots : asked;
  if (maxInFlight < asked) warnings.push(`max in flight ${asked} is above the head node's ${slots} concurrent boots (boot.admission.maxConcurrentBoots): waves of ${slots}`);
  const perDomain = spec.failureDomain ? spec.failureDomain.maxInFlight : maxInFlight;
  if (domainTrait !== null) {
    const unlabelled = toUpgrade.filter((n) => n.domain === noDomain).length;
    if (unlabelled > 0) warnings.push(`${unlabelled} node${unlabelled === 1 ? ' has' : 's have'} no ${domainTrait} trait; they share one failure domain "${noDomain}"`);
  }

  const canaries = pickCanaries(toUpgrade, spec.canary);
  const canaryOrder = toUpgrade.filter((n) => canaries.has(n));
  const rest = toUpgrade.filter((n) => !canaries.has(n));
  const groups = [
    ...packWaves(canaryOrder, maxInFlight, perDomain).map((w) => ({ canary: true, nodes: w })),
    ...packWaves(rest, maxInFlight, perDomain).map((w) => ({ canary: false, nodes: w })),
  ];
  const waves = groups.map((g, i) => ({ index: i + 1, canary: g.canary, nodes: g.nodes }));

  const bootSeconds = options.typicalBootSeconds ?? spec.bootDeadlineSeconds;
  const soaks = waves.length - 1;
  return {
    spec,
    target: spec.target,
    maxInFlight,
    failureDomain: spec.failureDomain ? { trait: spec.failureDomain.trait, maxInFlight: spec.failureDomain.maxInFlight } : null,
    waves,
    excluded,
    skipped,
    warnings,
    estimate: {
      seconds: waves.length * bootSeconds + soaks * spec.soakSeconds,
      bootSeconds,
      bootSecondsFrom: options.typicalBootSeconds === undefined ? 'deadline' : 'observed',
      soaks,
      waitsForPromote: spec.afterCanary === 'promote' && spec.canary > 0 && waves.some((w) => !w.canary),
    },
  };
}

/** `90 s`, `15 min`, `2 h 5 min`: durations as an operator reads them. */
export function formatDuration(totalSeconds: number): string {
  const s = Math.round(totalSeconds);
  if (s < 120) return `${s} s`;
  const h = Math.floor(s / 3600);
  const min = Math.round((s % 3600) / 60);
  if (h === 0) return `${min} min`;
  return min === 0 ? `${h} h` : `${h} h ${min} min`;
}

/** `rollout plan` output: the limits, each wave in order, what is left out, and the estimate. */
export function formatRolloutPlan(plan: RolloutPlan): string {
  const { spec, estimate } = plan;
  const upgrading = plan.waves.reduce((n, w) => n + w.nodes.length, 0);
  const canaryWaves = plan.waves.filter((w) => w.canary).length;
  const lines: string[] = [];
  lines.push(
    `rollout of ${plan.target}: ${upgrading} node${upgrading === 1 ? '' : 's'} in ${plan.waves.length} wave${plan.waves.length === 1 ? '' : 's'}` +
      `${canaryWaves > 0 ? ` (${canaryWaves} canary)` : ''}, about ${formatDuration(estimate.seconds)}`,
  );
  const limit = typeof spec.maxInFlight === 'string' ? `${plan.maxInFlight} (${spec.maxInFlight} of ${upgrading})` : String(plan.maxInFlight);
  const domain = plan.failureDomain ? `, at most ${plan.failureDomain.maxInFlight} per ${plan.failureDomain.trait}` : '';
  lines.push(`  max in flight ${limit}${domain}; soak ${formatDuration(spec.soakSeconds)}; boot deadline ${formatDuration(spec.bootDeadlineSeconds)}; failure budget ${spec.failureBudget}`);
  if (spec.canary > 0) {
    lines.push(`  after the canaries: ${spec.afterCanary === 'promote' ? 'wait for `fleetboot rollout promote`' : 'continue'}; a canary failure stops the rollout`);
  }
  lines.push('');
  const width = String(plan.waves.length).length;
  for (const w of plan.waves) {
    const names = w.nodes.map((n) => (plan.failureDomain ? `${n.label} (${plan.failureDomain.trait} ${n.domain})` : n.label));
    lines.push(`  wave ${String(w.index).padStart(width)}${w.canary ? ' canary' : '       '}  ${names.join(', ')}`);
  }
  if (plan.skipped.length > 0) {
    lines.push('', `skipped (${plan.skipped.length}):`);
    for (const n of plan.skipped) lines.push(`  ${n.label}: ${n.reason}`);
  }
  if (plan.excluded.length > 0) {
    lines.push('', `excluded (${plan.excluded.length}):`);
    for (const n of plan.excluded) lines.push(`  ${n.label}: ${n.reason}`);
  }
  if (plan.warnings.length > 0) {
    lines.push('', 'warnings:');
    for (const w of plan.warnings) lines.push(`  ${w}`);
  }
  const bootFrom = estimate.bootSecondsFrom === 'deadline' ? 'the boot deadline, an upper bound' : 'observed';
  lines.push(
    '',
    `estimate: ${plan.waves.length} wave${plan.waves.length === 1 ? '' : 's'} x ${formatDuration(estimate.bootSeconds)} boot (${bootFrom})` +
      ` + ${estimate.soaks} soak${estimate.soaks === 1 ? '' : 's'} x ${formatDuration(spec.soakSeconds)} = ${formatDuration(estimate.seconds)}` +
      `${estimate.waitsForPromote ? ', plus the wait for promote' : ''}`,
  );
  return `${lines.join('\n')}\n`;
}
