// `fleetboot token rotate api|node-key`: replaces a head-node secret. Both files are written
// atomically (temp file, mode 0600, rename: config/token.ts writeTokenFile), and a running
// head node reads a replaced file again at its next use, so no restart is needed.
import type { Command } from 'commander';
import { writeTokenFile } from '../config/token.ts';
import { nodeKeyFile, rotateNodeKey } from '../nodeconfig/secrets.ts';
import { configFor, withStore } from './context.ts';
import { UsageError } from './errors.ts';
import { printJson } from './output.ts';

const secrets = ['api', 'node-key'] as const;
type Secret = (typeof secrets)[number];

export function registerToken(program: Command): void {
  const token = program
    .command('token')
    .description("rotate the head node's secrets: the admin API token and the key node tokens are derived from")
    .addHelpText('after', '\nExamples:\n  fleetboot token rotate api\n  fleetboot token rotate node-key');
  token
    .command('rotate')
    .description('write a new secret (mode 0600) in place of the old one, which stops working at once')
    .argument('<secret>', `which: ${secrets.join(' or ')}`)
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      [
        '',
        'api       the bearer token of the admin API (config apiTokenFile); give the new one to every',
        '          client that holds the old one.',
        'node-key  the key every node token and first-boot root password is derived from; every',
        '          issued node token is re-issued: a node gets its new token at its next boot and',
        '          is accepted from its own address until then.',
        '',
        'Examples:',
        '  fleetboot token rotate api',
        '  fleetboot token rotate node-key --json',
      ].join('\n'),
    )
    .action(async (which: string, o: { json?: boolean }, cmd: Command) => {
      if (!(secrets as readonly string[]).includes(which)) throw new UsageError(`token rotate: expected ${secrets.join(' or ')}, got ${JSON.stringify(which)}`);
      const secret = which as Secret;
      if (secret === 'api') {
        const { config } = configFor(cmd);
        writeTokenFile(config.apiTokenFile);
        if (o.json) return printJson({ rotated: 'api', file: config.apiTokenFile });
        process.stdout.write(
          `new API token in ${config.apiTokenFile} (mode 0600); the old one no longer works.\n` +
            'A running head node uses the new one from its next request; give it to every client of the admin API.\n',
        );
        return;
      }
      await withStore(cmd, (store, { config }) => {
        const { reissued } = rotateNodeKey(store, config.dataDir);
        const file = nodeKeyFile(config.dataDir);
        if (o.json) return printJson({ rotated: 'node-key', file, reissuedNodeTokens: reissued });
        process.stdout.write(
          `new node key in ${file} (mode 0600); ${reissued} node token(s) re-issued, the old ones no longer work.\n` +
            'Each node gets its new token at its next boot and is accepted from its own address until then.\n' +
            'A running head node uses the new key at once.\n',
        );
      });
    });
}
