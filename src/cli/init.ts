import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import { buildInitialConfig, writeConfigFile } from '../config/init.ts';
import { defaultConfigPath, parseConfig } from '../config/load.ts';
import { writeTokenFile } from '../config/token.ts';
import { globalOptions } from './context.ts';

export function registerInit(program: Command): void {
  program
    .command('init')
    .description('write a config file for one admin network, and a new API token (mode 0600)')
    .requiredOption('--interface <if>', 'the admin network interface DHCP answers on')
    .requiredOption('--subnet <cidr>', 'the admin subnet, e.g. 10.99.0.0/24')
    .option('--range <start-end>', 'dynamic DHCP range (default: upper half of the subnet)')
    .option('--gateway <ip>', 'default gateway handed to nodes')
    .option('--address <ip>', "the head node's address on the subnet (default: read from --interface)")
    .addOption(new Option('--mode <mode>', 'DHCP mode').choices(['full', 'proxy']).default('full'))
    .option('--http-port <port>', 'HTTP port nodes fetch from', (v) => Number(v), 8080)
    .option('--force', 'overwrite an existing config file')
    .addHelpText('after', '\nExample:\n  fleetboot init --interface eth1 --subnet 10.99.0.0/24 --range 10.99.0.100-10.99.0.199 --gateway 10.99.0.1')
    .action((o: { interface: string; subnet: string; range?: string; gateway?: string; address?: string; mode: 'full' | 'proxy'; httpPort: number; force?: boolean }, cmd: Command) => {
      const file = resolve(globalOptions(cmd).config ?? defaultConfigPath);
      const baseDir = resolve(file, '..');
      const config = buildInitialConfig({ ...o, httpPort: o.httpPort }, baseDir);
      writeConfigFile(file, config, o.force ?? false);
      const parsed = parseConfig(config, baseDir, file);
      writeTokenFile(parsed.apiTokenFile);
      process.stdout.write(`wrote ${file}\nAPI token in ${parsed.apiTokenFile} (mode 0600)\nstart the head node with: fleetboot${globalOptions(cmd).config ? ` --config ${globalOptions(cmd).config}` : ''} serve\n`);
    });
}
