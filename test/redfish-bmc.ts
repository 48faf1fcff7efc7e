// A small Redfish BMC for tests: HTTPS with a self-signed certificate made by openssl in the
// test's folder, serving what a power driver needs from DMTF Redfish (DSP0266; schemas from
// DSP8010): ServiceRoot, the Systems collection, ComputerSystems with PowerState, Boot and the
// ComputerSystem.Reset action, SessionService sessions, Basic authentication, and task monitors
// for 202 Accepted. Its power backend is pluggable (an in-memory machine, or a lab VM over QMP),
// it can be told to misbehave, and it records every request for assertions.
import { randomBytes, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { execa } from 'execa';
import { QemuPowerDriver } from '../src/rollout/power-qemu.ts';

export type RedfishPowerState = 'On' | 'Off' | 'PoweringOn' | 'PoweringOff';

/** What the emulator's ComputerSystem drives. */
export interface PowerBackend {
  powerState(): Promise<RedfishPowerState>;
  /** Carries out one ResetType (Resource.ResetType) the emulator has already accepted. */
  reset(resetType: string): Promise<void>;
  close?(): void;
}

/**
 * A machine in memory: ForceOff is immediate, GracefulShutdown and On pass through PoweringOff /
 * PoweringOn for `transitionMs`, PowerCycle shows Off for `offMs`, ForceRestart never shows Off.
 */
export class MemoryMachine implements PowerBackend {
  state: RedfishPowerState;
  readonly resets: string[] = [];
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(initial: 'On' | 'Off' = 'On', private readonly o: { transitionMs?: number; offMs?: number; ignoresGraceful?: boolean } = {}) {
    this.state = initial;
  }

  private later(ms: number, to: RedfishPowerState): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      this.state = to;
    }, ms);
    this.timers.add(timer);
  }

  powerState(): Promise<RedfishPowerState> {
    return Promise.resolve(this.state);
  }

  reset(resetType: string): Promise<void> {
    this.resets.push(resetType);
    const transition = this.o.transitionMs ?? 300;
    switch (resetType) {
      case 'On':
      case 'ForceOn':
        if (this.state !== 'On') {
          this.state = 'PoweringOn';
          this.later(transition, 'On');
        }
        break;
      case 'ForceOff':
        this.state = 'Off';
        break;
      case 'GracefulShutdown':
        if (this.state === 'On' && !this.o.ignoresGraceful) {
          this.state = 'PoweringOff';
          this.later(transition, 'Off');
        }
        break;
      case 'PushPowerButton':
        this.state = this.state === 'Off' ? 'On' : 'Off';
        break;
      case 'PowerCycle':
        this.state = 'Off';
        this.later(this.o.offMs ?? 500, 'On');
        break;
      case 'ForceRestart':
      case 'GracefulRestart':
        this.state = 'On';
        break;
    }
    return Promise.resolve();
  }

  close(): void {
    for (const t of this.timers) clearTimeout(t);
  }
}

/** A lab VM behind its QMP socket, through the qemu power driver (power-qemu.ts; the lab's labPowerDriver). */
export class QmpMachine implements PowerBackend {
  readonly resets: string[] = [];

  constructor(private readonly vm: QemuPowerDriver) {}

  async powerState(): Promise<RedfishPowerState> {
    return (await this.vm.status()) === 'on' ? 'On' : 'Off';
  }

  async reset(resetType: string): Promise<void> {
    this.resets.push(resetType);
    if (resetType === 'On' || resetType === 'ForceOn') await this.vm.powerOn();
    else if (resetType === 'ForceOff') await this.vm.powerOff();
    else if (resetType === 'GracefulShutdown') await this.vm.powerOff({ soft: true });
    else await this.vm.powerCycle();
  }
}

export interface Certificate {
  keyFile: string;
  certFile: string;
  /** SHA-256 of the DER certificate, 64 upper-case hex digits. */
  sha256: string;
}

/** A self-signed certificate for 127.0.0.1 (openssl req -x509 with an IP subjectAltName). */
export async function makeCertificate(dir: string, name: string): Promise<Certificate> {
  const keyFile = join(dir, `${name}.key`);
  const certFile = join(dir, `${name}.pem`);
  await execa('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', `/CN=${name}`, '-addext', 'subjectAltName=IP:127.0.0.1'], { stdin: 'ignore' });
  return { keyFile, certFile, sha256: new X509Certificate(readFileSync(certFile)).fingerprint256.replace(/:/g, '') };
}

