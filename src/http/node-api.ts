// Routes a node talks to (no admin token): the agent script, its own config modules under
// /nodes/<mac>/, and check-in. A node proves who it is by its source address (a static NIC
// address or a bound lease: store.nodes.findByAddress) or by its per-node token
// (`Authorization: Bearer` or `?token=`); under ProxyDHCP, an address counts for a module only
// when the proxy exchange saw that very MAC claim it. It never reads another node's config. Also the
// operator routes for setup / set / retire, mounted behind the bearer token in app.ts.
import express, { Router, type NextFunction, type Request, type Response } from 'express';
import { newcArchive } from '../boot/cpio.ts';
import type { BootTemplates } from '../boot/templates.ts';
import type { FleetbootConfig } from '../config/schema.ts';
import { capture } from '../capture.ts';
import type { Logger } from '../log.ts';
import { parseMac, type Mac } from '../mac.ts';
import { nodeConfigContribution } from '../nodeconfig/boot-modules.ts';
import { acceptCheckin, assignPlatform, NodeAccessError, NodeInRolloutError, nodeOfRequest, retireNode, setNodeFields, setupNode, type NodeAuth } from '../nodeconfig/lifecycle.ts';
import { describeIssues, NodeConfigError } from '../nodeconfig/network.ts';
import { configModuleNames, defaultNtpHost, renderConfigModule, zpoolPlanOf, type ConfigModuleName } from '../nodeconfig/render.ts';
import { nodeKeysIn, rootPassword, type NodeKeys } from '../nodeconfig/secrets.ts';
import { checkinSchema } from '../nodeconfig/sysinfo.ts';
import { parseZpoolLayout, parseZpoolSpec } from '../nodeconfig/zpool.ts';
import { powerNode } from '../rollout/node-power.ts';
import { PowerError } from '../rollout/power.ts';
import { powerDriverFor, powerLogging } from '../rollout/power-drivers.ts';
import type { NodeRecord } from '../store/nodes.ts';
import type { Store } from '../store/store.ts';
import { nodeView } from './admin-api.ts';
import { bearerToken, sourceAddress } from './auth.ts';
import { baseUrlFor } from './boot-routes.ts';
import { HttpError } from './errors.ts';
import { bodies, validBody } from './api-routes.ts';
import { whenResponseEnds } from './step-timing.ts';

export interface NodeApiDeps {
  config: FleetbootConfig;
  store: Store;
  templates: BootTemplates;
  log: Logger;
  /** Told after every accepted check-in; it decides nothing here. */
  onCheckin?: (nodeId: number) => void;
  /** Under ProxyDHCP: the MAC the proxy exchange saw claim an address (dhcp/proxy-addresses.ts). */
  proxyMacOf?: (ip: string) => Mac | undefined;
}


function presentedToken(req: Request): string | null {
  const bearer = bearerToken(req);
  if (bearer !== null) return bearer;
  const q = req.query.token;
  return typeof q === 'string' && q !== '' ? q : null;
}

