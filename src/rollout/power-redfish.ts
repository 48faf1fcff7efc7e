// The `redfish` power driver: a machine's BMC over DMTF Redfish (DSP0266, the protocol; DSP8010,
// the schemas), HTTPS and JSON. Like the ipmi driver: one action at a time per BMC in this
// process, a timeout on every request, retries with jitter, and the power state read back after
// every action. The password is read from a file for each action and goes nowhere but the
// request body of a session login (or a Basic header); the session token goes nowhere but the
// X-Auth-Token header. Neither is logged or put into an error.
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';
import { Agent, request as httpsRequest, type RequestOptions } from 'node:https';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { z } from 'zod';
import { silentLogger, type Logger } from '../log.ts';
import { retryDelay, sleep, underBmcLock } from './bmc-lock.ts';
import { PowerError, type PowerDriver, type PowerState } from './power.ts';

export interface RedfishPowerOptions {
  /** https://HOST[:PORT] of the BMC's Redfish service. */
  url: string;
  /** The ComputerSystem's Id; without it, the only member of the Systems collection. */
  systemId?: string;
  user: string;
  /** Its first line is the password. Read at every action, never kept. */
  passwordFile: string;
  auth?: 'session' | 'basic';
  /** PEM: a CA, or the BMC's own (self-signed) certificate. */
  caFile?: string;
  /** SHA-256 fingerprint of the one certificate accepted (64 hex digits, colons allowed). */
  certSha256?: string;
  /** Accept any certificate. Refused together with caFile or certSha256. */
  insecure?: boolean;
  /** Ask for the network boot as BootSourceOverrideMode UEFI (uefi) or Legacy (bios) when the BMC offers it. */
  firmware?: 'bios' | 'uefi';
  /** Request lines (method, path, status) at debug, retries at warn; never a header or a body. */
  log?: Logger;
  /** One request is abandoned after this long (default 20 s). */
  callTimeoutMs?: number;
  /** Tries of one request before giving up on 5xx and timeouts (default 3). */
  attempts?: number;
  /** The first retry waits about this long, each later one twice as long, with ±50 % jitter (default 1000 ms). */
  retryDelayMs?: number;
  /** How long the power state may take to follow an action (default 120 s: a server's POST is slow). */
  settleTimeoutMs?: number;
  /** Interval between power-state reads, and between task monitor polls without Retry-After (default 1000 ms). */
  pollIntervalMs?: number;
  /** How long a 202 Accepted task may run (default 120 s). */
  taskTimeoutMs?: number;
  /** For tests: the jitter's random source. */
  random?: () => number;
}

const odataLink = z.object({ '@odata.id': z.string().min(1) });

// ServiceRoot (ServiceRoot.v1_x): where the Systems collection and the session login are.
const serviceRootDoc = z.object({
  Systems: odataLink.optional(),
  Links: z.object({ Sessions: odataLink.optional() }).optional(),
});

const collectionDoc = z.object({ Members: z.array(odataLink) });

// ComputerSystem (ComputerSystem.v1_x): the few properties a power driver reads.
const systemDoc = z.object({
  Id: z.string().optional(),
  PowerState: z.string().nullable().optional(),
  Boot: z
    .object({
      BootSourceOverrideTarget: z.string().nullable().optional(),
      'BootSourceOverrideTarget@Redfish.AllowableValues': z.array(z.string()).optional(),
      BootSourceOverrideEnabled: z.string().nullable().optional(),
      BootSourceOverrideMode: z.string().nullable().optional(),
      'BootSourceOverrideMode@Redfish.AllowableValues': z.array(z.string()).optional(),
    })
    .optional(),
  Actions: z
    .object({
      '#ComputerSystem.Reset': z
        .object({
          target: z.string().min(1),
          'ResetType@Redfish.AllowableValues': z.array(z.string()).optional(),
          '@Redfish.ActionInfo': z.string().optional(),
        })
        .optional(),
    })
    .optional(),
});
type SystemDoc = z.infer<typeof systemDoc>;

// ActionInfo (ActionInfo.v1_x): the allowable values of an action's parameters, where the BMC
// lists them there instead of in an @Redfish.AllowableValues annotation.
const actionInfoDoc = z.object({
  Parameters: z.array(z.object({ Name: z.string(), AllowableValues: z.array(z.string()).optional() })).optional(),
});

// Task (Task.v1_x): TaskState is New|Starting|Running|Suspended|Interrupted|Pending|Stopping|
// Completed|Killed|Exception|Service|Cancelling|Cancelled.
const taskDoc = z.object({
  TaskState: z.string().optional(),
  TaskStatus: z.string().optional(),
  Messages: z.array(z.object({ Message: z.string().optional(), MessageId: z.string().optional() })).optional(),
});
const taskFailed = new Set(['Exception', 'Killed', 'Cancelled', 'Interrupted']);

