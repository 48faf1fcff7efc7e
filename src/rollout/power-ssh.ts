// The `ssh` power driver: a reboot (or poweroff) command run on the node itself over ssh, for
// machines with no BMC fleetboot can reach. The client is OpenSSH's ssh (Debian openssh-client)
// with a key and a pinned known_hosts file: BatchMode (ssh_config(5): no prompt, a refusal
// fails at once), the user's own ssh configuration ignored (-F /dev/null), and host keys
// checked strictly, or trust on first use only where the spec asks for it (StrictHostKeyChecking
// accept-new, ssh_config(5)). ssh cannot reach firmware: no setNextBootNetwork, and no power on.
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { execa } from 'execa';
import type { Logger } from '../log.ts';
import { retryDelay, sleep, underBmcLock } from './bmc-lock.ts';
import { PowerError, type PowerDriver, type PowerState } from './power.ts';

export interface SshPowerOptions {
  host: string;
  port?: number;
  user?: string;
  /** The private key's path; ssh reads the key itself, it never passes through fleetboot. */
  keyFile: string;
  /** known_hosts file holding the node's host key (pinned). */
  knownHostsFile: string;
  /** Let ssh add an unknown host's key to knownHostsFile on first contact; a changed key is still refused. */
  trustOnFirstUse?: boolean;
  /** Run on the node to reboot it (default `reboot`: illumos reboot(8) and Linux reboot both exist as that). */
  command?: string;
  /** Run on the node to power it off (default `poweroff`). */
  poweroffCommand?: string;
  /** How long the node may take to stop answering ssh after the command (default 120 s). */
  downTimeoutMs?: number;
  /** The ssh binary (default `ssh` on PATH). */
  ssh?: string;
  /** Runs ssh under this command (`['ip', 'netns', 'exec', NS]` for a node inside a namespace). */
  wrapper?: string[];
  /** ssh's ConnectTimeout (default 10 s). */
  connectTimeoutMs?: number;
  /** One ssh run is killed after this long (default 30 s). */
  callTimeoutMs?: number;
  /** Connection attempts before giving up (default 3). */
  attempts?: number;
  /** The first retry waits about this long, each later one twice as long, with ±50 % jitter (default 1000 ms). */
  retryDelayMs?: number;
  /** Interval between reachability probes while waiting for the node to go down (default 1000 ms). */
  pollIntervalMs?: number;
  log?: Logger;
  /** For tests: the jitter's random source. */
  random?: () => number;
}

/** Printed by the remote shell before the command: what comes after it ran on the node. */
const startedMarker = 'fleetboot-ssh-command-started';

/** One ssh run, classified; `stdout` is what the node printed (the started marker, say). */
type Outcome =
  | { kind: 'ok'; stdout: string }
  | { kind: 'refused'; message: string; stdout: string }
  | { kind: 'unreachable'; message: string; stdout: string }
  | { kind: 'failed'; exitCode: number; message: string; stdout: string };

export class SshPowerDriver implements PowerDriver {
  readonly kind = 'ssh';
  /** `user@host:port`, the name every error gives the node by. */
  readonly endpoint: string;
  private readonly o: Required<Omit<SshPowerOptions, 'log' | 'wrapper'>> & { wrapper: string[]; log: Logger | null };

  constructor(options: SshPowerOptions) {
    this.o = {
      port: 22,
      user: 'root',
      trustOnFirstUse: false,
      command: 'reboot',
      poweroffCommand: 'poweroff',
      downTimeoutMs: 120_000,
      ssh: 'ssh',
      connectTimeoutMs: 10_000,
      callTimeoutMs: 30_000,
      attempts: 3,
      retryDelayMs: 1000,
      pollIntervalMs: 1000,
      random: Math.random,
      ...options,
      wrapper: options.wrapper ?? [],
      log: options.log ?? null,
    };
    const host = this.o.host.includes(':') ? `[${this.o.host}]` : this.o.host;
    this.endpoint = `${this.o.user}@${host}:${this.o.port}`;
  }