export function nodeRoutes(deps: NodeApiDeps, keys: NodeKeys = nodeKeysIn(deps.config.dataDir)): Router {
  const { store, log } = deps;
  const r = Router();

  r.get('/agent.sh', (req, res) => {
    const script = deps.templates.render('agent.sh', { baseUrl: baseUrlFor(req, deps.config) });
    res.type('text/x-shellscript').send(script);
  });

  r.get('/nodes/:mac/:file', (req, res) => {
    const arrivedAt = store.now();
    const t0 = performance.now();
    const file = req.params.file;
    if (!(configModuleNames as readonly string[]).includes(file)) throw new HttpError(404, 'not_found', `no config module ${JSON.stringify(file)}`);
    const mac = parseMac(req.params.mac);
    if (!mac) throw new HttpError(400, 'bad_request', `mac: expected a MAC address, got ${JSON.stringify(req.params.mac)}`);
    const node = store.nodes.findByMac(mac);
    const ip = sourceAddress(req);
    // A static address or lease names its holder, right or wrong, before the proxy's memory is
    // asked; and that memory opens only the module URL of the MAC it saw claim the address.
    let auth: { node: NodeRecord; by: NodeAuth['by'] | 'proxy_address' } | null = nodeOfRequest(store, ip, presentedToken(req), node);
    if (!auth && node && deps.proxyMacOf?.(ip) === mac) auth = { node, by: 'proxy_address' };
    // Same answer for "no such node" and "not yours": a node learns nothing about others.
    if (!node || !auth || auth.node.id !== node.id) {
      log.warn({ event: 'config_refused', mac, ip, file, requester: auth?.node.id ?? null }, 'config module refused');
      throw new HttpError(403, 'forbidden', `only node ${mac} itself may read its config (from its own address or with its token)`);
    }
    const body = renderConfigModule(file as ConfigModuleName, node, { rootPassword: rootPassword(keys, node), ntpHost: defaultNtpHost(deps.config) });
    if (body === null) throw new HttpError(404, 'not_found', `node ${node.id} has no ${file} (state ${node.state}${node.networkConfig ? '' : ', not set up'})`);
    const by = auth.by;
    // Recorded when the response ends, dated at the request's arrival; `ms` spans the two.
    whenResponseEnds(
      res,
      t0,
      ({ ms, complete }) => store.events.record({ event: 'module', nodeId: node.id, mac, at: arrivedAt, detail: { name: file, ip, auth: by, ms, complete } }),
      (err) => log.error({ event: 'config_module', node: node.id, mac, file, err }, 'could not record the module event'),
    );
    log.info({ event: 'config_module', node: node.id, mac, file, auth: auth.by }, 'config module served');
    // ?format=newc: a UEFI Linux node's copy, wrapped so its kernel unpacks it to /<file> (boot/plan.ts linuxModules).
    if (req.query.format === 'newc') {
      res.type('application/octet-stream').send(newcArchive(file, Buffer.from(body, 'utf8')));
      return;
    }
    res.type(file.endsWith('.json') ? 'application/json' : 'text/plain').send(body);
  });

  // A body past http.checkinBodyBytes is refused with 413 naming the bound (body-parser
  // stops reading at the limit, so an oversized check-in costs no more than the limit).
  const checkinLimit = deps.config.http.checkinBodyBytes;
  const checkinBody = express.json({ limit: checkinLimit });
  const parseCheckin = (req: Request, res: Response, next: NextFunction): void =>
    checkinBody(req, res, (err?: unknown) => {
      if ((err as { type?: unknown } | undefined)?.type === 'entity.too.large') {
        next(new HttpError(413, 'payload_too_large', `check-in body is over ${checkinLimit} bytes (http.checkinBodyBytes)`));
      } else next(err);
    });
  r.post('/api/v1/nodes/checkin', parseCheckin, (req, res) => {
    capture('checkin', JSON.stringify(req.body) ?? '');
    const parsed = checkinSchema.safeParse(req.body);
    if (!parsed.success) throw new HttpError(400, 'bad_request', describeIssues(parsed.error));
    const report = parsed.data;
    const ip = sourceAddress(req);
    let result;
    try {
      result = acceptCheckin(store, deps.config.unknownNodePolicy, report, { ip, token: presentedToken(req) });
    } catch (err) {
      if (!(err instanceof NodeAccessError)) throw err;
      log.warn({ event: 'checkin_refused', ip, mac: report.nics[0]!.mac, reason: err.message }, 'check-in refused');
      throw new HttpError(403, 'forbidden', err.message);
    }
    log.info({ event: 'checkin', node: result.node.id, mac: report.nics[0]!.mac, ip, auth: result.by, from: result.from, to: result.to, platform: report.platform }, 'node checked in');
    deps.onCheckin?.(result.node.id);
    res.status(result.registered ? 201 : 200).json({ node: { id: result.node.id, state: result.node.state, hostname: result.node.hostname } });
  });

  return r;
}