// DSP0266 §"Error responses": { "error": { "code", "message", "@Message.ExtendedInfo": [...] } }.
const errorDoc = z.object({
  error: z.object({
    message: z.string().optional(),
    '@Message.ExtendedInfo': z.array(z.object({ Message: z.string().optional(), MessageId: z.string().optional() })).optional(),
  }),
});

/**
 * PowerState (ComputerSystem.v1_x, Resource.PowerState: On, Off, PoweringOn, PoweringOff,
 * Paused) as a driver's state: the transitions and Paused (the machine is powered but not
 * running, so it will not boot) are `unknown`, which the settle loop keeps polling through.
 */
export function powerStateOf(redfish: string | null | undefined): PowerState {
  if (redfish === 'On') return 'on';
  if (redfish === 'Off') return 'off';
  return 'unknown';
}

export type ResetIntent = 'cycle' | 'on' | 'off' | 'soft';

/**
 * The ResetType values (Resource.ResetType) that carry out `intent`, in order, chosen from those
 * the BMC allows; null when none fits. `allowed` null: the BMC lists none, so only the values
 * every Redfish version has (Resource.v1_0_0: On, ForceOff, GracefulShutdown, ForceRestart) are used.
 */
export function resetPlan(intent: ResetIntent, allowed: readonly string[] | null): string[] | null {
  const offers = (t: string): boolean => (allowed === null ? ['On', 'ForceOff', 'GracefulShutdown', 'ForceRestart'].includes(t) : allowed.includes(t));
  const on = ['On', 'ForceOn'].find(offers);
  switch (intent) {
    case 'cycle':
      // PowerCycle removes and restores power (added in Resource.v1_3_0); ForceRestart is a
      // ForceOff followed by an On (ComputerSystem Reset action's description); failing both, the two steps.
      if (offers('PowerCycle')) return ['PowerCycle'];
      if (offers('ForceRestart')) return ['ForceRestart'];
      return offers('ForceOff') && on ? ['ForceOff', on] : null;
    case 'on':
      return on ? [on] : null;
    case 'off':
      return offers('ForceOff') ? ['ForceOff'] : null;
    case 'soft':
      // GracefulShutdown asks the OS; PushPowerButton is the ACPI power button, which asks it too.
      return offers('GracefulShutdown') ? ['GracefulShutdown'] : offers('PushPowerButton') ? ['PushPowerButton'] : null;
  }
}

const intentWords: Record<ResetIntent, string> = {
  cycle: 'a power cycle (PowerCycle, ForceRestart, or ForceOff with On)',
  on: 'a power on (On or ForceOn)',
  off: 'a power off (ForceOff)',
  soft: 'a soft power off (GracefulShutdown or PushPowerButton)',
};

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: unknown;
}

/** A request that got no HTTP answer. `unsent`: it cannot have reached the BMC (no connection was made). */
class NoAnswer extends Error {
  constructor(message: string, readonly unsent: boolean) {
    super(message);
  }
}

const maxAnswerBytes = 4 << 20;

// Connection errors that mean nothing was delivered (the request is written only once connected).
const notConnected = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EADDRNOTAVAIL']);

/**
 * The certificate checks, done on the TLS socket before the request is written to it, so no
 * credential is sent to a BMC that failed them: a pin compares the certificate's SHA-256 (the
 * chain is not needed: the pin is the trust); otherwise the chain must verify against caFile or
 * the system CAs and name the host (tls.checkServerIdentity).
 */
class VerifyingAgent extends Agent {
  constructor(private readonly trust: { ca: string | undefined; caFile: string | undefined; pin: string | undefined; insecure: boolean; origin: string; handshakeTimeoutMs: number }) {
    super({ keepAlive: false });
  }

  override createConnection(options: RequestOptions, callback?: (err: Error | null, stream: Duplex) => void): Duplex | null | undefined {
    const servername = (options as { servername?: unknown }).servername;
    const socket: TLSSocket = tlsConnect({
      host: options.host ?? 'localhost',
      port: Number(options.port ?? 443),
      ...(typeof servername === 'string' && servername !== '' ? { servername } : {}),
      ...(this.trust.ca !== undefined ? { ca: this.trust.ca } : {}),
      // Checked below with the reason named, instead of a bare handshake error.
      rejectUnauthorized: false,
    });
    const fail = (err: Error): void => {
      socket.destroy();
      callback?.(err, socket);
    };
    socket.once('error', fail);
    // A BMC that takes the connection and never finishes the handshake must not hold the socket open.
    socket.setTimeout(this.trust.handshakeTimeoutMs, () => fail(new Error(`no TLS handshake within ${this.trust.handshakeTimeoutMs / 1000} s`)));
    socket.once('secureConnect', () => {
      socket.off('error', fail);
      socket.setTimeout(0);
      const problem = this.problemWith(socket);
      if (problem) fail(new CertificateRefused(problem));
      else callback?.(null, socket);
    });
    return undefined;
  }

