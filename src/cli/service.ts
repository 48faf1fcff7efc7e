import type { Command } from 'commander';
import { ensureUser, renderPlanned, ServiceInstallError, writeUnit, type InstallOptions } from '../service/install.ts';
import { unitName } from '../service/unit.ts';
import { UsageError } from './errors.ts';
import { globalOptions } from './context.ts';

interface InstallFlags {
  unitDir: string;
  user: string;
  stateDir: string;
  print?: boolean;
  createUser?: boolean;
}

export function registerService(program: Command): void {
  const service = program
    .command('service')
    .description('run fleetboot as a systemd service')
    .addHelpText('after', '\nExamples:\n  fleetboot service install --print\n  sudo fleetboot --config /etc/fleetboot.json service install --create-user');
  service
    .command('install')
    .description(`write ${unitName} (docs/service.md) for this install, then say what to run`)
    .option('--unit-dir <dir>', 'folder for the unit file', '/etc/systemd/system')
    .option('--user <name>', 'system user the service runs as', 'fleetboot')
    .option('--state-dir <dir>', 'state folder (StateDirectory=, under /var/lib)', '/var/lib/fleetboot')
    .option('--create-user', 'create the user with useradd --system when missing')
    .option('--print', 'write the unit to stdout instead of the unit dir')
    .addHelpText('after', '\nExamples:\n  fleetboot service install --print\n  fleetboot --config /etc/fleetboot.json service install --create-user')
    .action((f: InstallFlags, cmd: Command) => {
      const config = globalOptions(cmd).config ?? null;
      const o: InstallOptions = { unitDir: f.unitDir, user: f.user, stateDir: f.stateDir, configFile: config, createUser: f.createUser ?? false };
      try {
        const text = renderPlanned(o);
        if (f.print) {
          process.stdout.write(text);
          return;
        }
        const created = ensureUser(o);
        const path = writeUnit(o.unitDir, text);
        process.stdout.write(`${created ? `created system user ${created}\n` : ''}wrote ${path}\nnext:\n  systemctl daemon-reload\n  systemctl enable --now fleetboot\n  journalctl -u fleetboot -f\n`);
      } catch (err) {
        if (err instanceof ServiceInstallError) throw new UsageError(err.message);
        throw err;
      }
    });
}
