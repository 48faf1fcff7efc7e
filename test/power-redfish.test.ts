// The redfish power driver against a Redfish BMC emulator over real HTTPS (test/redfish-bmc.ts,
// a self-signed certificate made by openssl): the reset chosen from what the BMC allows, boot
// once from the network set before every reset, sessions (logout, a new login after a 401) and
// Basic authentication, 202 + task, 204, 5xx and slow BMCs, certificate pinning, one action at
// a time per BMC, and neither the password nor a session token in any log line or error. Then
// through `fleetboot node set` / `node power`, and an independent client (Debian's redfishtool)
// agreeing with the emulator.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { execa } from 'execa';
import { createLogger } from '../src/log.ts';
import { powerDriverFor } from '../src/rollout/power-drivers.ts';
import { RedfishPowerDriver, resetPlan, type RedfishPowerOptions } from '../src/rollout/power-redfish.ts';
import { PowerError, powerSpecSchema } from '../src/rollout/power.ts';
import { parseMac } from '../src/mac.ts';
import { runCli, startHeadNode, tempDir } from './fixtures.ts';
import { makeCertificate, MemoryMachine, startRedfishBmc, type RedfishBmc, type RedfishBmcOptions } from './redfish-bmc.ts';
import { requires } from './requires.ts';

const skip = requires({ commands: ['openssl'] });

type T = Parameters<typeof startRedfishBmc>[0] & Parameters<typeof tempDir>[0];

interface Rig {
  dir: string;
  bmc: RedfishBmc;
  passwordFile: string;
  /** Every log line the drivers wrote, as text. */
  logLines: string[];
  driver: (o?: Partial<RedfishPowerOptions>) => RedfishPowerDriver;
}

async function rig(t: T, options: RedfishBmcOptions = {}): Promise<Rig> {
  const dir = tempDir(t, 'fleetboot-redfish-');
  const bmc = await startRedfishBmc(t, dir, options);
  const passwordFile = join(dir, 'bmc-password');
  writeFileSync(passwordFile, `${bmc.password}\n`, { mode: 0o600 });
  const logLines: string[] = [];
  const log = createLogger(
    'debug',
    new Writable({
      write(chunk: Buffer, _enc, done) {
        logLines.push(chunk.toString());
        done();
      },
    }),
  );
  const driver = (o: Partial<RedfishPowerOptions> = {}): RedfishPowerDriver =>
    new RedfishPowerDriver({
      url: bmc.url,
      user: bmc.user,
      passwordFile,
      caFile: bmc.certificate.certFile,
      log,
      callTimeoutMs: 3000,
      retryDelayMs: 20,
      pollIntervalMs: 50,
      settleTimeoutMs: 10_000,
      taskTimeoutMs: 10_000,
      ...o,
    });
  return { dir, bmc, passwordFile, logLines, driver };
}

/** Neither the password nor any token the BMC issued is in the log lines or in `texts`. */
function assertNoSecrets(r: Rig, texts: string[] = []): void {
  assert.ok(r.logLines.length > 0, 'the driver logged its requests');
  for (const text of [...r.logLines, ...texts]) {
    assert.ok(!text.includes(r.bmc.password), `password leaked into: ${text}`);
    for (const token of r.bmc.issuedTokens) assert.ok(!text.includes(token), `session token leaked into: ${text}`);
  }
}

const calls = (bmc: RedfishBmc): string[] => bmc.requests.map((q) => `${q.method} ${q.path}`);
const resetsSent = (bmc: RedfishBmc): unknown[] => bmc.requests.filter((q) => q.path.endsWith('/Actions/ComputerSystem.Reset')).map((q) => (q.body as { ResetType: string }).ResetType);

async function failure(p: Promise<unknown>): Promise<PowerError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof PowerError, String(err));
    return err;
  }
  assert.fail('expected a PowerError');
}