  private problemWith(socket: TLSSocket): string | null {
    const t = this.trust;
    if (t.insecure) return null;
    const raw = socket.getPeerCertificate().raw;
    const seen = raw ? new X509Certificate(raw).fingerprint256.replace(/:/g, '') : '(none)';
    const where = `BMC ${t.origin}: certificate refused`;
    if (t.pin !== undefined) {
      if (seen !== t.pin) return `${where}: its SHA-256 fingerprint is ${seen}, not the pinned power.certSha256 ${t.pin}; check the BMC's certificate (replaced, or another machine at that address)`;
      if (t.caFile === undefined || socket.authorized) return null;
    }
    if (socket.authorized) return null;
    const why = String(socket.authorizationError ?? 'not verified');
    if (t.caFile !== undefined) return `${where}: not trusted by power.caFile ${t.caFile} (${why}); check that the file holds the CA that signed it or the BMC's own certificate (SHA-256 ${seen})`;
    return `${where}: not trusted by the system's CAs (${why}); give power.caFile=PEM (its CA or its own certificate), power.certSha256=${seen} if that is the BMC's certificate, or power.insecure=true`;
  }
}

class CertificateRefused extends Error {}

/** One action's talk with the BMC: its session (if any) and its connections end with it. */
class Conversation {
  private token: { value: string; location: string | null } | null = null;
  private sessionsPath = '/redfish/v1/SessionService/Sessions';
  private readonly agent: VerifyingAgent;

  constructor(
    private readonly d: RedfishPowerDriver,
    private readonly password: string,
    agentTrust: ConstructorParameters<typeof VerifyingAgent>[0],
  ) {
    this.agent = new VerifyingAgent(agentTrust);
  }

  /** Any error text with the password and the token taken out, whatever the BMC echoed. */
  scrub(text: string): string {
    let out = text;
    for (const secret of [this.password, this.token?.value]) if (secret) out = out.split(secret).join('[redacted]');
    return out;
  }

  private authHeaders(): Record<string, string> {
    if (this.d.o.auth === 'basic') return { authorization: `Basic ${Buffer.from(`${this.d.o.user}:${this.password}`).toString('base64')}` };
    return this.token ? { 'x-auth-token': this.token.value } : {};
  }

