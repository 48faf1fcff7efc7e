// The node-config part of a node's boot plan: the `-B` args its network needs and the
// config modules it loads (docs/design.md "The boot path" §5). The boot plan (boot/plan.ts)
// calls this for every known node; the modules are served by http/node-api.ts.
import type { BootModule, NodeBootContribution, NodeContributionProvider, ScriptRequest } from '../boot/plan.ts';
import type { NodeRecord } from '../store/nodes.ts';
import { networkBootArgs } from './network.ts';
import { networkOf, offersAnswers } from './render.ts';
import { currentNodeToken, type NodeKeys } from './secrets.ts';

export type { BootModule, NodeBootContribution, NodeContributionProvider };

/**
 * Boot args and modules for `node`. Without `keys`, or for a script request that did not
 * come from the node itself, the node's API token is left out (the node then
 * authenticates by its address); with them, `fleetboot_token=` carries it and
 * `fleetboot_node=` its id, both read back by the agent from the kernel command line.
 */
export function nodeConfigContribution(node: NodeRecord, keys?: NodeKeys, request: ScriptRequest = { fromNode: true }): NodeBootContribution {
  const bootArgs: Record<string, string> = {};
  const modules: BootModule[] = [];
  if (node.state === 'retired') return { bootArgs, modules };
  bootArgs.fleetboot_node = String(node.id);
  const token = keys && request.fromNode ? currentNodeToken(keys, node) : null;
  if (token) bootArgs.fleetboot_token = token;
  const network = networkOf(node);
  if (!network) return { bootArgs, modules };
  // Operator boot args (`node set NODE bootarg.<key>=<value>`, kept in traits) come first
  // so the network's own args win on a clash.
  for (const [k, v] of Object.entries(node.traits)) if (k.startsWith('bootarg.')) bootArgs[k.slice('bootarg.'.length)] = v;
  Object.assign(bootArgs, networkBootArgs(network));
  const base = `/nodes/${node.nics.find((n) => n.isAdmin)?.mac ?? node.nics[0]?.mac ?? String(node.id)}`;
  // iPXE fetches modules before the OS runs: when the node's address is not one fleetboot
  // knows (ProxyDHCP beside another server, no static IP), the token in the URL is how the
  // fetch proves who it is. It is no more exposed than the boot arg in the same script.
  const q = token ? `?token=${encodeURIComponent(token)}` : '';
  modules.push({ path: `${base}/networking.json${q}`, type: 'file', name: 'networking.json' });
  modules.push({ path: `${base}/networking.json.hash${q}`, type: 'hash', name: 'networking.json' });
  if (offersAnswers(node)) modules.push({ path: `${base}/answers.json${q}`, type: 'file', name: 'answers.json' });
  modules.push({ path: `${base}/node.json${q}`, type: 'file', name: 'node.json' });
  return { bootArgs, modules };
}

/** A provider bound to the head node's key: what the boot plan should be given. */
export function nodeConfigProvider(keys: NodeKeys): NodeContributionProvider {
  return (node, request) => nodeConfigContribution(node, keys, request);
}