test('a cycle over a session: boot once from the network, then PowerCycle, the state checked, the session deleted', { skip }, async (t) => {
  const r = await rig(t, { requireIfMatch: true });
  const d = r.driver();
  assert.equal(await d.status(), 'on');
  await d.powerCycle();
  assert.equal(await d.status(), 'on');

  const seq = calls(r.bmc);
  const cycleStart = seq.lastIndexOf('POST /redfish/v1/SessionService/Sessions', seq.indexOf('PATCH /redfish/v1/Systems/1'));
  const patch = seq.indexOf('PATCH /redfish/v1/Systems/1');
  const reset = seq.indexOf('POST /redfish/v1/Systems/1/Actions/ComputerSystem.Reset');
  assert.ok(cycleStart >= 0 && cycleStart < patch && patch < reset, `login, boot override, then reset: ${seq.join(', ')}`);
  assert.deepEqual(r.bmc.requests[patch]!.body, { Boot: { BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Once' } });
  assert.deepEqual(resetsSent(r.bmc), ['PowerCycle']);
  // The machine started once, with the override, which it then spent.
  assert.deepEqual(r.bmc.system.boots, [{ after: 'PowerCycle', target: 'Pxe', mode: 'Legacy' }]);
  assert.deepEqual(r.bmc.system.boot, { target: 'None', enabled: 'Disabled', mode: 'Legacy' });
  // Every action logged in and out: as many DELETEs of sessions as logins, none left open.
  const logins = seq.filter((c) => c === 'POST /redfish/v1/SessionService/Sessions').length;
  assert.equal(logins, 3);
  assert.equal(seq.filter((c) => c.startsWith('DELETE /redfish/v1/SessionService/Sessions/')).length, 3);
  assert.equal(r.bmc.sessions.size, 0);
  assert.equal(seq.at(-1)?.startsWith('DELETE /redfish/v1/SessionService/Sessions/'), true);
  assert.ok(r.bmc.requests.filter((q) => q.path !== '/redfish/v1' && !q.path.endsWith('/Sessions')).every((q) => q.auth === 'session'), 'X-Auth-Token on every request after login');
  assertNoSecrets(r);
});

test('Basic authentication: no session, the credentials on every request; off and on each checked, soft off falls back to ForceOff', { skip }, async (t) => {
  const r = await rig(t, { backend: new MemoryMachine('On', { ignoresGraceful: true }) });
  const d = r.driver({ auth: 'basic' });
  await d.powerOff();
  assert.equal(await d.status(), 'off');
  await d.powerOn();
  assert.equal(await d.status(), 'on');
  await d.powerOff({ soft: true, graceMs: 300 });
  assert.equal(await d.status(), 'off');
  assert.deepEqual(resetsSent(r.bmc), ['ForceOff', 'On', 'GracefulShutdown', 'ForceOff']);
  assert.equal(calls(r.bmc).filter((c) => c.includes('Sessions')).length, 0);
  assert.ok(r.bmc.requests.filter((q) => q.path !== '/redfish/v1').every((q) => q.auth === 'basic'));
  const on = calls(r.bmc).indexOf('POST /redfish/v1/Systems/1/Actions/ComputerSystem.Reset', calls(r.bmc).indexOf('PATCH /redfish/v1/Systems/1'));
  assert.ok(on > calls(r.bmc).indexOf('PATCH /redfish/v1/Systems/1'), 'the boot override comes before the power on');
  assertNoSecrets(r);

  // A machine already PoweringOn (started by someone else) is waited for, not reset again.
  const starting = new MemoryMachine('Off', { transitionMs: 400 });
  const r2 = await rig(t, { backend: starting });
  await starting.reset('On');
  await r2.driver({ auth: 'basic' }).powerOn();
  assert.equal(starting.state, 'On');
  assert.deepEqual(resetsSent(r2.bmc), []);
});

test('the ResetType comes from the BMC\'s AllowableValues: ForceRestart without PowerCycle, else ForceOff then On; none usable is an error naming them', { skip }, async (t) => {
  assert.deepEqual(resetPlan('cycle', null), ['ForceRestart']);
  assert.deepEqual(resetPlan('soft', ['PushPowerButton', 'ForceOff']), ['PushPowerButton']);

  const r = await rig(t, { resetTypes: ['On', 'ForceOff', 'ForceRestart', 'GracefulShutdown'] });
  await r.driver().powerCycle();
  assert.deepEqual(resetsSent(r.bmc), ['ForceRestart']);

  r.bmc.resetTypes = ['ForceOff', 'ForceOn'];
  r.bmc.requests.length = 0;
  await r.driver().powerCycle();
  assert.deepEqual(resetsSent(r.bmc), ['ForceOff', 'ForceOn']);
  assert.equal(r.bmc.system.boots.at(-1)?.target, 'Pxe');

  // Listed in an ActionInfo resource instead of the action's annotation.
  const info = await rig(t, { resetTypes: ['On', 'ForceOff', 'ForceRestart'], resetTypesIn: 'actionInfo' });
  await info.driver().powerCycle();
  assert.deepEqual(resetsSent(info.bmc), ['ForceRestart']);
  assert.ok(calls(info.bmc).includes('GET /redfish/v1/Systems/1/ResetActionInfo'));

  r.bmc.resetTypes = ['Nmi', 'GracefulRestart'];
  r.bmc.requests.length = 0;
  const err = await failure(r.driver().powerCycle());
  assert.match(err.message, new RegExp(`BMC ${r.bmc.url.replace(/\./g, '\\.')}: the ResetType values it allows \\(Nmi, GracefulRestart\\) have none for a power cycle`));
  assert.deepEqual(resetsSent(r.bmc), [], 'nothing was reset');
  assert.ok(!calls(r.bmc).includes('PATCH /redfish/v1/Systems/1'), 'nor the boot override changed');
  assert.equal(r.bmc.sessions.size, 0, 'logged out after the error too');
});

test('firmware uefi asks for BootSourceOverrideMode UEFI where the BMC has it, and leaves it out where it does not', { skip }, async (t) => {
  const r = await rig(t);
  await r.driver({ firmware: 'uefi' }).setNextBootNetwork();
  assert.deepEqual(r.bmc.system.boot, { target: 'Pxe', enabled: 'Once', mode: 'UEFI' });
  assert.deepEqual(resetsSent(r.bmc), [], 'pxe alone leaves the power as it is');

  const old = await rig(t, { bootModes: null });
  await old.driver({ firmware: 'uefi' }).setNextBootNetwork();
  const patch = old.bmc.requests.find((q) => q.method === 'PATCH');
  assert.deepEqual(patch?.body, { Boot: { BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Once' } });
  assert.ok(old.logLines.some((l) => l.includes('redfish_boot_mode_unset')));

  const noPxe = await rig(t, { bootTargets: ['None', 'Hdd'] });
  assert.match((await failure(noPxe.driver().setNextBootNetwork())).message, /does not offer Pxe as a boot override \(BootSourceOverrideTarget@Redfish\.AllowableValues: None, Hdd\)/);
});

test('a reset answered 202 with a task is followed to its end; 200 and 204 answers are done at once; a task ending in Exception is an error', { skip }, async (t) => {
  const r = await rig(t);
  r.bmc.misbehave = { resetReply: 'task', taskPolls: 3 };
  await r.driver().powerCycle();
  const monitorPolls = calls(r.bmc).filter((c) => c.startsWith('GET /redfish/v1/TaskService/TaskMonitors/'));
  assert.equal(monitorPolls.length, 4, 'three polls while Running, one to Completed');
  assert.deepEqual(r.bmc.system.boots.map((b) => b.after), ['PowerCycle'], 'the reset happened when the task completed');

  r.bmc.misbehave = { resetReply: 'ok' };
  await r.driver().powerOff();
  assert.equal(await r.driver().status(), 'off');
  r.bmc.misbehave = { resetReply: 'noContent' };
  await r.driver().powerOn();
  assert.equal(await r.driver().status(), 'on');

  r.bmc.misbehave = { resetReply: 'task', taskPolls: 1, taskEnd: 'Exception' };
  const err = await failure(r.driver().powerOff());
  assert.match(err.message, /reset ForceOff ended in task state Exception: The reset could not be carried out/);
  assertNoSecrets(r, [err.message]);
});

test('5xx answers are retried with backoff until one succeeds; 5xx forever and a BMC slower than the timeout are errors naming the BMC', { skip, timeout: 60_000 }, async (t) => {
  const r = await rig(t);
  r.bmc.misbehave = { fail5xx: 2 };
  await r.driver().powerCycle();
  assert.deepEqual(r.bmc.requests.slice(0, 3).map((q) => q.status), [503, 503, 200]);
  assert.deepEqual(resetsSent(r.bmc), ['PowerCycle']);
  assert.ok(r.logLines.some((l) => l.includes('"event":"redfish_retry"')));

  r.bmc.misbehave = { fail5xx: 1000 };
  r.bmc.requests.length = 0;
  const err = await failure(r.driver().powerCycle());
  assert.match(err.message, new RegExp(`^BMC ${r.bmc.url.replace(/\./g, '\\.')}: reading the service root \\(GET /redfish/v1/\\) failed after 3 attempts: HTTP 503: The service is temporarily unavailable`));
  assert.equal(r.bmc.requests.length, 3);

  r.bmc.misbehave = { delayMs: 1500 };
  r.bmc.requests.length = 0;
  const slow = await failure(r.driver({ callTimeoutMs: 300, attempts: 2 }).status());
  assert.match(slow.message, /reading the service root \(GET \/redfish\/v1\/\) failed after 2 attempts: no answer within 0\.3 s; check that the BMC answers HTTPS at/);

  // A BMC that takes the TCP connection and never starts TLS: the same error, and no socket left open.
  const muted = new Set<Socket>();
  const mute = createServer((s) => {
    muted.add(s);
    s.on('close', () => muted.delete(s));
    s.resume(); // reads (and drops) the ClientHello, so the client's close is seen
  });
  await new Promise<void>((ok) => mute.listen(0, '127.0.0.1', ok));
  t.after(() => {
    for (const s of muted) s.destroy();
    mute.close();
  });
  const mutePort = (mute.address() as AddressInfo).port;
  const silent = await failure(r.driver({ url: `https://127.0.0.1:${mutePort}`, callTimeoutMs: 300, attempts: 2 }).status());
  assert.match(silent.message, new RegExp(`^BMC https://127\\.0\\.0\\.1:${mutePort}: reading the service root \\(GET /redfish/v1/\\) failed after 2 attempts: (no answer within 0\\.3 s|no TLS handshake)`));
  const until = Date.now() + 3000;
  while (muted.size > 0 && Date.now() < until) await new Promise((ok) => setTimeout(ok, 50));
  assert.equal(muted.size, 0, 'the driver closed its connections');

  // A reset that got no answer may have been carried out: it is not sent a second time.
  r.bmc.misbehave = { delayMs: 1500, delayPath: '/Actions/ComputerSystem.Reset' };
  r.bmc.requests.length = 0;
  const unanswered = await failure(r.driver({ callTimeoutMs: 500 }).powerCycle());
  assert.match(unanswered.message, /reset PowerCycle \(POST \/redfish\/v1\/Systems\/1\/Actions\/ComputerSystem\.Reset\) failed after 1 attempt: no answer within 0\.5 s; check the machine's power .*not sent again/);
  assert.equal(resetsSent(r.bmc).length, 1);
  r.bmc.misbehave = {};
});

test('sessions: a session the BMC ended is replaced by one new login; a wrong password is refused at once naming the user and the password file, never the password', { skip }, async (t) => {
  const machine = new MemoryMachine('On');
  const r = await rig(t, { backend: machine });
  const reset = machine.reset.bind(machine);
  // The BMC drops every session while it carries out the reset (as some do when they restart).
  machine.reset = async (type: string) => {
    r.bmc.expireSessions();
    await reset(type);
  };
  await r.driver().powerCycle();
  const seq = calls(r.bmc);
  assert.equal(seq.filter((c) => c === 'POST /redfish/v1/SessionService/Sessions').length, 2, seq.join(', '));
  assert.ok(r.bmc.requests.some((q) => q.auth === 'refused' && q.status === 401));
  assert.equal(r.bmc.sessions.size, 0, 'the second session was deleted too');
  assert.ok(r.logLines.some((l) => l.includes('"event":"redfish_relogin"')));

  writeFileSync(r.passwordFile, 'not-the-password\n');
  r.bmc.requests.length = 0;
  const err = await failure(r.driver().status());
  assert.match(err.message, /session login \(POST \/redfish\/v1\/SessionService\/Sessions\) failed: HTTP 401: Invalid user name or password.*check the user "admin" and the password in .*bmc-password/);
  assert.equal(r.bmc.requests.filter((q) => q.method === 'POST').length, 1, 'a refused login is not retried');
  assert.ok(!err.message.includes('not-the-password'));
  writeFileSync(r.passwordFile, '');
  assert.match((await failure(r.driver().status())).message, /the password file .* is empty/);
  assertNoSecrets(r, [err.message]);
});

test('certificates: a pinned fingerprint or the BMC\'s own certificate as CA is accepted, any other is refused before a credential is sent; insecure accepts', { skip }, async (t) => {
  const r = await rig(t);
  const other = await makeCertificate(r.dir, 'another-bmc');

  const wrongCa = await failure(r.driver({ caFile: other.certFile }).status());
  assert.match(wrongCa.message, new RegExp(`certificate refused: not trusted by power\\.caFile .*another-bmc\\.pem .*SHA-256 ${r.bmc.certificate.sha256}`));
  const noTrust = await failure(r.driver({ caFile: undefined }).status());
  assert.match(noTrust.message, /not trusted by the system's CAs .*power\.certSha256=[0-9A-F]{64}.*power\.insecure=true/);
  const wrongPin = await failure(r.driver({ caFile: undefined, certSha256: other.sha256 }).status());
  assert.match(wrongPin.message, new RegExp(`its SHA-256 fingerprint is ${r.bmc.certificate.sha256}, not the pinned power\\.certSha256 ${other.sha256}`));
  assert.equal(r.bmc.requests.length, 0, 'no request reached a BMC whose certificate was refused');

  const pinned = r.bmc.certificate.sha256.match(/../g)!.join(':').toLowerCase();
  assert.equal(await r.driver({ caFile: undefined, certSha256: pinned }).status(), 'on');
  assert.equal(await r.driver({ caFile: undefined, insecure: true }).status(), 'on');
  assert.throws(() => r.driver({ insecure: true }), /power\.insecure: cannot be combined with power\.caFile or power\.certSha256/);
});

test('a BMC with several ComputerSystems needs power.systemId, and the error lists them', { skip }, async (t) => {
  const r = await rig(t, { systemIds: ['A1', 'B2'] });
  assert.match((await failure(r.driver().status())).message, /\/redfish\/v1\/Systems has 2 ComputerSystems \(A1, B2\): choose one with power\.systemId/);
  assert.match((await failure(r.driver({ systemId: 'C3' }).status())).message, /no ComputerSystem C3 in \/redfish\/v1\/Systems \(it has: A1, B2\)/);
  await r.driver({ systemId: 'B2' }).powerCycle();
  assert.deepEqual(r.bmc.systems.map((s) => s.boots.length), [0, 1]);
});

test('one action at a time per BMC: two drivers for the same BMC never interleave their actions', { skip }, async (t) => {
  const r = await rig(t);
  await Promise.all([r.driver().powerCycle(), r.driver().powerCycle()]);
  const seq = calls(r.bmc);
  const firstLogout = seq.findIndex((c) => c.startsWith('DELETE '));
  const secondLogin = seq.indexOf('POST /redfish/v1/SessionService/Sessions', seq.indexOf('POST /redfish/v1/SessionService/Sessions') + 1);
  assert.ok(firstLogout < secondLogin, seq.join(', '));
  assert.deepEqual(resetsSent(r.bmc), ['PowerCycle', 'PowerCycle']);
});

test('the redfish power spec: https only, booleans from node set strings, a fingerprint normalised; powerDriverFor builds the driver', () => {
  const base = { kind: 'redfish', url: 'https://10.0.0.5', user: 'admin', passwordFile: '/etc/fleetboot/bmc.pw' };
  const ok = powerSpecSchema.parse({ ...base, insecure: 'false', certSha256: 'ab:'.repeat(31) + 'ab' });
  assert.deepEqual(ok, { ...base, auth: 'session', insecure: false, certSha256: 'AB'.repeat(32) });
  assert.equal((powerSpecSchema.parse({ ...base, insecure: 'true' }) as { insecure: boolean }).insecure, true);
  assert.throws(() => powerDriverFor({ ...base, url: 'http://10.0.0.5' }), /power spec: url: expected an https:\/\/ URL/);
  assert.throws(() => powerDriverFor({ ...base, url: 'https://10.0.0.5/redfish/v1/Systems/1' }), /url: expected https:\/\/BMC\[:PORT\] with no path/);
  assert.throws(() => powerDriverFor({ ...base, certSha256: 'abc' }), /certSha256: expected 64 hex digits/);
  assert.throws(() => powerDriverFor({ ...base, insecure: 'yes' }), /insecure/);
  assert.throws(() => powerDriverFor({ ...base, auth: 'basic', user: 'a:b' }), /power\.user: a user name with ":" cannot be sent with Basic/);
  assert.equal(powerDriverFor(base).kind, 'redfish');
});

test('fleetboot node set power.kind=redfish, then node power cycle|status|pxe from the CLI; node show and the API give the password file, never the password', { skip, timeout: 120_000 }, async (t) => {
  const r = await rig(t);
  const dir = r.dir;
  const h = await startHeadNode(t, dir);
  const node = h.head.store.nodes.discover({ mac: parseMac('52:54:00:42:00:07')! }).node;
  await h.head.stop();
  const set = await runCli(['node', 'set', String(node.id), 'power.kind=redfish', `power.url=${r.bmc.url}`, 'power.user=admin', `power.passwordFile=${r.passwordFile}`, `power.caFile=${r.bmc.certificate.certFile}`, 'power.firmware=uefi'], dir);
  assert.equal(set.exitCode, 0, String(set.stderr));
  const badUrl = await runCli(['node', 'set', String(node.id), `power.url=${r.bmc.url.replace('https', 'http')}`], dir);
  assert.equal(badUrl.exitCode, 2);
  assert.match(String(badUrl.stderr), /power\.url: expected an https:\/\/ URL/);

  const cycle = await runCli(['node', 'power', String(node.id), 'cycle', '--json'], dir);
  assert.equal(cycle.exitCode, 0, String(cycle.stderr));
  assert.deepEqual(JSON.parse(String(cycle.stdout)), { node: node.id, action: 'cycle', driver: 'redfish', state: 'on' });
  assert.deepEqual(r.bmc.system.boots, [{ after: 'PowerCycle', target: 'Pxe', mode: 'UEFI' }]);
  const status = await runCli(['node', 'power', String(node.id), 'status'], dir);
  assert.equal(status.exitCode, 0, String(status.stderr));
  assert.match(String(status.stdout), /power on \(redfish\)/);
  const pxe = await runCli(['node', 'power', String(node.id), 'pxe'], dir);
  assert.equal(pxe.exitCode, 0, String(pxe.stderr));
  assert.deepEqual(r.bmc.system.boot, { target: 'Pxe', enabled: 'Once', mode: 'UEFI' });
  assert.equal(r.bmc.system.boots.length, 1, 'pxe leaves the power alone');
  assert.equal(r.bmc.sessions.size, 0);

  const show = await runCli(['node', 'show', String(node.id), '--json'], dir);
  assert.equal(show.exitCode, 0, String(show.stderr));
  assert.equal((JSON.parse(String(show.stdout)) as { node: { power: { passwordFile: string } } }).node.power.passwordFile, r.passwordFile);

  const h2 = await startHeadNode(t, dir);
  const res = await fetch(`${h2.url}/api/v1/nodes/${node.id}`, { headers: { authorization: `Bearer ${h2.token}` } });
  const apiText = await res.text();
  assert.equal(res.status, 200, apiText);
  assert.match(apiText, /"passwordFile"/);

  writeFileSync(r.passwordFile, 'wrong-password\n');
  const refused = await runCli(['node', 'power', String(node.id), 'cycle'], dir);
  assert.notEqual(refused.exitCode, 0);
  assert.match(String(refused.stderr), new RegExp(`node ${node.id}: BMC ${r.bmc.url.replace(/\./g, '\\.')}: session login .* failed: HTTP 401`));
  const timeline = h2.head.store.events.timeline(node.id).filter((e) => e.event === 'power');
  assert.deepEqual(timeline.map((e) => e.detail.action), ['cycle', 'pxe', 'cycle']);

  for (const text of [String(set.stdout), String(set.stderr), String(cycle.stdout), String(cycle.stderr), String(show.stdout), apiText, String(refused.stderr), JSON.stringify(timeline)]) {
    assert.ok(!text.includes(r.bmc.password), `password in ${text}`);
    assert.ok(!text.includes('wrong-password'));
    for (const token of r.bmc.issuedTokens) assert.ok(!text.includes(token));
  }
});

test('redfishtool, an independent client, reads and drives the emulator: Systems get, setBootOverride Once Pxe, reset PowerCycle, over a session', { skip: skip || requires({ commands: ['redfishtool'] }), timeout: 120_000 }, async (t) => {
  const r = await rig(t, { backend: new MemoryMachine('On') });
  const host = r.bmc.url.replace('https://', '');
  const rft = (args: string[]) =>
    execa('redfishtool', ['-r', host, '-u', r.bmc.user, '-p', r.bmc.password, '-S', 'Always', '-A', 'Session', '-T', '10', ...args], { reject: false, timeout: 60_000, stdin: 'ignore' });

  const get = await rft(['Systems', '-I', '1', 'get']);
  assert.equal(get.exitCode, 0, String(get.stderr));
  const doc = JSON.parse(String(get.stdout)) as Record<string, unknown>;
  const system = await fetchSystem(r);
  assert.deepEqual(doc, system, 'the client printed the emulator\'s ComputerSystem');

  const boot = await rft(['Systems', '-I', '1', 'setBootOverride', 'Once', 'Pxe']);
  assert.equal(boot.exitCode, 0, String(boot.stderr));
  assert.deepEqual(r.bmc.system.boot, { target: 'Pxe', enabled: 'Once', mode: 'Legacy' });
  assert.equal((JSON.parse(String(boot.stdout)) as { Boot: { BootSourceOverrideTarget: string } }).Boot.BootSourceOverrideTarget, 'Pxe');

  const reset = await rft(['Systems', '-I', '1', 'reset', 'PowerCycle']);
  assert.equal(reset.exitCode, 0, String(reset.stderr));
  assert.deepEqual(r.bmc.system.boots, [{ after: 'PowerCycle', target: 'Pxe', mode: 'Legacy' }]);

  r.bmc.resetTypes = ['On', 'ForceOff'];
  const refused = await rft(['Systems', '-I', '1', 'reset', 'PowerCycle']);
  assert.notEqual(refused.exitCode, 0, 'the client read AllowableValues and refused PowerCycle');
  assert.match(String(refused.stderr), /not supported by the remote service/);
  assert.equal(r.bmc.system.boots.length, 1);

  const logins = r.bmc.requests.filter((q) => q.method === 'POST' && q.path === '/redfish/v1/SessionService/Sessions').length;
  assert.equal(logins, 4);
  assert.equal(r.bmc.sessions.size, 0, 'redfishtool deleted each session it made');
});

/** The emulator's ComputerSystem read with Node's own HTTPS (Basic auth, its certificate as CA). */
function fetchSystem(r: Rig): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(`${r.bmc.url}/redfish/v1/Systems/1`, { ca: readFileSync(r.bmc.certificate.certFile), auth: `${r.bmc.user}:${r.bmc.password}` }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString('utf8'))));
    });
    req.on('error', reject);
    req.end();
  });
}

// Debian's python3-sushy (OpenStack Ironic's Redfish library) through Debian's own python3: a
// pyenv python3 earlier on PATH would not have it.
const sushyScript = `
import json, os, sys, sushy
from sushy import auth
root = sushy.Sushy(sys.argv[1], auth=auth.SessionAuth(username=os.environ['RF_USER'], password=os.environ['RF_PASSWORD']), verify=sys.argv[2])
system = root.get_system()
seen = {'id': system.identity, 'power': system.power_state.value, 'resets': sorted(v.value for v in system.get_allowed_reset_system_values()), 'targets': sorted(system.boot.allowed_values)}
system.set_system_boot_options(target=sushy.BootSource.PXE, enabled=sushy.BootSourceOverrideEnabled.ONCE, mode=sushy.BootSourceOverrideMode.UEFI)
system.refresh()
seen['boot'] = {'target': system.boot.target.value, 'enabled': system.boot.enabled.value, 'mode': system.boot.mode.value}
system.reset_system(sushy.ResetType.POWER_CYCLE)
root._auth.close()
print(json.dumps(seen))
`;

test('python3-sushy, a second independent client, finds the one system, reads its resets and boot targets, sets boot once to PXE in UEFI mode and power cycles it', { skip: skip || requires({ commands: ['/usr/bin/python3', '/usr/lib/python3/dist-packages/sushy/__init__.py'] }), timeout: 120_000 }, async (t) => {
  const r = await rig(t, { resetTypes: ['On', 'ForceOff', 'PowerCycle', 'ForceRestart'] });
  // The password reaches the script in its environment, not its command line. requests prefers
  // REQUESTS_CA_BUNDLE over the session's verify=, so it names the emulator's certificate too.
  const run = await execa('/usr/bin/python3', ['-c', sushyScript, r.bmc.url, r.bmc.certificate.certFile], {
    reject: false,
    timeout: 60_000,
    stdin: 'ignore',
    env: { RF_USER: r.bmc.user, RF_PASSWORD: r.bmc.password, REQUESTS_CA_BUNDLE: r.bmc.certificate.certFile },
  });
  assert.equal(run.exitCode, 0, String(run.stderr));
  assert.deepEqual(JSON.parse(String(run.stdout)), {
    id: '1',
    power: 'On',
    resets: ['ForceOff', 'ForceRestart', 'On', 'PowerCycle'],
    targets: ['BiosSetup', 'Cd', 'Hdd', 'None', 'Pxe'],
    boot: { target: 'Pxe', enabled: 'Once', mode: 'UEFI' },
  });
  assert.deepEqual(r.bmc.system.boots, [{ after: 'PowerCycle', target: 'Pxe', mode: 'UEFI' }]);
  assert.deepEqual(resetsSent(r.bmc), ['PowerCycle']);
  assert.equal(r.bmc.sessions.size, 0, 'sushy deleted its session');
  assert.ok(r.bmc.requests.filter((q) => q.path !== '/redfish/v1' && !q.path.endsWith('/Sessions')).every((q) => q.auth === 'session'));
});