  /** One HTTP exchange, abandoned after callTimeoutMs. */
  private once(method: string, path: string, body: unknown, headers: Record<string, string>): Promise<Reply> {
    const url = new URL(path, this.d.origin);
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise<Reply>((resolve, reject) => {
      const req = httpsRequest(
        url,
        {
          method,
          agent: this.agent,
          headers: {
            accept: 'application/json',
            // DSP0266 §"Request headers": OData-Version 4.0 on every request.
            'odata-version': '4.0',
            ...(payload ? { 'content-type': 'application/json', 'content-length': String(payload.length) } : {}),
            ...headers,
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            // A power driver reads small documents; a BMC streaming more is not answering Redfish.
            if (size > maxAnswerBytes) req.destroy(new NoAnswer(`an answer larger than ${maxAnswerBytes >> 20} MiB`, false));
            else chunks.push(c);
          });
          res.on('error', (err) => {
            clearTimeout(timer);
            reject(err instanceof NoAnswer ? err : new NoAnswer(`the answer broke off (${err.message})`, false));
          });
          res.on('end', () => {
            clearTimeout(timer);
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown;
            try {
              parsed = text.trim() === '' ? undefined : JSON.parse(text);
            } catch {
              parsed = undefined;
            }
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body: parsed });
          });
        },
      );
      const timer = setTimeout(() => req.destroy(new NoAnswer(`no answer within ${this.d.o.callTimeoutMs / 1000} s`, false)), this.d.o.callTimeoutMs);
      req.on('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        if (err instanceof NoAnswer || err instanceof CertificateRefused) reject(err);
        else reject(new NoAnswer(`${err.code ?? err.message}`, notConnected.has(err.code ?? '')));
      });
      req.end(payload);
    });
  }

  /**
   * A request with the retries: 5xx and no answer are tried again with jittered backoff (a reset
   * only when it cannot have reached the BMC, or the BMC said 5xx), a 401 on a session logs in
   * again once; any other 4xx is the BMC's final word. Returns 2xx and 3xx replies, and 404 when `allow404`.
   */
  async call(method: 'GET' | 'POST' | 'PATCH' | 'DELETE', path: string, what: string, opts: { body?: unknown; headers?: Record<string, string>; resend?: 'always' | 'unsent'; allow404?: boolean; noAuth?: boolean; noRelogin?: boolean } = {}): Promise<Reply> {
    const o = this.d.o;
    let reloggedIn = false;
    let last = '';
    // A session's URI could carry its token on some BMCs: paths are shown scrubbed too.
    const shown = (): string => this.scrub(path);
    for (let attempt = 1; attempt <= o.attempts; attempt++) {
      const started = Date.now();
      let reply: Reply;
      try {
        reply = await this.once(method, path, opts.body, { ...(opts.noAuth ? {} : this.authHeaders()), ...(opts.headers ?? {}) });
      } catch (err) {
        if (err instanceof CertificateRefused) throw new PowerError(err.message);
        const e = err as NoAnswer;
        last = e.message;
        this.d.log.warn({ event: 'redfish_no_answer', bmc: this.d.origin, method, path: shown(), attempt, problem: e.message }, 'Redfish request got no answer');
        // A reset that may have reached the BMC is not sent again: a second one could cycle twice.
        const mayHaveActed = opts.resend === 'unsent' && !e.unsent;
        if (attempt < o.attempts && !mayHaveActed) {
          await sleep(retryDelay(o.retryDelayMs, attempt, o.random));
          continue;
        }
        const check = mayHaveActed
          ? `the machine's power (fleetboot node power NODE status): the BMC may have carried it out; not sent again`
          : `that the BMC answers HTTPS at ${this.d.origin} (its Redfish service enabled, the network path open)`;
        throw new PowerError(`BMC ${this.d.origin}: ${what} (${method} ${shown()}) failed after ${attempt} attempt${attempt === 1 ? '' : 's'}: ${last}; check ${check}`);
      }
      this.d.log.debug({ event: 'redfish_request', bmc: this.d.origin, method, path: shown(), status: reply.status, ms: Date.now() - started, attempt }, 'Redfish request');
      if (reply.status === 401 && o.auth === 'session' && this.token && !reloggedIn && !opts.noAuth && !opts.noRelogin) {
        // The session ended on the BMC (timed out, or the BMC restarted): log in again, once.
        reloggedIn = true;
        this.d.log.info({ event: 'redfish_relogin', bmc: this.d.origin, path: shown() }, 'Redfish session refused; logging in again');
        this.token = null;
        await this.login();
        attempt--;
        continue;
      }
      if (reply.status < 400 || (reply.status === 404 && opts.allow404)) return reply;
      last = `HTTP ${reply.status}${this.messageOf(reply.body)}`;
      if (reply.status >= 500 && attempt < o.attempts) {
        this.d.log.warn({ event: 'redfish_retry', bmc: this.d.origin, method, path: shown(), attempt, status: reply.status }, 'Redfish request failed; retrying');
        await sleep(retryDelay(o.retryDelayMs, attempt, o.random));
        continue;
      }
      throw new PowerError(this.scrub(`BMC ${this.d.origin}: ${what} (${method} ${path}) failed${reply.status >= 500 ? ` after ${attempt} attempt${attempt === 1 ? '' : 's'}` : ''}: ${last}; check ${this.hintFor(reply.status)}`));
    }
    throw new PowerError(this.scrub(`BMC ${this.d.origin}: ${what} (${method} ${path}) failed: ${last}`));
  }

  private messageOf(body: unknown): string {
    const e = errorDoc.safeParse(body);
    if (!e.success) return '';
    const texts = [e.data.error.message, ...(e.data.error['@Message.ExtendedInfo'] ?? []).map((m) => m.Message ?? m.MessageId)].filter((t): t is string => !!t);
    return texts.length ? `: ${[...new Set(texts)].join('; ')}` : '';
  }

  private hintFor(status: number): string {
    const o = this.d.o;
    if (status === 401) return `the user "${o.user}" and the password in ${o.passwordFile} (power.user, power.passwordFile)${o.auth === 'session' ? '' : ', and that the BMC takes Basic authentication (else power.auth=session)'}`;
    if (status === 403) return `that the user "${o.user}" may control power (Redfish privilege ConfigureComponents)`;
    if (status === 404) return `the ComputerSystem (power.systemId${o.systemId ? ` ${o.systemId}` : ''}) and the BMC's Redfish paths`;
    if (status === 405 || status === 501) return 'that the BMC supports this operation (its firmware may be too old)';
    if (status >= 500) return "the BMC's own health (its web interface, its event log); it kept failing";
    return 'what the BMC says above (an unsupported value, or a property it does not let be changed)';
  }

  private parse<S extends z.ZodType>(schema: S, reply: Reply, what: string, path: string): z.infer<S> {
    const r = schema.safeParse(reply.body);
    if (r.success) return r.data;
    const issue = r.error.issues[0];
    throw new PowerError(`BMC ${this.d.origin}: ${path} is not a Redfish ${what}${issue ? ` (${issue.path.map(String).join('.') || 'the document'}: ${issue.message})` : ''}`);
  }

  async get<S extends z.ZodType>(schema: S, path: string, what: string): Promise<{ doc: z.infer<S>; etag: string | undefined }> {
    const reply = await this.call('GET', path, `reading the ${what}`);
    const etag = reply.headers.etag;
    return { doc: this.parse(schema, reply, what, path), etag: typeof etag === 'string' ? etag : undefined };
  }

  /** Reads the service root (no authentication needed, DSP0266 §"Service root") and logs in when auth is session. */
  async open(): Promise<{ systemsPath: string }> {
    const reply = await this.call('GET', '/redfish/v1/', 'reading the service root', { noAuth: true });
    const root = this.parse(serviceRootDoc, reply, 'service root', '/redfish/v1/');
    this.sessionsPath = root.Links?.Sessions?.['@odata.id'] ?? this.sessionsPath;
    if (this.d.o.auth === 'session') await this.login();
    return { systemsPath: root.Systems?.['@odata.id'] ?? '/redfish/v1/Systems' };
  }

  /** DSP0266 §"Session login": POST UserName/Password, the token in X-Auth-Token, the session's URI in Location. */
  private async login(): Promise<void> {
    const reply = await this.call('POST', this.sessionsPath, 'session login', { body: { UserName: this.d.o.user, Password: this.password }, noAuth: true });
    const token = reply.headers['x-auth-token'];
    if (typeof token !== 'string' || token === '') {
      throw new PowerError(`BMC ${this.d.origin}: session login (POST ${this.sessionsPath}) answered HTTP ${reply.status} without an X-Auth-Token; check that the BMC supports Redfish sessions, else set power.auth=basic`);
    }
    const location = reply.headers.location ?? odataLink.safeParse(reply.body).data?.['@odata.id'] ?? null;
    this.token = { value: token, location: location ? new URL(location, this.d.origin).pathname : null };
    this.d.log.debug({ event: 'redfish_login', bmc: this.d.origin, session: this.scrub(this.token.location ?? '') }, 'Redfish session opened');
  }

  /** DSP0266 §"Session termination": DELETE the session's URI. A failed logout is logged, never thrown. */
  async close(): Promise<void> {
    try {
      if (this.token?.location) {
        const location = this.token.location;
        try {
          // A 401 or 404 here: the BMC has ended the session already (a new login would only leave one behind).
          await this.call('DELETE', location, 'session logout', { allow404: true, noRelogin: true });
          this.d.log.debug({ event: 'redfish_logout', bmc: this.d.origin, session: this.scrub(location) }, 'Redfish session closed');
        } catch (err) {
          this.d.log.warn({ event: 'redfish_logout_failed', bmc: this.d.origin, session: this.scrub(location), err: this.scrub((err as Error).message) }, 'Redfish session logout failed; the BMC ends it when it times out');
        }
      }
    } finally {
      this.token = null;
      this.agent.destroy();
    }
  }
}

