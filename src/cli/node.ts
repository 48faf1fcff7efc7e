// `fleetboot node <verb>`: the fleet registry from the command line. Subcommands are added
// by the modules that own them (nodeconfig: list/show/setup/set/retire; platforms:
// set-platform) through `nodeCommand`.
import type { Command } from 'commander';

export function nodeCommand(program: Command): Command {
  const existing = program.commands.find((c) => c.name() === 'node');
  if (existing) return existing;
  return program
    .command('node')
    .description('list, inspect and configure nodes')
    .addHelpText('after', '\nExamples:\n  fleetboot node list\n  fleetboot node show 52:54:00:12:34:56');
}
