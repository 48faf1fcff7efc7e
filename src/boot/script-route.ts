// GET /boot/node.ipxe?mac=..&uuid=..&serial=..&arch=..: the per-node script stage1.ipxe
// chains to (docs/design.md "The boot path" §3-4). Asks admission whether the machine is a node
// (registering it under `discover`), plans its boot, renders it, and records a `script` event
// when the response ends, with how long it took (docs/timeline.md).
import { Router } from 'express';
import { z } from 'zod';
import type { FleetbootConfig } from '../config/schema.ts';
import { baseUrlFor } from '../http/boot-routes.ts';
import { sourceAddress } from '../http/auth.ts';
import { whenResponseEnds } from '../http/step-timing.ts';
import type { Logger } from '../log.ts';
import { admitMachine } from '../nodeconfig/admission.ts';
import { scriptRequestFromNode } from '../nodeconfig/lifecycle.ts';
import { parseMac, type Mac } from '../mac.ts';
import type { NodeRecord } from '../store/nodes.ts';
import type { Store } from '../store/store.ts';
import { bootPlanFor, type NodeBootContribution, type NodeContributionProvider } from './plan.ts';
import { largeFilesOf, type BootSlots } from './boot-slots.ts';
import { renderBootScript, renderWaitScript } from './render.ts';
import type { BootTemplates } from './templates.ts';

// iPXE sends an empty string for a setting it does not have (${serial} on most VMs).
const optionalText = z
  .string()
  .max(128)
  .optional()
  .transform((s) => (s === undefined || s.trim() === '' ? null : s.trim()));

export const nodeScriptQuery = z.object({
  mac: z.string().transform((s, ctx): Mac => {
    const mac = parseMac(s);
    if (!mac) {
      ctx.addIssue({ code: 'custom', message: `mac: ${JSON.stringify(s)} is not a MAC address` });
      return z.NEVER;
    }
    return mac;
  }),
  uuid: optionalText,
  serial: optionalText,
  arch: optionalText.refine((a) => a === null || /^[\w.-]+$/.test(a), { message: 'arch: expected a name like x86_64' }),
  // iPXE's ${platform}: pcbios or efi (older stage1 scripts do not send it).
  platform: optionalText.transform((p) => (p === 'pcbios' || p === 'efi' ? p : null)),
});

export interface NodeScriptDeps {
  config: FleetbootConfig;
  store: Store;
  templates: BootTemplates;
  log: Logger;
  nodeContribution: NodeContributionProvider;
  /** Under ProxyDHCP: the MAC the proxy exchange saw claim an address (dhcp/proxy-addresses.ts). */
  proxyMacOf?: (ip: string) => Mac | undefined;
  /** Boot storm admission: a node over the limit gets a script that waits and asks again. */
  bootSlots?: BootSlots;
}

/**
 * Under ProxyDHCP fleetboot trusts the MAC a script request names (it leases nothing), except
 * where it knows the address is another node's: a static address or lease first, else the MAC
 * the proxy exchange saw claim it. Such a request gets no secrets (scriptRequestFromNode).
 */
function addressOfAnotherNode(deps: NodeScriptDeps, node: NodeRecord, ip: string): boolean {
  if (deps.config.dhcp.mode !== 'proxy') return false;
  const claimant = deps.store.nodes.requesterAt(ip, deps.proxyMacOf)?.node;
  return claimant != null && claimant.id !== node.id;
}

export function nodeScriptRoutes(deps: NodeScriptDeps): Router {
  const r = Router();
  r.get('/boot/node.ipxe', (req, res) => {
    const arrivedAt = deps.store.now();
    const t0 = performance.now();
    const parsed = nodeScriptQuery.safeParse(req.query);
    if (!parsed.success) {
      const message = parsed.error.issues[0]?.message ?? 'bad query';
      // A plain-text iPXE script, so a console shows why; the 4xx makes stage1 retry.
      res.status(400).type('text/plain').send(`#!ipxe\necho fleetboot: ${message.replace(/\$/g, '')}\nexit 1\n`);
      return;
    }
    const q = parsed.data;
    const admission = admitMachine(deps.store, deps.config.unknownNodePolicy, 'script', {
      mac: q.mac,
      uuid: q.uuid,
      uuidFrom: 'ipxe',
      arch: q.arch,
      serial: q.serial,
    }, { maxUnbootedDiscovered: deps.config.dhcp.maxUnbootedDiscovered });
    const node: NodeRecord | null = admission.admitted ? admission.node : null;
    const created = admission.admitted && admission.created;
    let contribution: NodeBootContribution | null = null;
    if (node) {
      try {
        const ip = sourceAddress(req);
        const fromNode = scriptRequestFromNode(deps.store, deps.config.dhcp.mode, node, ip) && !addressOfAnotherNode(deps, node, ip);
        contribution = deps.nodeContribution(node, { fromNode });
      } catch (err) {
        // The node still boots (sdc-booter's rule: a lookup failure must not strand a node);
        // it just boots without its per-node modules this time.
        deps.log.error({ event: 'script', mac: q.mac, node: node.id, err }, 'node contribution failed; booting without it');
      }
    }
    const baseUrl = baseUrlFor(req, deps.config);
    const plan = bootPlanFor(node, deps.store.platforms.list(), deps.config, contribution, {
      mac: q.mac,
      baseUrl,
      firmware: q.platform,
      ...(admission.admitted ? {} : { refusal: admission.reason }),
    });
    const slot = plan.action === 'boot' && deps.bootSlots ? deps.bootSlots.request(q.mac, node?.id ?? null, largeFilesOf(plan.entries[0]!)) : null;
    let script: string;
    let detail: Record<string, unknown>;
    if (slot && !slot.admitted) {
      // Over the limit: wait and ask again (the same URL, so the same plan), keeping its place.
      const wait = { inFlight: slot.inFlight, limit: deps.bootSlots!.limit, position: slot.position, waiting: slot.waiting, waitSeconds: slot.waitSeconds };
      script = renderWaitScript(deps.templates, { ...wait, retryUrl: `${baseUrl}${req.originalUrl}` });
      detail = { action: 'wait', ...wait, uuid: q.uuid, arch: q.arch, created };
    } else {
      script = renderBootScript(deps.templates, plan, baseUrl);
      detail = {
        action: plan.action,
        ...(plan.action === 'boot' ? { mode: plan.mode, stamp: plan.entries[0]!.stamp, rescue: plan.entries[1]?.stamp ?? null } : { reason: plan.reason }),
        uuid: q.uuid,
        arch: q.arch,
        created,
      };
    }
    // Recorded when the response ends, dated at the request's arrival; `ms` spans the two.
    whenResponseEnds(
      res,
      t0,
      ({ ms, complete }) => deps.store.events.record({ event: 'script', nodeId: node?.id ?? null, mac: q.mac, at: arrivedAt, detail: { ...detail, bytes: Buffer.byteLength(script), ms, complete } }),
      (err) => deps.log.error({ event: 'script', mac: q.mac, node: node?.id ?? null, err }, 'could not record the script event'),
    );
    deps.log.info({ event: 'script', mac: q.mac, node: node?.id ?? null, ...detail, warnings: plan.warnings }, 'boot script served');
    for (const w of plan.warnings) deps.log.warn({ event: 'script', mac: q.mac, node: node?.id ?? null }, w);
    res.setHeader('Cache-Control', 'no-store');
    res.type('text/plain').send(script);
  });
  return r;
}