export class RedfishPowerDriver implements PowerDriver {
  readonly kind = 'redfish';
  /** https://host:port, the name every error gives the BMC by, and the lock's key. */
  readonly origin: string;
  readonly o: Required<Omit<RedfishPowerOptions, 'systemId' | 'caFile' | 'certSha256' | 'firmware' | 'log'>> & Pick<RedfishPowerOptions, 'systemId' | 'caFile' | 'certSha256' | 'firmware'>;
  readonly log: Logger;
  /** The ComputerSystem's path, once found. */
  private systemPath: string | null = null;

  constructor(options: RedfishPowerOptions) {
    let url: URL;
    try {
      url = new URL(options.url);
    } catch {
      throw new PowerError(`power.url: expected https://BMC[:PORT], got ${JSON.stringify(options.url)}`);
    }
    if (url.protocol !== 'https:') throw new PowerError(`power.url: expected https://, got ${url.protocol}// (Redfish credentials never travel in clear)`);
    this.origin = url.origin;
    const { log, ...rest } = options;
    this.log = log ?? silentLogger;
    this.o = {
      auth: 'session',
      insecure: false,
      callTimeoutMs: 20_000,
      attempts: 3,
      retryDelayMs: 1000,
      settleTimeoutMs: 120_000,
      pollIntervalMs: 1000,
      taskTimeoutMs: 120_000,
      random: Math.random,
      ...rest,
    };
    const pin = this.o.certSha256?.replace(/[:\s]/g, '').toUpperCase();
    if (pin !== undefined && !/^[0-9A-F]{64}$/.test(pin)) throw new PowerError('power.certSha256: expected 64 hex digits (openssl x509 -noout -fingerprint -sha256)');
    this.o.certSha256 = pin;
    // RFC 7617 §2: a Basic user-id cannot hold a colon (the password starts after the first one).
    if (this.o.auth === 'basic' && this.o.user.includes(':')) throw new PowerError('power.user: a user name with ":" cannot be sent with Basic authentication; use power.auth=session');
    if (this.o.insecure && (this.o.caFile !== undefined || pin !== undefined)) {
      throw new PowerError('power.insecure: cannot be combined with power.caFile or power.certSha256 (those check the certificate; insecure checks nothing): remove one');
    }
  }