export interface RecordedRequest {
  method: string;
  path: string;
  auth: 'none' | 'basic' | 'session' | 'refused';
  status: number;
  /** The JSON body of a PATCH or POST, except a session login's (it holds the password). */
  body?: unknown;
}

export interface Misbehaviour {
  /** How the Reset action answers: 204 (default), 200 with a message, or 202 and a task. */
  resetReply?: 'noContent' | 'ok' | 'task';
  /** Task monitor polls that answer 202 Running before the task ends. */
  taskPolls?: number;
  /** How the task ends (default Completed). */
  taskEnd?: 'Completed' | 'Exception';
  /** The next N requests, whatever they are, answer 503. */
  fail5xx?: number;
  /** Every answer waits this long (only those whose path ends with `delayPath`, when given). */
  delayMs?: number;
  delayPath?: string;
}

export interface RedfishBmcOptions {
  user?: string;
  password?: string;
  /** ComputerSystem Ids (default ["1"]); the first is driven by `backend`, any others by a MemoryMachine each. */
  systemIds?: string[];
  backend?: PowerBackend;
  /** ResetType@Redfish.AllowableValues; null: the annotation is left out. */
  resetTypes?: string[] | null;
  /** Where the allowed ResetTypes are listed: the action's annotation (default) or an ActionInfo resource it links. */
  resetTypesIn?: 'annotation' | 'actionInfo';
  /** A PATCH without If-Match is refused with 428 (DSP0266 §"ETags"). */
  requireIfMatch?: boolean;
  bootTargets?: string[];
  /** BootSourceOverrideMode@Redfish.AllowableValues; null: no BootSourceOverrideMode at all. */
  bootModes?: string[] | null;
}

interface SystemState {
  id: string;
  backend: PowerBackend;
  boot: { target: string; enabled: string; mode: string | null };
  etag: number;
  /** Each start of the machine with the boot override it took (the Once override is then spent). */
  boots: { after: string; target: string; mode: string | null }[];
  /** The reset the backend is still carrying out (a VM's reset takes seconds): PowerState shows PoweringOn/Off meanwhile. */
  busy: string | null;
  /** What the backend threw while resetting. */
  backendErrors: string[];
}

interface Task {
  id: number;
  state: 'Running' | 'Completed' | 'Exception';
  pollsLeft: number;
  run: () => Promise<void>;
}

const starts = new Set(['On', 'ForceOn', 'PowerCycle', 'ForceRestart', 'GracefulRestart', 'PushPowerButton']);
const defaultResets = ['On', 'ForceOff', 'GracefulShutdown', 'GracefulRestart', 'ForceRestart', 'PowerCycle', 'PushPowerButton', 'Nmi'];

export class RedfishBmc {
  readonly requests: RecordedRequest[] = [];
  readonly systems: SystemState[];
  /** Live sessions: id -> token. */
  readonly sessions = new Map<string, string>();
  /** Every token ever issued, for checking that none leaks. */
  readonly issuedTokens: string[] = [];
  misbehave: Misbehaviour = {};
  resetTypes: string[] | null;
  private readonly tasks = new Map<number, Task>();
  private nextId = 1;
  private server: Server | null = null;
  readonly user: string;
  readonly password: string;

  constructor(readonly certificate: Certificate, private readonly o: RedfishBmcOptions = {}) {
    this.user = o.user ?? 'admin';
    this.password = o.password ?? 'Redfish-Pa55-Secret';
    this.resetTypes = o.resetTypes === undefined ? defaultResets : o.resetTypes;
    this.systems = (o.systemIds ?? ['1']).map((id, i) => ({
      id,
      backend: i === 0 && o.backend ? o.backend : new MemoryMachine(),
      boot: { target: 'None', enabled: 'Disabled', mode: o.bootModes === null ? null : 'Legacy' },
      etag: 1,
      boots: [],
      busy: null,
      backendErrors: [],
    }));
  }

