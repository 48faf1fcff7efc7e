// The orchestrator's view of the world, from the registry: what a node last reported
// (observe), what it boots next (lifecycle.assignPlatform) and how to reboot it (its stored
// power spec). Each effect lands on the node's boot timeline with the rollout's id.
import { assignPlatform } from '../nodeconfig/lifecycle.ts';
import { reportedModulesMatch } from '../nodeconfig/render.ts';
import type { NodeRecord } from '../store/nodes.ts';
import type { Store } from '../store/store.ts';
import { powerNode, type DriverFactory } from './node-power.ts';
import type { EffectContext, NodeObservation, RolloutPorts } from './orchestrator.ts';
import type { Logger } from '../log.ts';
import { powerDriverFor, powerLogging } from './power-drivers.ts';
import { PowerError, type PowerDriver } from './power.ts';

export interface StorePortsOptions {
  /** The secrets answers.json is rendered with, so the module check hashes what was served. */
  moduleSecrets: (node: NodeRecord) => { rootPassword: string | null; ntpHost: string | null };
  /** Builds a node's driver from its stored power spec; tests inject fakes here. */
  driverFor?: DriverFactory;
  /** Where the drivers log (a child per node); without it they log nothing. */
  log?: Logger;
}

/** A node as the orchestrator judges it: NodeRecord fields plus the module check. */
export function observeNode(node: NodeRecord, options: StorePortsOptions): NodeObservation {
  return {
    bootPlatform: node.bootPlatform,
    currentPlatform: node.currentPlatform,
    lastBoot: node.lastBoot,
    lastSeen: node.lastSeen,
    modulesMatch: reportedModulesMatch(node, options.moduleSecrets(node)),
  };
}

export function storeRolloutPorts(store: Store, options: StorePortsOptions): RolloutPorts {
  const driverOf = (node: NodeRecord, spec: unknown): PowerDriver => {
    if (options.driverFor) return options.driverFor(spec);
    const mac = node.nics.find((n) => n.isAdmin)?.mac ?? node.nics[0]?.mac;
    return powerDriverFor(spec, options.log ? powerLogging(options.log.child({ node: node.id, ...(mac ? { mac } : {}) })) : {});
  };
  const nodeOrThrow = (nodeId: number): NodeRecord => {
    const node = store.nodes.get(nodeId);
    if (!node) throw new Error(`node ${nodeId} is no longer in the registry`);
    return node;
  };
  return {
    now: () => store.now(),
    observe(nodeId) {
      const node = store.nodes.get(nodeId);
      return node ? observeNode(node, options) : null;
    },
    assignPlatform(nodeId, platform, context: EffectContext) {
      // A no-op when the node already boots `platform` (the orchestrator repeats it after a restart).
      assignPlatform(store, nodeOrThrow(nodeId), platform, { reason: context.purpose, rolloutId: context.rolloutId });
    },
    powerDriver(nodeId, context: EffectContext): PowerDriver {
      const node = nodeOrThrow(nodeId);
      if (node.power === null) throw new PowerError(`node ${node.id} has no power settings (fleetboot node set ${node.id} power.kind=...)`);
      // Thrown here, before any reboot, so the orchestrator knows the node was not touched.
      const driver = driverOf(node, node.power);
      const detail = { rollout: context.rolloutId, purpose: context.purpose };
      return {
        kind: driver.kind,
        // Through powerNode, so the reboot is a `power` event on the node's timeline like an operator's.
        powerCycle: async () => {
          await powerNode(store, node, 'cycle', () => driver, detail);
        },
        powerOff: (o) => driver.powerOff(o),
        powerOn: () => driver.powerOn(),
        status: () => driver.status(),
      };
    },
  };
}