  private async readPassword(): Promise<string> {
    let text: string;
    try {
      text = await readFile(this.o.passwordFile, 'utf8');
    } catch (err) {
      throw new PowerError(`BMC ${this.origin}: cannot read the password file ${this.o.passwordFile} (power.passwordFile): ${(err as NodeJS.ErrnoException).code ?? 'unreadable'}`);
    }
    const password = text.split(/\r?\n/)[0] ?? '';
    if (password === '') throw new PowerError(`BMC ${this.origin}: the password file ${this.o.passwordFile} is empty (the password goes on its first line)`);
    return password;
  }

  /** Runs `fn` under the BMC's lock with a conversation that is closed (session logged out) after it, also when it fails. */
  private act<T>(fn: (c: Conversation, systemPath: string) => Promise<T>): Promise<T> {
    return underBmcLock(this.origin, async () => {
      const password = await this.readPassword();
      let ca: string | undefined;
      if (this.o.caFile !== undefined) {
        try {
          ca = await readFile(this.o.caFile, 'utf8');
        } catch (err) {
          throw new PowerError(`BMC ${this.origin}: cannot read power.caFile ${this.o.caFile}: ${(err as NodeJS.ErrnoException).code ?? 'unreadable'}`);
        }
      }
      const c = new Conversation(this, password, { ca, caFile: this.o.caFile, pin: this.o.certSha256, insecure: this.o.insecure, origin: this.origin, handshakeTimeoutMs: this.o.callTimeoutMs });
      try {
        const { systemsPath } = await c.open();
        this.systemPath ??= await this.findSystem(c, systemsPath);
        return await fn(c, this.systemPath);
      } catch (err) {
        throw err instanceof PowerError ? new PowerError(c.scrub(err.message), { cause: err }) : err;
      } finally {
        await c.close();
      }
    });
  }

  private async findSystem(c: Conversation, systemsPath: string): Promise<string> {
    const { doc } = await c.get(collectionDoc, systemsPath, 'Systems collection');
    const members = doc.Members.map((m) => m['@odata.id']);
    const idOf = (p: string): string => p.replace(/\/+$/, '').split('/').at(-1) ?? p;
    const ids = members.map(idOf).join(', ') || 'none';
    if (this.o.systemId !== undefined) {
      const found = members.find((p) => idOf(p) === this.o.systemId);
      if (!found) throw new PowerError(`BMC ${this.origin}: no ComputerSystem ${this.o.systemId} in ${systemsPath} (it has: ${ids}); check power.systemId`);
      return found;
    }
    if (members.length === 1) return members[0]!;
    if (members.length === 0) throw new PowerError(`BMC ${this.origin}: ${systemsPath} has no ComputerSystem to power`);
    throw new PowerError(`BMC ${this.origin}: ${systemsPath} has ${members.length} ComputerSystems (${ids}): choose one with power.systemId`);
  }

  private async readSystem(c: Conversation, path: string): Promise<{ doc: SystemDoc; etag: string | undefined }> {
    return c.get(systemDoc, path, 'ComputerSystem');
  }

  /** The ResetType values the BMC allows: its @Redfish.AllowableValues, else its ActionInfo's, else null (it does not say). */
  private async allowedResets(c: Conversation, sys: SystemDoc): Promise<string[] | null> {
    const reset = sys.Actions?.['#ComputerSystem.Reset'];
    if (!reset) return null;
    if (reset['ResetType@Redfish.AllowableValues']) return reset['ResetType@Redfish.AllowableValues'];
    if (reset['@Redfish.ActionInfo']) {
      const { doc } = await c.get(actionInfoDoc, reset['@Redfish.ActionInfo'], 'ActionInfo');
      return doc.Parameters?.find((p) => p.Name === 'ResetType')?.AllowableValues ?? null;
    }
    return null;
  }

  private async planFor(c: Conversation, sys: SystemDoc, intent: ResetIntent): Promise<{ target: string; steps: string[] }> {
    const reset = sys.Actions?.['#ComputerSystem.Reset'];
    if (!reset) throw new PowerError(`BMC ${this.origin}: the ComputerSystem has no #ComputerSystem.Reset action; check that the user "${this.o.user}" sees the system's actions and that the BMC supports power control over Redfish`);
    const allowed = await this.allowedResets(c, sys);
    const steps = resetPlan(intent, allowed);
    if (!steps) {
      throw new PowerError(`BMC ${this.origin}: the ResetType values it allows (${allowed?.join(', ') || 'none'}) have none for ${intentWords[intent]}; check the BMC's firmware or license`);
    }
    return { target: reset.target, steps };
  }

