// The `ipmi` power driver: a machine's BMC over IPMI-over-LAN (RMCP+), through ipmitool
// (`-I lanplus`). BMCs are slow and flaky: one action at a time per BMC in this process, a
// timeout on every ipmitool run, retries with jitter, and the power state read back after
// every action, so "done" means the BMC says the machine is where it was asked to be.
import { constants } from 'node:fs';
import { access, open } from 'node:fs/promises';
import { execa } from 'execa';
import { retryDelay, sleep, underBmcLock } from './bmc-lock.ts';
import { PowerError, type PowerDriver, type PowerState } from './power.ts';

export interface IpmiPowerOptions {
  host: string;
  port?: number;
  user: string;
  /** Read by ipmitool itself (`-f`): the password is never on a command line or in a log. */
  passwordFile: string;
  cipherSuite?: number;
  firmware?: 'bios' | 'uefi';
  /** The ipmitool binary (default `ipmitool` on PATH). */
  ipmitool?: string;
  /** Runs ipmitool under this command (`['ip', 'netns', 'exec', NS]` for a BMC inside the lab namespace). */
  wrapper?: string[];
  /** One ipmitool run is killed after this long (default 20 s). */
  callTimeoutMs?: number;
  /** Runs of one ipmitool command before giving up (default 3). */
  attempts?: number;
  /** The first retry waits about this long, each later one twice as long, with ±50 % jitter (default 1000 ms). */
  retryDelayMs?: number;
  /** How long the power state may take to follow an action (default 60 s). */
  settleTimeoutMs?: number;
  /** Interval between power-status reads while waiting (default 1000 ms). */
  pollIntervalMs?: number;
  /** For tests: the jitter's random source. */
  random?: () => number;
}

/** What a failed ipmitool run says, turned into what an operator should check. */
function hintFor(stderr: string, o: { endpoint: string; cipherSuite: number; passwordFile: string; user: string }): string {
  if (/invalid authentication algorithm|invalid integrity algorithm|invalid confidentiality algorithm|cipher suite/i.test(stderr)) {
    return `the BMC refuses cipher suite ${o.cipherSuite}: set power.cipherSuite to one it offers (3 or 17 on most BMCs; 'ipmitool lan print' on the machine lists them)`;
  }
  if (/RAKP|unauthorized name|invalid.*(user|password)|password.*(invalid|incorrect)|insufficient privilege/i.test(stderr)) {
    return `the user "${o.user}" and the password in ${o.passwordFile} (an administrator account on the BMC)`;
  }
  if (/password file|read password/i.test(stderr)) return `that ${o.passwordFile} is a readable file holding the password on its first line`;
  if (/not supported in present state|D5h/i.test(stderr)) return 'the machine\'s power state (the BMC refuses that action in it)';
  // A wrong user or password often gets no RAKP answer at all (ipmi_sim, many BMCs), so ipmitool
  // says only that no session was opened: the same words as a BMC that is not there.
  return `that the BMC answers IPMI over LAN at ${o.endpoint} (UDP; IPMI over LAN enabled, the network path open), then the user "${o.user}" and the password in ${o.passwordFile}`;
}

// ipmitool prints this when no RMCP+ session could be opened (src/plugins/lanplus/lanplus.c
// ipmi_lanplus_open): no command reached the BMC, so even a power cycle is safe to run again.
const noSession = /Unable to establish IPMI v2 \/ RMCP\+ session/i;

export class IpmiPowerDriver implements PowerDriver {
  readonly kind = 'ipmi';
  /** `host:port`, the name every error gives the BMC by. */
  readonly endpoint: string;
  private readonly o: Required<Omit<IpmiPowerOptions, 'wrapper'>> & { wrapper: string[] };

  constructor(options: IpmiPowerOptions) {
    this.o = {
      port: 623,
      cipherSuite: 3,
      firmware: 'bios',
      ipmitool: 'ipmitool',
      callTimeoutMs: 20_000,
      attempts: 3,
      retryDelayMs: 1000,
      settleTimeoutMs: 60_000,
      pollIntervalMs: 1000,
      random: Math.random,
      ...options,
      wrapper: options.wrapper ?? [],
    };
    this.endpoint = `${this.o.host.includes(':') ? `[${this.o.host}]` : this.o.host}:${this.o.port}`;
  }

