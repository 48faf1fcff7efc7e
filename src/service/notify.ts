// Readiness, status and watchdog pings to systemd when it started us with Type=notify
// (sd_notify(3), systemd.service(5) Type=notify, WatchdogSec=). Outside systemd ($NOTIFY_SOCKET
// unset) every call is a no-op, so `fleetboot serve` behaves the same from a shell.
import type { Logger } from '../log.ts';
import { loadNativeAddon } from '../native.ts';

interface NotifyAddon {
  notify(socketPath: string, message: string): number;
}

const loadAddon = (): NotifyAddon => loadNativeAddon<NotifyAddon>('fleetboot_notify');

/** One sd_notify(3) datagram to `socketPath`; returns the errno, 0 when sent. */
export function sdNotify(socketPath: string, assignments: Record<string, string | number>): number {
  const message = Object.entries(assignments)
    .map(([k, v]) => `${k}=${String(v).replace(/\n/g, ' ')}`)
    .join('\n');
  return loadAddon().notify(socketPath, message);
}

export class SystemdNotifier {
  private watchdog: NodeJS.Timeout | null = null;

  private constructor(
    private readonly socketPath: string,
    private readonly watchdogUsec: number | null,
    private readonly log: Logger,
  ) {}

  /**
   * The notifier systemd asked for, or null when not run by systemd. sd_watchdog_enabled(3):
   * WATCHDOG_USEC applies only when WATCHDOG_PID is unset or this process's pid.
   */
  static fromEnv(log: Logger, env: NodeJS.ProcessEnv = process.env): SystemdNotifier | null {
    const socketPath = env['NOTIFY_SOCKET'];
    if (!socketPath) return null;
    const usec = Number(env['WATCHDOG_USEC']);
    const forUs = env['WATCHDOG_PID'] === undefined || Number(env['WATCHDOG_PID']) === process.pid;
    return new SystemdNotifier(socketPath, forUs && Number.isSafeInteger(usec) && usec > 0 ? usec : null, log);
  }

  private send(assignments: Record<string, string | number>): void {
    const errno = sdNotify(this.socketPath, assignments);
    if (errno !== 0) this.log.warn({ event: 'sd_notify_failed', errno, socket: this.socketPath }, 'could not notify systemd');
  }

  /** Every service is listening: `systemctl start` returns now. Starts the watchdog pings. */
  ready(status: string): void {
    this.send({ READY: 1, STATUS: status, MAINPID: process.pid });
    if (this.watchdogUsec !== null && !this.watchdog) {
      // sd_watchdog_enabled(3): ping at half the interval. The timer runs on the event loop,
      // so a loop stuck past WatchdogSec= goes unpinged and systemd restarts the service.
      const every = Math.max(100, Math.floor(this.watchdogUsec / 2000));
      this.watchdog = setInterval(() => this.send({ WATCHDOG: 1 }), every);
      this.watchdog.unref();
    }
  }

  status(status: string): void {
    this.send({ STATUS: status });
  }

  /** Shutting down: systemd shows "deactivating" and stops expecting pings. */
  stopping(): void {
    if (this.watchdog) clearInterval(this.watchdog);
    this.watchdog = null;
    this.send({ STOPPING: 1, STATUS: 'stopping' });
  }
}
