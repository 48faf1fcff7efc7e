import type { Command } from 'commander';
import { HeadNode } from '../headnode.ts';
import { createLogger } from '../log.ts';
import { SystemdNotifier } from '../service/notify.ts';
import { DataDirLockedError, lockDataDir, type DataDirLock } from '../store/datadir-lock.ts';
import { configFor } from './context.ts';

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('run the head node (DHCP, TFTP, HTTP) from the config file, or from the embedded defaults')
    .addHelpText('after', '\nExamples:\n  fleetboot serve                       # ./fleetboot.json, or defaults: HTTP on 127.0.0.1:8080, DHCP off\n  fleetboot --config /etc/fleetboot.json serve')
    .action(async (_opts: object, cmd: Command) => {
      const { config, path } = configFor(cmd);
      const log = createLogger(config.log.level);
      // One head node per data dir (store/datadir-lock.ts), taken before anything opens the registry.
      let lock: DataDirLock;
      try {
        lock = lockDataDir(config.dataDir);
      } catch (err) {
        if (!(err instanceof DataDirLockedError)) throw err;
        process.stderr.write(`fleetboot: ${err.message}\n`);
        process.exitCode = 1;
        return;
      }
      if (lock.tookOverFrom) {
        const was = lock.tookOverFrom;
        log.warn({ event: 'datadir_lock_takeover', pid: was.pid, host: was.host, since: was.startedAt }, `took over the data dir lock of serve PID ${was.pid}, which ended without releasing it`);
      }
      let head: HeadNode;
      try {
        head = new HeadNode(config, { log });
      } catch (err) {
        lock.release();
        throw err;
      }
      log.info({ event: 'config', file: path ?? '(embedded defaults)', dhcp: config.dhcp.mode, tftp: config.tftp.enabled }, 'config loaded');
      // Under the unit `fleetboot service install` writes (Type=notify): readiness once every
      // service listens, then watchdog pings; a no-op from a shell.
      const systemd = SystemdNotifier.fromEnv(log);
      let stopping: Promise<void> | null = null;
      const shutdown = (signal: NodeJS.Signals): void => {
        if (stopping) return;
        log.info({ event: 'shutdown', signal }, 'stopping');
        systemd?.stopping();
        stopping = head.stop().then(
          () => {
            lock.release();
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
      try {
        await head.start();
      } catch (err) {
        lock.release();
        throw err;
      }
      systemd?.ready(`serving: DHCP ${config.dhcp.mode}, TFTP ${config.tftp.enabled ? 'on' : 'off'}, HTTP port ${head.http.address()?.port ?? config.http.port}`);
    });
}