/** Operator routes (behind the bearer token): setup, set, retire, and the rendered config of a node. */
export function nodeAdminRoutes(deps: NodeApiDeps, keys: NodeKeys = nodeKeysIn(deps.config.dataDir)): Router {
  const { store, log } = deps;
  const r = Router();
  const nodeOr404 = (ref: string): NodeRecord => {
    const node = store.nodes.find(ref);
    if (!node) throw new HttpError(404, 'not_found', `no node ${JSON.stringify(ref)} (id, UUID, MAC or hostname)`);
    return node;
  };
  const refused = (fn: () => NodeRecord): NodeRecord => {
    try {
      return fn();
    } catch (err) {
      if (err instanceof NodeConfigError) throw new HttpError(400, 'bad_request', err.message);
      throw err;
    }
  };

  r.post('/nodes/:id/setup', (req, res) => {
    const node = nodeOr404(req.params.id);
    const body = (req.body ?? {}) as { network?: unknown; zpool?: unknown };
    const updated = refused(() => {
      const zpool = body.zpool === undefined ? undefined : typeof body.zpool === 'string' ? parseZpoolSpec(body.zpool) : parseZpoolLayout(body.zpool);
      return setupNode(store, keys, node, { network: body.network, zpool });
    });
    log.info({ event: 'node_setup', node: node.id, hostname: updated.hostname }, 'node set up');
    res.json({ node: nodeView(updated) });
  });

  r.post('/nodes/:id/set', (req, res) => {
    const node = nodeOr404(req.params.id);
    const { set } = validBody(bodies.set, req.body);
    res.json({ node: nodeView(refused(() => setNodeFields(store, node, set))) });
  });

  r.post('/nodes/:id/platform', (req, res) => {
    const node = nodeOr404(req.params.id);
    const body = validBody(bodies.platform, req.body);
    const stamp = body.stamp;
    const force = body.force === true;
    let changed = false;
    const updated = refused(() => {
      try {
        const a = assignPlatform(store, node, stamp, { reason: 'operator', force });
        changed = a.changed;
        return a.node;
      } catch (err) {
        // The request is fine; the node is busy: 409, and the message says how to proceed.
        if (err instanceof NodeInRolloutError) throw new HttpError(409, 'in_rollout', err.message);
        throw err;
      }
    });
    log.info({ event: 'platform_assigned', node: node.id, mac: node.nics[0]?.mac, stamp, changed, force }, 'platform assigned');
    res.json({ node: nodeView(updated), changed });
  });

  r.post('/nodes/:id/power', async (req, res) => {
    const node = nodeOr404(req.params.id);
    const { action } = validBody(bodies.power, req.body);
    try {
      // A manual node: the instructions are logged (warn) and returned with 202 at once; an
      // HTTP request cannot wait the half hour an operator may take (RFC 9110 §15.3.3 202 Accepted).
      const result = await powerNode(store, node, action, (spec) => powerDriverFor(spec, powerLogging(log.child({ node: node.id, ...(node.nics[0] ? { mac: node.nics[0].mac } : {}) }))));
      log.info({ event: 'power', node: node.id, mac: node.nics[0]?.mac, ...result }, 'node powered');
      res.status(result.instructions !== undefined ? 202 : 200).json({ node: node.id, ...result });
    } catch (err) {
      if (!(err instanceof PowerError)) throw err;
      log.warn({ event: 'power_failed', node: node.id, mac: node.nics[0]?.mac, action, err: err.message }, 'power action failed');
      // 409 when fleetboot was never told how to reach it; 502 when the BMC / driver failed.
      throw new HttpError(node.power === null ? 409 : 502, node.power === null ? 'no_power_settings' : 'power_failed', err.message);
    }
  });

  r.post('/nodes/:id/retire', (req, res) => {
    const node = nodeOr404(req.params.id);
    log.info({ event: 'node_retire', node: node.id }, 'node retired');
    res.json({ node: nodeView(retireNode(store, node)) });
  });

  r.get('/nodes/:id/config', (req, res) => {
    const node = nodeOr404(req.params.id);
    const { plan, error } = zpoolPlanOf(node);
    const contribution = nodeConfigContribution(node);
    res.json({ zpoolPlan: plan, zpoolError: error, bootArgs: contribution.bootArgs, modules: contribution.modules });
  });
  return r;
}