  /** POST the Reset action (ComputerSystem.Reset, ResetType) and wait for its task when the BMC answers 202. */
  private async reset(c: Conversation, target: string, resetType: string): Promise<void> {
    this.log.info({ event: 'redfish_reset', bmc: this.origin, resetType }, 'Redfish reset');
    // Not idempotent: sent again only when the BMC said 5xx or cannot have received it.
    const reply = await c.call('POST', target, `reset ${resetType}`, { body: { ResetType: resetType }, resend: 'unsent' });
    if (reply.status === 202) await this.waitForTask(c, reply, `reset ${resetType}`);
  }

  /**
   * DSP0266 §"Asynchronous operations": a 202 names a task monitor in Location; a GET on it
   * answers 202 while the task runs, then the operation's own answer. Many BMCs answer the
   * Task resource itself instead, so a TaskState is read either way.
   */
  private async waitForTask(c: Conversation, accepted: Reply, what: string): Promise<void> {
    const location = accepted.headers.location ?? odataLink.safeParse(accepted.body).data?.['@odata.id'];
    if (!location) return; // no monitor named: the power-state check that follows is the proof
    const monitor = new URL(location, this.origin).pathname;
    const deadline = Date.now() + this.o.taskTimeoutMs;
    for (;;) {
      const reply = await c.call('GET', monitor, `${what}: its task`, { allow404: true });
      // A monitor gone after the task ended (DSP0266: it may be deleted once the task is done).
      if (reply.status === 404 || reply.status === 204) return;
      const task = taskDoc.safeParse(reply.body);
      const state = task.success ? task.data.TaskState : undefined;
      if (state === 'Completed') return;
      if (state !== undefined && taskFailed.has(state)) {
        const messages = (task.data?.Messages ?? []).map((m) => m.Message ?? m.MessageId).filter(Boolean).join('; ');
        throw new PowerError(`BMC ${this.origin}: ${what} ended in task state ${state}${messages ? `: ${messages}` : ''}; check the BMC's event log`);
      }
      if (reply.status !== 202 && state === undefined) return; // the operation's own answer: done
      if (Date.now() >= deadline) throw new PowerError(`BMC ${this.origin}: ${what} still running (${state ?? 'HTTP 202'}) after ${this.o.taskTimeoutMs / 1000} s; check the task at ${monitor}`);
      const retryAfter = Number(reply.headers['retry-after']);
      await sleep(Number.isFinite(retryAfter) && retryAfter > 0 ? Math.min(retryAfter * 1000, 10_000) : this.o.pollIntervalMs);
    }
  }

  /** Polls PowerState until `want`, or throws naming the BMC after settleTimeoutMs. */
  private async waitFor(c: Conversation, path: string, want: 'on' | 'off', action: string, opts: { sawOffFirst?: boolean; minMs?: number } = {}): Promise<void> {
    const started = Date.now();
    const deadline = started + this.o.settleTimeoutMs;
    let sawOff = false;
    for (;;) {
      const { doc } = await this.readSystem(c, path);
      const now = powerStateOf(doc.PowerState);
      if (now === 'off') sawOff = true;
      const longEnough = Date.now() - started >= (opts.minMs ?? 0);
      if (now === want && (!opts.sawOffFirst || sawOff || longEnough)) return;
      if (Date.now() >= deadline) {
        throw new PowerError(`BMC ${this.origin}: after ${action} the machine's PowerState is still ${doc.PowerState ?? 'not given'} (waited ${this.o.settleTimeoutMs / 1000} s for ${want}); check the machine's power supply and the BMC's event log`);
      }
      await sleep(this.o.pollIntervalMs);
    }
  }