  /** The whole ssh argument array for `remote`; the key appears only as its file's name. */
  argv(remote: string, connectTimeoutMs = this.o.connectTimeoutMs): string[] {
    const opt = (o: string): string[] => ['-o', o];
    return [
      '-F', '/dev/null', // no ~/.ssh/config or /etc/ssh/ssh_config: the spec alone decides
      '-n', '-T',
      ...opt('BatchMode=yes'),
      ...opt(`ConnectTimeout=${Math.max(1, Math.ceil(connectTimeoutMs / 1000))}`),
      ...opt('PreferredAuthentications=publickey'),
      ...opt('IdentitiesOnly=yes'),
      ...opt('IdentityAgent=none'),
      ...opt(`UserKnownHostsFile=${this.o.knownHostsFile}`),
      ...opt('GlobalKnownHostsFile=/dev/null'),
      ...opt(`StrictHostKeyChecking=${this.o.trustOnFirstUse ? 'accept-new' : 'yes'}`),
      ...opt('UpdateHostKeys=no'),
      ...opt('HashKnownHosts=no'),
      // A session whose node went away ends within 10 s (ssh_config(5) ServerAliveInterval).
      ...opt('ServerAliveInterval=5'),
      ...opt('ServerAliveCountMax=2'),
      ...opt('LogLevel=ERROR'),
      '-i', this.o.keyFile,
      '-p', String(this.o.port),
      '-l', this.o.user,
      '--', this.o.host,
      remote,
    ];
  }

  private async preflight(): Promise<void> {
    try {
      await access(this.o.keyFile, constants.R_OK);
    } catch {
      throw new PowerError(`ssh ${this.endpoint}: cannot read the key file ${this.o.keyFile} (power.keyFile)`);
    }
    if (!this.o.trustOnFirstUse) {
      try {
        await access(this.o.knownHostsFile, constants.R_OK);
      } catch {
        throw new PowerError(`ssh ${this.endpoint}: cannot read the known_hosts file ${this.o.knownHostsFile} (power.knownHostsFile): put the node's host key there (ssh-keyscan -p ${this.o.port} ${this.o.host}, after checking its fingerprint on the node's console) or set power.trustOnFirstUse=true`);
      }
    }
  }

  /** One ssh run, classified: ssh itself exits 255 on its own errors (ssh(1) EXIT STATUS). */
  private async runOnce(remote: string, connectTimeoutMs?: number): Promise<Outcome> {
    const [file, ...args] = [...this.o.wrapper, this.o.ssh, ...this.argv(remote, connectTimeoutMs)];
    const r = await execa(file!, args, { reject: false, timeout: this.o.callTimeoutMs, stdin: 'ignore', forceKillAfterDelay: 2000 });
    const stdout = String(r.stdout);
    const stderr = String(r.stderr).trim();
    if (r.code === 'ENOENT' || r.code === 'EACCES') {
      throw new PowerError(`ssh ${this.endpoint}: cannot run ${this.o.ssh} (${r.code}); install openssh-client`);
    }
    if (r.exitCode === 0 && !r.timedOut) return { kind: 'ok', stdout };
    const last = r.timedOut ? `no answer within ${this.o.callTimeoutMs / 1000} s` : stderr.split('\n').filter(Boolean).at(-1) ?? `exit ${r.exitCode ?? r.signal}`;
    if (r.exitCode !== 255 && !r.timedOut && r.exitCode !== undefined) return { kind: 'failed', exitCode: r.exitCode, message: last, stdout };
    const refusal = this.refusal(stderr);
    if (refusal) return { kind: 'refused', message: refusal, stdout };
    return { kind: 'unreachable', message: last, stdout };
  }

  /** What an operator must fix, for the failures that retrying cannot cure; null for the rest. */
  private refusal(stderr: string): string | null {
    const target = `ssh ${this.endpoint}`;
    if (/REMOTE HOST IDENTIFICATION HAS CHANGED|Host key for .* has changed/i.test(stderr)) {
      return `${target}: the node's host key does not match the one in ${this.o.knownHostsFile}: refused (a reinstalled node, or someone in the middle). Check the key's fingerprint on the node's console, then replace it (ssh-keygen -f ${this.o.knownHostsFile} -R '${this.o.port === 22 ? this.o.host : `[${this.o.host}]:${this.o.port}`}')`;
    }
    if (/No .* host key is known for|Host key verification failed/i.test(stderr)) {
      return `${target}: no host key for the node in ${this.o.knownHostsFile}: add it (ssh-keyscan -p ${this.o.port} ${this.o.host}, after checking its fingerprint on the node's console) or set power.trustOnFirstUse=true`;
    }
    if (/UNPROTECTED PRIVATE KEY FILE|bad permissions/i.test(stderr)) {
      return `${target}: ssh refuses the key file ${this.o.keyFile}: others can read it (chmod 600 ${this.o.keyFile})`;
    }
    if (/Load key .*: (invalid format|error in libcrypto)/i.test(stderr)) {
      return `${target}: ${this.o.keyFile} is not a private key ssh can read (power.keyFile)`;
    }
    if (/Permission denied|Too many authentication failures/i.test(stderr)) {
      return `${target}: the node refused the key ${this.o.keyFile} (Permission denied): check that its public key is in ~${this.o.user}/.ssh/authorized_keys on the node and that ${this.o.user} may log in`;
    }
    return null;
  }

