// The `qemu` power driver: a lab VM's power button over its QMP socket (QEMU's JSON machine
// protocol, docs/interop/qmp-spec.rst). One connection per action: greeting, then
// `qmp_capabilities` to leave capabilities-negotiation mode, then the command.
import { connect, type Socket } from 'node:net';
import { z } from 'zod';
import { PowerError, type PowerDriver, type PowerState } from './power.ts';

const qmpMessage = z.union([
  z.object({ QMP: z.object({}).passthrough() }),
  z.object({ return: z.unknown(), id: z.unknown().optional() }),
  z.object({ error: z.object({ class: z.string(), desc: z.string() }), id: z.unknown().optional() }),
  z.object({ event: z.string(), data: z.unknown().optional(), timestamp: z.unknown().optional() }),
]);
type QmpMessage = z.infer<typeof qmpMessage>;

const statusReturn = z.object({ running: z.boolean(), status: z.string() });

/** A QMP session on one socket. Commands run one at a time; events are kept for `waitForEvent`. */
export class QmpClient {
  private buffer = '';
  private readonly queue: QmpMessage[] = [];
  /** Events that arrived while a command waited for its reply. */
  private readonly events: { event: string; data?: unknown }[] = [];
  private waiter: (() => void) | null = null;
  private closed = false;
  private error: Error | null = null;