  /**
   * Boot from the network once (ComputerSystem.v1_x Boot: BootSourceOverrideTarget Pxe,
   * BootSourceOverrideEnabled Once; BootSourceOverrideMode UEFI|Legacy, added in
   * ComputerSystem.v1_1_0, only when the BMC has it), then read back to see it took.
   */
  private async bootFromNetworkNext(c: Conversation, path: string, sys: { doc: SystemDoc; etag: string | undefined }): Promise<void> {
    const boot = sys.doc.Boot;
    const targets = boot?.['BootSourceOverrideTarget@Redfish.AllowableValues'];
    if (targets && !targets.includes('Pxe')) {
      throw new PowerError(`BMC ${this.origin}: the ComputerSystem does not offer Pxe as a boot override (BootSourceOverrideTarget@Redfish.AllowableValues: ${targets.join(', ')}); set network boot in the firmware setup`);
    }
    const body: { BootSourceOverrideTarget: 'Pxe'; BootSourceOverrideEnabled: 'Once'; BootSourceOverrideMode?: string } = { BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Once' };
    if (this.o.firmware !== undefined) {
      const mode = this.o.firmware === 'uefi' ? 'UEFI' : 'Legacy';
      const modes = boot?.['BootSourceOverrideMode@Redfish.AllowableValues'];
      if (modes ? modes.includes(mode) : boot?.BootSourceOverrideMode !== undefined) body.BootSourceOverrideMode = mode;
      else this.log.warn({ event: 'redfish_boot_mode_unset', bmc: this.origin, mode }, 'the BMC does not offer this BootSourceOverrideMode; the boot mode is left as it is');
    }
    // DSP0266 §"ETags": a BMC that gives an ETag may demand it back in If-Match on PATCH.
    const reply = await c.call('PATCH', path, 'boot once from the network', { body: { Boot: body }, headers: sys.etag ? { 'if-match': sys.etag } : {} });
    if (reply.status === 202) await this.waitForTask(c, reply, 'boot once from the network');
    const after = (await this.readSystem(c, path)).doc.Boot;
    if (after?.BootSourceOverrideTarget !== 'Pxe' || after.BootSourceOverrideEnabled !== 'Once') {
      throw new PowerError(`BMC ${this.origin}: accepted the network boot override but reports BootSourceOverrideTarget ${after?.BootSourceOverrideTarget ?? 'unset'}, BootSourceOverrideEnabled ${after?.BootSourceOverrideEnabled ?? 'unset'}; check the BMC's boot settings`);
    }
  }

  status(): Promise<PowerState> {
    return this.act(async (c, path) => powerStateOf((await this.readSystem(c, path)).doc.PowerState));
  }

  setNextBootNetwork(): Promise<void> {
    return this.act(async (c, path) => this.bootFromNetworkNext(c, path, await this.readSystem(c, path)));
  }

  powerOn(): Promise<void> {
    return this.act(async (c, path) => {
      const sys = await this.readSystem(c, path);
      if (powerStateOf(sys.doc.PowerState) === 'on') return;
      // Already on its way (another client, or the BMC's own power restore policy): wait for it.
      if (sys.doc.PowerState === 'PoweringOn') return this.waitFor(c, path, 'on', 'a power on already under way');
      const plan = await this.planFor(c, sys.doc, 'on');
      await this.bootFromNetworkNext(c, path, sys);
      await this.reset(c, plan.target, plan.steps[0]!);
      await this.waitFor(c, path, 'on', `reset ${plan.steps[0]}`);
    });
  }

  powerOff(options: { soft?: boolean; graceMs?: number } = {}): Promise<void> {
    return this.act(async (c, path) => {
      const sys = await this.readSystem(c, path);
      if (powerStateOf(sys.doc.PowerState) === 'off') return;
      if (sys.doc.PowerState === 'PoweringOff' && options.soft) return this.waitFor(c, path, 'off', 'a power off already under way');
      if (options.soft) {
        const soft = await this.planFor(c, sys.doc, 'soft');
        await this.reset(c, soft.target, soft.steps[0]!);
        const deadline = Date.now() + (options.graceMs ?? 30_000);
        while (Date.now() < deadline) {
          if (powerStateOf((await this.readSystem(c, path)).doc.PowerState) === 'off') return;
          await sleep(this.o.pollIntervalMs);
        }
        this.log.info({ event: 'redfish_soft_off_timeout', bmc: this.origin, graceMs: options.graceMs ?? 30_000 }, 'the OS did not power off in time; forcing it off');
      }
      const plan = await this.planFor(c, sys.doc, 'off');
      await this.reset(c, plan.target, plan.steps[0]!);
      await this.waitFor(c, path, 'off', `reset ${plan.steps[0]}`);
    });
  }

  powerCycle(): Promise<void> {
    return this.act(async (c, path) => {
      const sys = await this.readSystem(c, path);
      const off = powerStateOf(sys.doc.PowerState) === 'off';
      // A machine that is off is powered on; a cycle's reset types may be refused in that state.
      const plan = await this.planFor(c, sys.doc, off ? 'on' : 'cycle');
      await this.bootFromNetworkNext(c, path, sys);
      if (plan.steps.length === 2) {
        await this.reset(c, plan.target, plan.steps[0]!);
        await this.waitFor(c, path, 'off', `reset ${plan.steps[0]}`);
        await this.reset(c, plan.target, plan.steps[1]!);
        await this.waitFor(c, path, 'on', `reset ${plan.steps[1]}`);
        return;
      }
      const step = plan.steps[0]!;
      await this.reset(c, plan.target, step);
      // Done when the BMC has been seen off or, as a quick off (or a ForceRestart, which may
      // never show Off) can fall between two polls, reports On after a couple of seconds.
      await this.waitFor(c, path, 'on', `reset ${step}`, off ? {} : { sawOffFirst: true, minMs: 2000 });
    });
  }
}