  /**
   * Runs `remote` on the node, retrying failures to connect with jittered backoff; throws
   * PowerError naming the node. With `started`, a run that printed it got to the node: a
   * connection that drops after that is not retried (the command may be taking the node down).
   */
  private async run(remote: string, what: string, started?: string): Promise<Outcome & { kind: 'ok' | 'failed' | 'unreachable' }> {
    let last = '';
    for (let attempt = 1; attempt <= this.o.attempts; attempt++) {
      const r = await this.runOnce(remote);
      if (r.kind === 'refused') throw new PowerError(r.message);
      if (r.kind !== 'unreachable' || (started !== undefined && r.stdout.includes(started))) return r;
      last = r.message;
      if (attempt < this.o.attempts) {
        this.o.log?.warn({ event: 'power_ssh_retry', host: this.o.host, attempt, err: last }, `ssh ${this.endpoint}: ${what}: ${last}; retrying`);
        await sleep(retryDelay(this.o.retryDelayMs, attempt, this.o.random));
      }
    }
    throw new PowerError(`ssh ${this.endpoint}: ${what} failed after ${this.o.attempts} attempt${this.o.attempts === 1 ? '' : 's'}: ${last}; check that the node is up and its sshd answers on port ${this.o.port} (and the network path from here)`);
  }

  /** Whether an ssh session running `true` succeeds now (one try, a short connect timeout). */
  private async answers(): Promise<boolean> {
    const r = await this.runOnce('true', Math.min(this.o.connectTimeoutMs, 5000));
    return r.kind === 'ok';
  }

  /**
   * Runs a command that takes the node down. The remote shell prints a marker first, so a
   * connection that drops after it is the node going down (success), and one that fails before
   * it never reached the node (retried). Then the node must stop answering ssh within
   * downTimeoutMs: that, not the command's exit, is what says it went down.
   */
  private async takeDown(command: string, what: string): Promise<void> {
    await this.preflight();
    const r = await this.run(`echo ${startedMarker}; ${command}`, what, startedMarker);
    // 128+N is a shell killed by signal N (the node's shutdown killing the session): going down.
    if (r.kind === 'failed' && r.exitCode < 128) {
      throw new PowerError(`ssh ${this.endpoint}: ${what} exited ${r.exitCode} on the node: ${r.message}; check that the command exists there and that ${this.o.user} may run it`);
    }
    this.o.log?.info({ event: 'power_ssh_command', host: this.o.host, command }, `ssh ${this.endpoint}: ${what} ran; waiting for the node to go down`);
    const deadline = Date.now() + this.o.downTimeoutMs;
    while (await this.answers()) {
      if (Date.now() >= deadline) {
        throw new PowerError(`ssh ${this.endpoint}: after ${what} the node still answers ssh (waited ${this.o.downTimeoutMs / 1000} s for it to go down); check the node's console`);
      }
      await sleep(this.o.pollIntervalMs);
    }
  }

  status(): Promise<PowerState> {
    return underBmcLock(`ssh:${this.endpoint}`, async () => {
      await this.preflight();
      return (await this.answers()) ? 'on' : 'unknown';
    });
  }

  powerCycle(): Promise<void> {
    return underBmcLock(`ssh:${this.endpoint}`, () => this.takeDown(this.o.command, `the reboot command (${this.o.command})`));
  }

  powerOff(): Promise<void> {
    return underBmcLock(`ssh:${this.endpoint}`, () => this.takeDown(this.o.poweroffCommand, `the poweroff command (${this.o.poweroffCommand})`));
  }

  powerOn(): Promise<void> {
    return Promise.reject(new PowerError(`ssh ${this.endpoint}: ssh cannot power a machine on; power it on by hand, or give the node a BMC driver (power.kind=ipmi or redfish)`));
  }
}