  /** The whole argument array for one ipmitool command; the password is only the file's name. */
  argv(command: string[]): string[] {
    return [
      '-I', 'lanplus',
      '-H', this.o.host,
      '-p', String(this.o.port),
      '-U', this.o.user,
      '-f', this.o.passwordFile,
      '-C', String(this.o.cipherSuite),
      // ipmitool's own resend: 2 s per try, 1 retry. Our retries around it add jitter and a
      // fresh session; its defaults (1 s, 4 retries) would outlast slow BMCs' session setup.
      '-N', '2',
      '-R', '1',
      ...command,
    ];
  }

  private async checkPasswordFile(): Promise<void> {
    try {
      await access(this.o.passwordFile, constants.R_OK);
    } catch {
      throw new PowerError(`BMC ${this.endpoint}: cannot read the password file ${this.o.passwordFile} (power.passwordFile); ipmitool would ask on a terminal instead`);
    }
    // ipmitool takes the first line, at most 20 bytes (lib/ipmi_main.c ipmi_password_file_read;
    // IPMI v2.0 §13.31: RMCP+ passwords are 20 bytes): a longer one would be cut, never match.
    const handle = await open(this.o.passwordFile, 'r');
    try {
      const { buffer, bytesRead } = await handle.read(Buffer.alloc(64), 0, 64, 0);
      const firstLine = buffer.subarray(0, bytesRead).toString('latin1').split(/[\r\n\t]/)[0] ?? '';
      if (firstLine.length === 0) throw new PowerError(`BMC ${this.endpoint}: the password file ${this.o.passwordFile} is empty (the password goes on its first line)`);
      if (firstLine.length > 20) throw new PowerError(`BMC ${this.endpoint}: the password in ${this.o.passwordFile} is longer than the 20 bytes IPMI 2.0 allows`);
    } finally {
      await handle.close();
    }
  }

  /**
   * Runs one ipmitool command with the call timeout, retried with jittered backoff. `idempotent`
   * false (a power cycle or reset): retried only when no session was opened, so the BMC never
   * got the command.
   */
  private async ipmitool(command: string[], what: string, idempotent: boolean): Promise<string> {
    const argv = this.argv(command);
    const [file, ...args] = [...this.o.wrapper, this.o.ipmitool, ...argv];
    let last = '';
    for (let attempt = 1; attempt <= this.o.attempts; attempt++) {
      const r = await execa(file!, args, { reject: false, timeout: this.o.callTimeoutMs, stdin: 'ignore', forceKillAfterDelay: 2000 });
      if (r.exitCode === 0 && !r.timedOut) return String(r.stdout);
      const stderr = String(r.stderr).trim();
      if (r.code === 'ENOENT' || r.code === 'EACCES') {
        // Not started at all: no retry helps.
        throw new PowerError(`BMC ${this.endpoint}: cannot run ${this.o.ipmitool} (${r.code}); install ipmitool (Debian package ipmitool)`);
      }
      last = r.timedOut ? `no answer within ${this.o.callTimeoutMs / 1000} s` : stderr.split('\n').filter(Boolean).at(-1) ?? `exit ${r.exitCode}`;
      const retryable = idempotent || (!r.timedOut && noSession.test(stderr));
      const hint = hintFor(stderr, { ...this.o, endpoint: this.endpoint });
      // A refusal the BMC will repeat; "no response from RAKP 1 message" is a timeout and is retried.
      const deterministic = /cipher suite|(authentication|integrity|confidentiality) algorithm|RAKP \d HMAC is invalid|invalid integrity check|unauthorized name|password file/i.test(stderr);
      if (attempt === this.o.attempts || !retryable || deterministic) {
        throw new PowerError(`BMC ${this.endpoint}: ${what} failed after ${attempt} attempt${attempt === 1 ? '' : 's'}: ${last}; check ${hint}`);
      }
      await sleep(retryDelay(this.o.retryDelayMs, attempt, this.o.random));
    }
    throw new PowerError(`BMC ${this.endpoint}: ${what} failed: ${last}`);
  }

  private async readStatus(): Promise<PowerState> {
    // Get Chassis Status (IPMI v2.0 §28.2) byte 1 bit 0; ipmitool prints "Chassis Power is on|off"
    // (lib/ipmi_chassis.c ipmi_chassis_print_power_status).
    const out = await this.ipmitool(['chassis', 'power', 'status'], 'chassis power status', true);
    const m = /Chassis Power is (on|off)/i.exec(out);
    return m ? (m[1]!.toLowerCase() as PowerState) : 'unknown';
  }

