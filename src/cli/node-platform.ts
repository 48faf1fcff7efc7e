// `fleetboot node set-platform NODE STAMP`: what a node boots next (nodeconfig/lifecycle.ts
// assignPlatform: the platform it had becomes its previous one, the rescue and rollback target).
import type { Command } from 'commander';
import { assignPlatform } from '../nodeconfig/lifecycle.ts';
import { NodeConfigError } from '../nodeconfig/network.ts';
import { withStore } from './context.ts';
import { UsageError } from './errors.ts';
import { nodeCommand } from './node.ts';
import { printJson } from './output.ts';

export function registerNodePlatform(program: Command): void {
  nodeCommand(program)
    .command('set-platform')
    .description('assign the platform a node boots next (takes effect at its next boot)')
    .argument('<node>', 'node id, UUID, MAC or hostname')
    .argument('<stamp>', 'an imported platform (see fleetboot platform list)')
    .option('--force', 'assign it even while a rollout still has the node pending or in flight')
    .option('--json', 'print the assignment as JSON')
    .addHelpText(
      'after',
      '\nExamples:\n  fleetboot node set-platform 52:54:00:12:34:56 20240101T000000Z\n  fleetboot node set-platform cn-07 lab-6.1\n  fleetboot node set-platform cn-07 lab-6.1 --force   # the node is in a rollout',
    )
    .action(async (ref: string, stamp: string, o: { json?: boolean; force?: boolean }, cmd: Command) => {
      await withStore(cmd, (store) => {
        const node = store.nodes.find(ref);
        if (!node) throw new UsageError(`no node ${JSON.stringify(ref)} (give a node id, UUID, MAC or hostname; see fleetboot node list)`);
        let result;
        try {
          result = assignPlatform(store, node, stamp, { reason: 'operator', force: o.force === true });
        } catch (err) {
          if (err instanceof NodeConfigError) throw new UsageError(err.message);
          throw err;
        }
        const { node: updated, changed } = result;
        if (o.json) return printJson({ node: updated.id, bootPlatform: updated.bootPlatform, previousPlatform: updated.previousPlatform, changed });
        process.stdout.write(
          changed
            ? `node ${updated.id} boots ${stamp} next${updated.previousPlatform ? ` (previous: ${updated.previousPlatform})` : ''}\n`
            : `node ${updated.id} already boots ${stamp}\n`,
        );
      });
    });
}