  private constructor(private readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.buffer += chunk;
      let nl: number;
      while ((nl = this.buffer.indexOf('\n')) >= 0) {
        const line = this.buffer.slice(0, nl).trim();
        this.buffer = this.buffer.slice(nl + 1);
        if (line === '') continue;
        let parsed: unknown;
        try {
          parsed = JSON.parse(line);
        } catch {
          continue; // not QMP; a later line may still be
        }
        const msg = qmpMessage.safeParse(parsed);
        if (msg.success) this.queue.push(msg.data);
      }
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', (err) => {
      this.error = err;
      this.wake();
    });
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  /** Connects, reads the greeting and negotiates capabilities. */
  static async open(path: string, timeoutMs = 5000): Promise<QmpClient> {
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = connect(path);
      const timer = setTimeout(() => {
        s.destroy();
        reject(new PowerError(`QMP socket ${path}: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      s.once('connect', () => {
        clearTimeout(timer);
        resolve(s);
      });
      s.once('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(new PowerError(`QMP socket ${path}: ${err.code ?? err.message} (is the VM running?)`, { cause: err }));
      });
    });
    const client = new QmpClient(socket);
    try {
      const greeting = await client.next(timeoutMs);
      if (!('QMP' in greeting)) throw new PowerError(`QMP socket ${path}: expected a QMP greeting`);
      await client.execute('qmp_capabilities', undefined, timeoutMs);
    } catch (err) {
      client.close();
      throw err;
    }
    return client;
  }

  private async next(timeoutMs: number): Promise<QmpMessage> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const msg = this.queue.shift();
      if (msg) return msg;
      if (this.error) throw new PowerError(`QMP: ${this.error.message}`, { cause: this.error });
      if (this.closed) throw new PowerError('QMP: the VM closed the connection');
      const left = deadline - Date.now();
      if (left <= 0) throw new PowerError(`QMP: no reply within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /** Runs one command and returns its `return` value; QMP errors become PowerError. */
  async execute(command: string, args?: Record<string, unknown>, timeoutMs = 5000): Promise<unknown> {
    this.socket.write(`${JSON.stringify(args ? { execute: command, arguments: args } : { execute: command })}\n`);
    for (;;) {
      const msg = await this.next(timeoutMs);
      if ('event' in msg) {
        this.events.push(msg); // events interleave with replies (qmp-spec "Asynchronous events")
        continue;
      }
      if ('QMP' in msg) continue;
      if ('error' in msg) throw new PowerError(`QMP ${command}: ${msg.error.class}: ${msg.error.desc}`);
      return msg.return;
    }
  }

  /** Waits for an event `name` whose data passes `match`; false after `timeoutMs` without one. */
  async waitForEvent(name: string, match: (data: unknown) => boolean, timeoutMs: number): Promise<boolean> {
    const seen = (e: { event: string; data?: unknown }): boolean => e.event === name && match(e.data);
    const i = this.events.findIndex(seen);
    if (i >= 0) {
      this.events.splice(0, i + 1);
      return true;
    }
    this.events.length = 0;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      let msg: QmpMessage;
      try {
        msg = await this.next(left);
      } catch {
        return false;
      }
      if ('event' in msg && seen(msg)) return true;
    }
  }

  /** Resolves when the connection closes (QEMU exited) or rejects after `timeoutMs`. */
  async waitClosed(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed && !this.error) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.queue.length = 0;
    }
    return true;
  }

  close(): void {
    this.socket.destroy();
  }
}

export interface QemuPowerOptions {
  qmpSocket: string;
  /**
   * How long a power cycle waits for the firmware's own reset before -no-reboot is restored
   * (default 3000 ms). SeaBIOS always sends one, but under TCG on a loaded machine it can
   * come late, and a reset after the restore would end the VM: give BIOS VMs longer.
   */
  guestResetWaitMs?: number;
  /** After the guest's reset, how long no further guest reset must come before -no-reboot is restored (default 1000 ms). */
  resetSettleMs?: number;
  /** Starts the VM again after it was powered off (QEMU exits on `quit`); the lab supplies it. */
  relaunch?: () => Promise<void>;
  timeoutMs?: number;
}

export class QemuPowerDriver implements PowerDriver {
  readonly kind = 'qemu';
  private readonly timeoutMs: number;

  constructor(private readonly options: QemuPowerOptions) {
    this.timeoutMs = options.timeoutMs ?? 5000;
  }

  private async session<T>(fn: (qmp: QmpClient) => Promise<T>): Promise<T> {
    const qmp = await QmpClient.open(this.options.qmpSocket, this.timeoutMs);
    try {
      return await fn(qmp);
    } finally {
      qmp.close();
    }
  }

  async status(): Promise<PowerState> {
    let qmp: QmpClient;
    try {
      qmp = await QmpClient.open(this.options.qmpSocket, this.timeoutMs);
    } catch (err) {
      // No socket or nobody listening: the QEMU process is gone, which is the VM powered off.
      const code = ((err as Error).cause as NodeJS.ErrnoException | undefined)?.code;
      return code === 'ENOENT' || code === 'ECONNREFUSED' ? 'off' : 'unknown';
    }
    try {
      const st = statusReturn.parse(await qmp.execute('query-status', undefined, this.timeoutMs));
      // `shutdown` / `paused`: the VM is stopped but its process lives (-no-shutdown).
      return st.running ? 'on' : 'off';
    } finally {
      qmp.close();
    }
  }

  async powerCycle(): Promise<void> {
    if ((await this.status()) === 'off') {
      await this.powerOn();
      return;
    }
    await this.session(async (qmp) => {
      // The lab runs QEMU with -no-reboot (a failed boot must end the VM, not loop), which turns
      // every reset request into a shutdown (QEMU softmmu/runstate.c qemu_system_reset_request).
      // `set-action` (QEMU >= 6.0) lets this one reset through, then restores the policy.
      // SeaBIOS answers a reset it did not expect with a reset of its own (src/resume.c
      // handle_resume -> tryReboot), so the policy comes back only after that guest reset, or
      // after a few seconds for firmware (OVMF) that does not do it.
      // That guest reset can come twice: tryReboot falls through to a further reset method
      // before QEMU, which acts on a request at its next main-loop turn, has reset the CPU
      // (measured on this lab: RESET guest:true twice, 0.4 ms apart, in 1 of 8 cycles). The
      // second one, after the policy is back, ended the VM: the policy stays lifted until the
      // guest has made no reset for resetSettleMs.
      const guestReset = (d: unknown): boolean => (d as { guest?: boolean } | undefined)?.guest === true;
      await qmp.execute('set-action', { reboot: 'reset' }, this.timeoutMs);
      try {
        await qmp.execute('system_reset', undefined, this.timeoutMs);
        if (await qmp.waitForEvent('RESET', guestReset, this.options.guestResetWaitMs ?? 3000)) {
          while (await qmp.waitForEvent('RESET', guestReset, this.options.resetSettleMs ?? 1000));
        }
      } finally {
        await qmp.execute('set-action', { reboot: 'shutdown' }, this.timeoutMs);
      }
      const st = statusReturn.parse(await qmp.execute('query-status', undefined, this.timeoutMs));
      if (!st.running) await qmp.execute('cont', undefined, this.timeoutMs);
    });
  }

  async powerOff(options: { soft?: boolean; graceMs?: number } = {}): Promise<void> {
    if ((await this.status()) === 'off') return;
    await this.session(async (qmp) => {
      if (options.soft) {
        // ACPI power button; the OS decides. Forced off if it has not gone within graceMs.
        await qmp.execute('system_powerdown', undefined, this.timeoutMs);
        if (await qmp.waitClosed(options.graceMs ?? 30_000)) return;
        qmp.close();
        const again = await QmpClient.open(this.options.qmpSocket, this.timeoutMs);
        try {
          await again.execute('quit', undefined, this.timeoutMs).catch(() => undefined);
        } finally {
          again.close();
        }
        return;
      }
      await qmp.execute('quit', undefined, this.timeoutMs).catch((err: unknown) => {
        // QEMU may close the socket before its reply arrives; that is the outcome we asked for.
        if (!(err instanceof PowerError && /closed/.test(err.message))) throw err;
      });
      await qmp.waitClosed(this.timeoutMs);
    });
  }

  async powerOn(): Promise<void> {
    const state = await this.status();
    if (state === 'on') return;
    if (state === 'off') {
      // A stopped-but-alive QEMU (status shutdown/paused) resumes from a reset.
      const alive = await QmpClient.open(this.options.qmpSocket, this.timeoutMs).catch(() => null);
      if (alive) {
        try {
          await alive.execute('system_reset', undefined, this.timeoutMs);
          await alive.execute('cont', undefined, this.timeoutMs);
        } finally {
          alive.close();
        }
        return;
      }
    }
    if (!this.options.relaunch) {
      throw new PowerError(`VM behind ${this.options.qmpSocket} has exited and this driver cannot start it (no relaunch)`);
    }
    await this.options.relaunch();
  }
}