  /** Polls the power state until `want`, or throws naming the BMC after settleTimeoutMs. */
  private async waitFor(want: 'on' | 'off', action: string, opts: { sawOffFirst?: boolean; minMs?: number } = {}): Promise<void> {
    const started = Date.now();
    const deadline = started + this.o.settleTimeoutMs;
    let sawOff = false;
    let last: PowerState = 'unknown';
    for (;;) {
      last = await this.readStatus();
      if (last === 'off') sawOff = true;
      const longEnough = Date.now() - started >= (opts.minMs ?? 0);
      if (last === want && (!opts.sawOffFirst || sawOff || longEnough)) return;
      if (Date.now() >= deadline) {
        throw new PowerError(`BMC ${this.endpoint}: after ${action} the machine's power is still ${last} (waited ${this.o.settleTimeoutMs / 1000} s for ${want}); check the machine's power supply and the BMC's event log ('ipmitool sel list')`);
      }
      await sleep(this.o.pollIntervalMs);
    }
  }

  setNextBootNetwork(): Promise<void> {
    return underBmcLock(this.endpoint, () => this.preflight().then(() => this.bootFromNetworkNext()));
  }

  private async bootFromNetworkNext(): Promise<void> {
    // Set System Boot Options, boot flags (IPMI v2.0 §28.12, Table 28-14 parameter 5): device
    // selector "force PXE", for the next boot only; `efiboot` sets byte 1 bit 5 (EFI boot type,
    // lib/ipmi_chassis.c bootdev_parse_options) so a UEFI machine PXE-boots in UEFI mode.
    await this.ipmitool(['chassis', 'bootdev', 'pxe', ...(this.o.firmware === 'uefi' ? ['options=efiboot'] : [])], 'chassis bootdev pxe', true);
  }

  status(): Promise<PowerState> {
    return underBmcLock(this.endpoint, () => this.preflight().then(() => this.readStatus()));
  }

  powerOn(): Promise<void> {
    return underBmcLock(this.endpoint, async () => {
      await this.preflight();
      if ((await this.readStatus()) === 'on') return;
      await this.bootFromNetworkNext();
      // Chassis Control 01h power up (IPMI v2.0 §28.3).
      await this.ipmitool(['chassis', 'power', 'on'], 'chassis power on', true);
      await this.waitFor('on', 'chassis power on');
    });
  }

  powerOff(options: { soft?: boolean; graceMs?: number } = {}): Promise<void> {
    return underBmcLock(this.endpoint, async () => {
      await this.preflight();
      if ((await this.readStatus()) === 'off') return;
      if (options.soft) {
        // Chassis Control 05h soft shutdown (ACPI, IPMI v2.0 §28.3); forced off after graceMs.
        await this.ipmitool(['chassis', 'power', 'soft'], 'chassis power soft', true);
        const deadline = Date.now() + (options.graceMs ?? 30_000);
        while (Date.now() < deadline) {
          if ((await this.readStatus()) === 'off') return;
          await sleep(this.o.pollIntervalMs);
        }
      }
      // Chassis Control 00h power down (IPMI v2.0 §28.3).
      await this.ipmitool(['chassis', 'power', 'off'], 'chassis power off', true);
      await this.waitFor('off', 'chassis power off');
    });
  }

  powerCycle(): Promise<void> {
    return underBmcLock(this.endpoint, async () => {
      await this.preflight();
      const before = await this.readStatus();
      await this.bootFromNetworkNext();
      if (before === 'off') {
        // A power cycle of a machine that is off may be refused (IPMI v2.0 §28.3: completion
        // code D5h, "not supported in present state"): power it on instead.
        await this.ipmitool(['chassis', 'power', 'on'], 'chassis power on', true);
        await this.waitFor('on', 'chassis power on');
        return;
      }
      // Chassis Control 02h power cycle: off, at least 1 s, on again (IPMI v2.0 §28.3). Not
      // idempotent: retried only when the BMC never got it. Done when the BMC has been seen off
      // or, as a quick off can fall between two polls, reports on again after that 1 s.
      await this.ipmitool(['chassis', 'power', 'cycle'], 'chassis power cycle', false);
      await this.waitFor('on', 'chassis power cycle', { sawOffFirst: true, minMs: 2000 });
    });
  }

  /** Hard reset (Chassis Control 03h): the machine restarts without a power-off. */
  powerReset(): Promise<void> {
    return underBmcLock(this.endpoint, async () => {
      await this.preflight();
      await this.bootFromNetworkNext();
      await this.ipmitool(['chassis', 'power', 'reset'], 'chassis power reset', false);
      await this.waitFor('on', 'chassis power reset');
    });
  }

  private preflight(): Promise<void> {
    return this.checkPasswordFile();
  }
}