  /** Starts listening on an ephemeral 127.0.0.1 port; returns https://127.0.0.1:PORT. */
  async start(): Promise<string> {
    const server = createServer({ key: readFileSync(this.certificate.keyFile), cert: readFileSync(this.certificate.certFile) }, (req, res) => {
      void this.handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) this.send(res, 500, { error: { code: 'Base.1.8.GeneralError', message: String(err) } });
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    this.server = server;
    return this.url;
  }

  get url(): string {
    return `https://127.0.0.1:${(this.server!.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const s of this.systems) s.backend.close?.();
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  }

  /** Ends every session on the BMC side, as a BMC restart or a session timeout does. */
  expireSessions(): void {
    this.sessions.clear();
  }

  /** The first ComputerSystem. */
  get system(): SystemState {
    return this.systems[0]!;
  }

  private send(res: ServerResponse, status: number, body?: unknown, headers: Record<string, string> = {}): void {
    const payload = body === undefined ? '' : JSON.stringify(body);
    res.writeHead(status, { 'odata-version': '4.0', ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers });
    res.end(payload);
  }

  private authOf(req: IncomingMessage): RecordedRequest['auth'] {
    const token = req.headers['x-auth-token'];
    if (typeof token === 'string') return [...this.sessions.values()].includes(token) ? 'session' : 'refused';
    const basic = /^Basic (.+)$/.exec(req.headers.authorization ?? '');
    if (basic) return Buffer.from(basic[1]!, 'base64').toString('utf8') === `${this.user}:${this.password}` ? 'basic' : 'refused';
    return 'none';
  }

  private systemDoc(s: SystemState, power: RedfishPowerState): Record<string, unknown> {
    const path = `/redfish/v1/Systems/${s.id}`;
    return {
      '@odata.id': path,
      '@odata.type': '#ComputerSystem.v1_10_0.ComputerSystem',
      Id: s.id,
      Name: `Test system ${s.id}`,
      PowerState: power,
      Boot: {
        BootSourceOverrideTarget: s.boot.target,
        'BootSourceOverrideTarget@Redfish.AllowableValues': this.o.bootTargets ?? ['None', 'Pxe', 'Hdd', 'Cd', 'BiosSetup'],
        BootSourceOverrideEnabled: s.boot.enabled,
        ...(s.boot.mode === null ? {} : { BootSourceOverrideMode: s.boot.mode, 'BootSourceOverrideMode@Redfish.AllowableValues': this.o.bootModes ?? ['Legacy', 'UEFI'] }),
      },
      Actions: {
        '#ComputerSystem.Reset': {
          target: `${path}/Actions/ComputerSystem.Reset`,
          ...(this.resetTypes === null ? {} : this.o.resetTypesIn === 'actionInfo' ? { '@Redfish.ActionInfo': `${path}/ResetActionInfo` } : { 'ResetType@Redfish.AllowableValues': this.resetTypes }),
        },
      },
    };
  }

  private async doReset(s: SystemState, resetType: string): Promise<void> {
    const wasOff = (await s.backend.powerState()) === 'Off';
    if (starts.has(resetType) && (resetType !== 'PushPowerButton' || wasOff)) {
      s.boots.push({ after: resetType, target: s.boot.enabled === 'Disabled' ? 'None' : s.boot.target, mode: s.boot.mode });
      if (s.boot.enabled === 'Once') s.boot = { ...s.boot, target: 'None', enabled: 'Disabled' };
    }
    // Answered at once, carried out meanwhile, as a BMC does.
    s.busy = resetType;
    void s.backend.reset(resetType).then(
      () => undefined,
      (err: unknown) => void s.backendErrors.push(String(err)),
    ).finally(() => {
      s.busy = null;
    });
  }

  private async powerOf(s: SystemState): Promise<RedfishPowerState> {
    if (s.busy) return s.busy === 'ForceOff' || s.busy === 'GracefulShutdown' ? 'PoweringOff' : 'PoweringOn';
    return s.backend.powerState();
  }

  private async readBody(req: IncomingMessage): Promise<unknown> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    if (text.trim() === '') return undefined;
    try {
      return JSON.parse(text);
    } catch {
      return Symbol.for('malformed');
    }
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const path = new URL(req.url ?? '/', 'https://bmc').pathname.replace(/(.)\/$/, '$1');
    const body = await this.readBody(req);
    const auth = this.authOf(req);
    const rec: RecordedRequest = { method, path, auth, status: 0 };
    if ((method === 'POST' || method === 'PATCH') && path !== '/redfish/v1/SessionService/Sessions') rec.body = body;
    this.requests.push(rec);
    const reply = (status: number, doc?: unknown, headers?: Record<string, string>): void => {
      rec.status = status;
      this.send(res, status, doc, headers);
    };
    const error = (status: number, id: string, message: string): void => reply(status, { error: { code: `Base.1.8.${id}`, message, '@Message.ExtendedInfo': [{ MessageId: `Base.1.8.${id}`, Message: message }] } });

    if (this.misbehave.delayMs && path.endsWith(this.misbehave.delayPath ?? '')) await new Promise((r) => setTimeout(r, this.misbehave.delayMs));
    if (res.destroyed) return;
    if (this.misbehave.fail5xx && this.misbehave.fail5xx > 0) {
      this.misbehave.fail5xx--;
      return error(503, 'ServiceTemporarilyUnavailable', 'The service is temporarily unavailable.');
    }
    if (body === Symbol.for('malformed')) return error(400, 'MalformedJSON', 'The request body is not JSON.');

    // DSP0266 §"Service root": /redfish, /redfish/v1 and the login need no authentication.
    if (method === 'GET' && path === '/redfish') return reply(200, { v1: '/redfish/v1/' });
    if (method === 'GET' && path === '/redfish/v1') {
      return reply(200, {
        '@odata.id': '/redfish/v1/',
        '@odata.type': '#ServiceRoot.v1_5_0.ServiceRoot',
        Id: 'RootService',
        Name: 'Root Service',
        RedfishVersion: '1.6.0',
        Systems: { '@odata.id': '/redfish/v1/Systems' },
        SessionService: { '@odata.id': '/redfish/v1/SessionService' },
        TaskService: { '@odata.id': '/redfish/v1/TaskService' },
        Links: { Sessions: { '@odata.id': '/redfish/v1/SessionService/Sessions' } },
      });
    }
    if (method === 'POST' && path === '/redfish/v1/SessionService/Sessions') {
      const creds = body as { UserName?: unknown; Password?: unknown } | undefined;
      if (creds?.UserName !== this.user || creds.Password !== this.password) return error(401, 'NoValidSession', 'Invalid user name or password.');
      const id = `s${this.nextId++}`;
      const token = randomBytes(16).toString('hex');
      this.sessions.set(id, token);
      this.issuedTokens.push(token);
      const location = `/redfish/v1/SessionService/Sessions/${id}`;
      return reply(201, { '@odata.id': location, '@odata.type': '#Session.v1_1_0.Session', Id: id, Name: 'User Session', UserName: this.user }, { 'X-Auth-Token': token, Location: location });
    }
    if (auth !== 'basic' && auth !== 'session') return error(401, 'NoValidSession', 'No valid session or credentials were given.');

    const session = /^\/redfish\/v1\/SessionService\/Sessions\/([^/]+)$/.exec(path);
    if (session && method === 'DELETE') {
      if (!this.sessions.delete(session[1]!)) return error(404, 'ResourceMissingAtURI', `No session at ${path}.`);
      return reply(204);
    }
    if (method === 'GET' && path === '/redfish/v1/Systems') {
      return reply(200, {
        '@odata.id': '/redfish/v1/Systems',
        '@odata.type': '#ComputerSystemCollection.ComputerSystemCollection',
        Name: 'Computer System Collection',
        Members: this.systems.map((s) => ({ '@odata.id': `/redfish/v1/Systems/${s.id}` })),
        'Members@odata.count': this.systems.length,
      });
    }
    const monitor = /^\/redfish\/v1\/TaskService\/(TaskMonitors|Tasks)\/(\d+)$/.exec(path);
    if (monitor && method === 'GET') {
      const task = this.tasks.get(Number(monitor[2]));
      if (!task) return error(404, 'ResourceMissingAtURI', `No task at ${path}.`);
      if (monitor[1] === 'TaskMonitors' && task.state === 'Running') {
        if (task.pollsLeft > 0) task.pollsLeft--;
        else {
          await task.run();
          task.state = this.misbehave.taskEnd ?? 'Completed';
        }
      }
      const doc = {
        '@odata.id': `/redfish/v1/TaskService/Tasks/${task.id}`,
        '@odata.type': '#Task.v1_4_3.Task',
        Id: String(task.id),
        TaskState: task.state,
        TaskStatus: task.state === 'Exception' ? 'Critical' : 'OK',
        TaskMonitor: `/redfish/v1/TaskService/TaskMonitors/${task.id}`,
        Messages: task.state === 'Exception' ? [{ MessageId: 'Base.1.8.InternalError', Message: 'The reset could not be carried out.' }] : [],
      };
      return reply(task.state === 'Running' && monitor[1] === 'TaskMonitors' ? 202 : 200, doc, task.state === 'Running' ? { 'Retry-After': '0' } : {});
    }

    const sys = /^\/redfish\/v1\/Systems\/([^/]+)(\/Actions\/ComputerSystem\.Reset|\/ResetActionInfo)?$/.exec(path);
    const s = sys ? this.systems.find((x) => x.id === sys[1]) : undefined;
    if (!s) return error(404, 'ResourceMissingAtURI', `No resource at ${path}.`);
    if (sys![2] === '/ResetActionInfo' && method === 'GET') {
      return reply(200, {
        '@odata.id': path,
        '@odata.type': '#ActionInfo.v1_1_2.ActionInfo',
        Id: 'ResetActionInfo',
        Name: 'Reset Action Info',
        Parameters: [{ Name: 'ResetType', Required: true, DataType: 'String', AllowableValues: this.resetTypes ?? defaultResets }],
      });
    }
    const etag = `W/"${s.etag}"`;
    if (!sys![2] && method === 'GET') return reply(200, this.systemDoc(s, await this.powerOf(s)), { ETag: etag });
    if (!sys![2] && method === 'PATCH') {
      const ifMatch = req.headers['if-match'];
      if (ifMatch !== undefined && ifMatch !== etag) return error(412, 'PreconditionFailed', 'The ETag given in If-Match does not match.');
      if (ifMatch === undefined && this.o.requireIfMatch) return error(428, 'PreconditionRequired', 'This resource is changed only with an If-Match header.');
      const boot = (body as { Boot?: Record<string, unknown> } | undefined)?.Boot;
      if (!boot || typeof boot !== 'object') return error(400, 'PropertyUnknown', 'Only Boot can be changed here.');
      const targets = this.o.bootTargets ?? ['None', 'Pxe', 'Hdd', 'Cd', 'BiosSetup'];
      const next = { ...s.boot };
      for (const [k, v] of Object.entries(boot)) {
        if (k === 'BootSourceOverrideTarget' && typeof v === 'string' && targets.includes(v)) next.target = v;
        else if (k === 'BootSourceOverrideEnabled' && typeof v === 'string' && ['Once', 'Continuous', 'Disabled'].includes(v)) next.enabled = v;
        else if (k === 'BootSourceOverrideMode' && s.boot.mode !== null && typeof v === 'string' && (this.o.bootModes ?? ['Legacy', 'UEFI']).includes(v)) next.mode = v;
        else return error(400, 'PropertyValueNotInList', `The value ${JSON.stringify(v)} for the property ${k} is not in the list of acceptable values.`);
      }
      s.boot = next;
      s.etag++;
      return reply(200, this.systemDoc(s, await this.powerOf(s)), { ETag: `W/"${s.etag}"` });
    }
    if (sys![2] === '/Actions/ComputerSystem.Reset' && method === 'POST') {
      const resetType = (body as { ResetType?: unknown } | undefined)?.ResetType;
      if (typeof resetType !== 'string' || !(this.resetTypes ?? defaultResets).includes(resetType)) {
        return error(400, 'ActionParameterValueNotInList', `The value ${JSON.stringify(resetType)} for the parameter ResetType in the action ComputerSystem.Reset is not in the list of acceptable values.`);
      }
      if (this.misbehave.resetReply === 'task') {
        const id = this.nextId++;
        this.tasks.set(id, { id, state: 'Running', pollsLeft: this.misbehave.taskPolls ?? 0, run: () => this.doReset(s, resetType) });
        return reply(202, { '@odata.id': `/redfish/v1/TaskService/Tasks/${id}`, '@odata.type': '#Task.v1_4_3.Task', Id: String(id), TaskState: 'Running' }, { Location: `/redfish/v1/TaskService/TaskMonitors/${id}` });
      }
      await this.doReset(s, resetType);
      if (this.misbehave.resetReply === 'ok') return reply(200, { '@Message.ExtendedInfo': [{ MessageId: 'Base.1.8.Success', Message: 'Successfully Completed Request' }] });
      return reply(204);
    }
    return error(405, 'OperationNotAllowed', `${method} is not allowed on ${path}.`);
  }
}

/** An emulator with a fresh certificate in `dir`, started, and stopped when the test ends. */
export async function startRedfishBmc(t: { after: (fn: () => Promise<void>) => void }, dir: string, options: RedfishBmcOptions = {}): Promise<RedfishBmc> {
  const bmc = new RedfishBmc(await makeCertificate(dir, 'bmc'), options);
  await bmc.start();
  t.after(() => bmc.stop());
  return bmc;
}
