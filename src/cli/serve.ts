import type { Command } from 'commander';
import { HeadNode } from '../headnode.ts';
import { createLogger } from '../log.ts';
import { configFor } from './context.ts';

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('run the head node (DHCP, TFTP, HTTP) from the config file, or from the embedded defaults')
    .addHelpText('after', '\nExamples:\n  fleetboot serve                       # ./fleetboot.json, or defaults: HTTP on 127.0.0.1:8080, DHCP off\n  fleetboot --config /etc/fleetboot.json serve')
    .action(async (_opts: object, cmd: Command) => {
      const { config, path } = configFor(cmd);
      const log = createLogger(config.log.level);
      const head = new HeadNode(config, { log });
      log.info({ event: 'config', file: path ?? '(embedded defaults)', dhcp: config.dhcp.mode, tftp: config.tftp.enabled }, 'config loaded');
      let stopping: Promise<void> | null = null;
      const shutdown = (signal: NodeJS.Signals): void => {
        if (stopping) return;
        log.info({ event: 'shutdown', signal }, 'stopping');
        stopping = head.stop().then(
          () => {
            log.info({ event: 'stopped' }, 'head node stopped');
            log.flush();
            process.exitCode = 0;
          },
          (err: unknown) => {
            log.error({ err }, 'shutdown failed');
            process.exitCode = 1;
          },
        );
      };
      process.once('SIGTERM', shutdown);
      process.once('SIGINT', shutdown);
      await head.start();
    });
}
