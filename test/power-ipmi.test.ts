// The ipmi power driver against a fake ipmitool (a script that answers like ipmitool 1.8.19 and
// records every run): the argument arrays, no password on any command line or in the
// environment, retries, one action at a time per BMC, and the power state read back after
// each action.
import assert from 'node:assert/strict';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { powerDriverFor } from '../src/rollout/power-drivers.ts';
import { IpmiPowerDriver, type IpmiPowerOptions } from '../src/rollout/power-ipmi.ts';
import { PowerError, powerSpecSchema } from '../src/rollout/power.ts';
import { tempDir } from './fixtures.ts';

const secret = 's3cret-Pa55';

// State files beside the script: power (on|off), fail (how many runs fail to open a session),
// delay (seconds each run takes), lag (status reads before a power change shows), refuse (a
// stderr line every run prints, failing).
const fakeIpmitool = `#!/bin/bash
d=$(dirname "$0")
{ printf '%s\\x1f' "$@"; printf '\\n'; } >> "$d/calls"
env | grep -q -e '${secret}' -e '^IPMI_PASSWORD=' -e '^IPMITOOL_PASSWORD=' && echo leak >> "$d/env-leak"
if ! mkdir "$d/busy" 2>/dev/null; then echo overlap >> "$d/overlaps"; fi
trap 'rmdir "$d/busy" 2>/dev/null' EXIT
[ -f "$d/delay" ] && sleep "$(cat "$d/delay")"
if [ -f "$d/refuse" ]; then cat "$d/refuse" >&2; exit 1; fi
n=$(cat "$d/fail" 2>/dev/null || echo 0)
if [ "$n" -gt 0 ]; then echo $((n - 1)) > "$d/fail"; echo 'Error: Unable to establish IPMI v2 / RMCP+ session' >&2; exit 1; fi
while [ $# -gt 0 ] && [ "$1" != chassis ]; do shift; done
shift
power=$(cat "$d/power")
case "$1 $2" in
  "power status")
    lag=$(cat "$d/lag" 2>/dev/null || echo 0)
    if [ -f "$d/pending" ] && [ "$lag" -le 0 ]; then mv "$d/pending" "$d/power"; power=$(cat "$d/power"); fi
    [ "$lag" -gt 0 ] && echo $((lag - 1)) > "$d/lag"
    echo "Chassis Power is $power" ;;
  "power on") echo on > "$d/pending"; echo 'Chassis Power Control: Up/On' ;;
  "power off") echo off > "$d/pending"; echo 'Chassis Power Control: Down/Off' ;;
  "power cycle"|"power reset")
    if [ "$power" = off ]; then echo 'Set Chassis Power Control to Cycle failed: Command not supported in present state' >&2; exit 1; fi
    # Off for one status read, then on again.
    if [ "$2" = cycle ]; then echo off > "$d/power"; echo on > "$d/pending"; echo 1 > "$d/lag"; fi
    echo "Chassis Power Control: $2" ;;
  "bootdev pxe") echo 'Set Boot Device to pxe' ;;
  *) echo "fake ipmitool: unexpected $*" >&2; exit 1 ;;
esac
`;

interface Fake {
  dir: string;
  bin: string;
  passwordFile: string;
  calls: () => string[][];
  set: (file: string, value: string) => void;
}

function fake(t: Parameters<typeof tempDir>[0], power: 'on' | 'off' = 'on'): Fake {
  const dir = tempDir(t, 'fleetboot-ipmi-');
  const bin = join(dir, 'ipmitool');
  writeFileSync(bin, fakeIpmitool);
  chmodSync(bin, 0o755);
  writeFileSync(join(dir, 'power'), `${power}\n`);
  const passwordFile = join(dir, 'bmc-password');
  writeFileSync(passwordFile, `${secret}\n`, { mode: 0o600 });
  return {
    dir,
    bin,
    passwordFile,
    calls: () =>
      existsSync(join(dir, 'calls'))
        ? readFileSync(join(dir, 'calls'), 'utf8').split('\n').filter(Boolean).map((l) => l.split('\x1f').slice(0, -1))
        : [],
    set: (file, value) => writeFileSync(join(dir, file), value),
  };
}

function driver(f: Fake, extra: Partial<IpmiPowerOptions> = {}): IpmiPowerDriver {
  return new IpmiPowerDriver({
    host: '192.0.2.10',
    port: 6230,
    user: 'admin',
    passwordFile: f.passwordFile,
    ipmitool: f.bin,
    retryDelayMs: 10,
    pollIntervalMs: 20,
    settleTimeoutMs: 3000,
    ...extra,
  });
}

/** The ipmitool command after the session options. */
const commandOf = (argv: string[]): string => argv.slice(argv.indexOf('chassis')).join(' ');

test('each ipmitool run gets lanplus, the BMC, the user, the password file and the cipher suite as separate arguments', async (t) => {
  const f = fake(t);
  assert.equal(await driver(f, { cipherSuite: 17 }).status(), 'on');
  const [argv] = f.calls();
  assert.deepEqual(argv, [
    '-I', 'lanplus', '-H', '192.0.2.10', '-p', '6230', '-U', 'admin', '-f', f.passwordFile, '-C', '17', '-N', '2', '-R', '1',
    'chassis', 'power', 'status',
  ]);
});

test('the password is never on a command line nor in the environment ipmitool sees', async (t) => {
  const f = fake(t, 'off');
  const d = driver(f);
  await d.powerOn();
  await d.powerCycle();
  await d.powerOff();
  assert.ok(f.calls().length >= 6);
  for (const argv of f.calls()) {
    assert.ok(!argv.some((a) => a.includes(secret)), `password on argv: ${argv.join(' ')}`);
    assert.ok(!argv.includes('-P') && !argv.includes('-E'), `no -P/-E: ${argv.join(' ')}`);
  }
  assert.ok(!existsSync(join(f.dir, 'env-leak')), 'no password in the environment');
});

test('a power cycle sets the next boot to PXE first (EFI for uefi nodes), cycles, and waits until the BMC reports on', async (t) => {
  const f = fake(t);
  await driver(f).powerCycle();
  assert.deepEqual(f.calls().map(commandOf), ['chassis power status', 'chassis bootdev pxe', 'chassis power cycle', 'chassis power status', 'chassis power status']);

  const g = fake(t);
  await driver(g, { firmware: 'uefi' }).powerCycle();
  assert.ok(g.calls().map(commandOf).includes('chassis bootdev pxe options=efiboot'));
});

test('pxe sets the next boot to the network and leaves the power alone', async (t) => {
  const f = fake(t, 'off');
  await driver(f, { firmware: 'uefi' }).setNextBootNetwork();
  assert.deepEqual(f.calls().map(commandOf), ['chassis bootdev pxe options=efiboot']);
  assert.equal(readFileSync(join(f.dir, 'power'), 'utf8').trim(), 'off');
});

test('power cycle of a machine that is off powers it on (a BMC refuses a cycle in that state)', async (t) => {
  const f = fake(t, 'off');
  await driver(f).powerCycle();
  const cmds = f.calls().map(commandOf);
  assert.deepEqual(cmds.slice(0, 3), ['chassis power status', 'chassis bootdev pxe', 'chassis power on']);
  assert.ok(!cmds.includes('chassis power cycle'));
  assert.equal(readFileSync(join(f.dir, 'power'), 'utf8').trim(), 'on');
});

test('after power on it polls the status until the machine is on', async (t) => {
  const f = fake(t, 'off');
  f.set('lag', '3'); // the BMC reports the old state three more times
  await driver(f).powerOn();
  const cmds = f.calls().map(commandOf);
  const after = cmds.slice(cmds.indexOf('chassis power on') + 1);
  // lag 3, one used by the read before the action: two reads still off, the third on.
  assert.deepEqual(after, ['chassis power status', 'chassis power status', 'chassis power status']);
  assert.equal(readFileSync(join(f.dir, 'power'), 'utf8').trim(), 'on');
});

test('a power state that never follows fails naming the BMC and what it still reports', async (t) => {
  const f = fake(t, 'on');
  f.set('lag', '1000');
  await assert.rejects(driver(f, { settleTimeoutMs: 300 }).powerOff(), (err: unknown) => {
    assert.ok(err instanceof PowerError);
    assert.match(err.message, /BMC 192\.0\.2\.10:6230: after chassis power off the machine's power is still on/);
    return true;
  });
});

test('a BMC that fails to open a session is retried with backoff; past the attempts the error names it and what to check', async (t) => {
  const f = fake(t);
  f.set('fail', '2');
  assert.equal(await driver(f).status(), 'on');
  assert.equal(f.calls().length, 3, 'two failures, then the answer');

  const g = fake(t);
  g.set('fail', '10');
  await assert.rejects(driver(g, { attempts: 3 }).status(), (err: unknown) => {
    assert.ok(err instanceof PowerError);
    assert.match(err.message, /^BMC 192\.0\.2\.10:6230: chassis power status failed after 3 attempts: Error: Unable to establish IPMI v2 \/ RMCP\+ session; check that the BMC answers/);
    return true;
  });
  assert.equal(g.calls().length, 3);
});

test('retries wait with jitter: each delay lies within ±50 % of its doubling base', async (t) => {
  const f = fake(t);
  f.set('fail', '2');
  const started = Date.now();
  await driver(f, { retryDelayMs: 200, random: () => 0 }).status();
  const took = Date.now() - started;
  // random 0 -> 0.5 x base: 100 ms + 200 ms of waiting, plus three short script runs.
  assert.ok(took >= 300, `waited ${took} ms`);
});

test('a refused cipher suite is not retried and the error says which setting to change', async (t) => {
  const g = fake(t);
  g.set('refuse', 'Error in open session response message : invalid authentication algorithm\nError: Unable to establish IPMI v2 / RMCP+ session');
  await assert.rejects(driver(g).status(), (err: unknown) => {
    assert.ok(err instanceof PowerError);
    assert.match(err.message, /^BMC 192\.0\.2\.10:6230: chassis power status failed after 1 attempt: .*check the BMC refuses cipher suite 3: set power.cipherSuite/);
    return true;
  });
  assert.equal(g.calls().length, 1);
});

test('an ipmitool run that hangs is killed after the call timeout and retried', async (t) => {
  const f = fake(t);
  f.set('delay', '2');
  await assert.rejects(driver(f, { callTimeoutMs: 300, attempts: 2 }).status(), /status failed after 2 attempts: no answer within 0.3 s/);
  assert.equal(f.calls().length, 2);
});

test('a power cycle whose ipmitool run times out is not run again', async (t) => {
  const f = fake(t);
  const d = driver(f, { callTimeoutMs: 600, attempts: 3 });
  // Status and bootdev answer at once; the cycle then hangs.
  const original = d.argv.bind(d);
  let cycleSeen = 0;
  d.argv = (command: string[]): string[] => {
    if (command.join(' ') === 'chassis power cycle') {
      cycleSeen++;
      f.set('delay', '2');
    }
    return original(command);
  };
  await assert.rejects(d.powerCycle(), /chassis power cycle failed after 1 attempt: no answer within 0.6 s/);
  assert.equal(cycleSeen, 1, 'the cycle ran once');
});

test('one action at a time per BMC: concurrent actions on one BMC never overlap, another BMC runs alongside', async (t) => {
  const f = fake(t);
  f.set('delay', '0.2');
  const a = driver(f);
  const b = driver(f); // a second driver object for the same BMC (as two rollouts would hold)
  await Promise.all([a.status(), b.status(), a.status()]);
  assert.ok(!existsSync(join(f.dir, 'overlaps')), 'no two ipmitool runs against one BMC at once');
  assert.equal(f.calls().length, 3);

  const g = fake(t);
  g.set('delay', '0.5');
  const started = Date.now();
  await Promise.all([driver(g, { port: 7001 }).status(), driver(g, { port: 7002 }).status()]);
  assert.ok(Date.now() - started < 1400, 'two BMCs are not serialised against each other');
});

test('a missing or over-long password file is refused before ipmitool runs (it would prompt on a terminal)', async (t) => {
  const f = fake(t);
  await assert.rejects(driver(f, { passwordFile: join(f.dir, 'nope') }).status(), /cannot read the password file .*nope \(power.passwordFile\)/);
  writeFileSync(f.passwordFile, `${'x'.repeat(21)}\n`);
  await assert.rejects(driver(f).status(), /longer than the 20 bytes IPMI 2.0 allows/);
  assert.equal(f.calls().length, 0);
});

test('a missing ipmitool is named with the package that gives it, without retries', async (t) => {
  const f = fake(t);
  await assert.rejects(driver(f, { ipmitool: join(f.dir, 'no-ipmitool') }).status(), /BMC 192\.0\.2\.10:6230: cannot run .*no-ipmitool .*install ipmitool \(Debian package ipmitool\)/);
});

test('the ipmi power spec: strings from node set become numbers, defaults filled, no password field', () => {
  const spec = powerSpecSchema.parse({ kind: 'ipmi', host: '10.0.0.5', user: 'admin', passwordFile: '/etc/fleetboot/bmc.pw', port: '6230', cipherSuite: '17' });
  assert.deepEqual(spec, { kind: 'ipmi', host: '10.0.0.5', port: 6230, user: 'admin', passwordFile: '/etc/fleetboot/bmc.pw', cipherSuite: 17, firmware: 'bios' });
  assert.equal(powerSpecSchema.safeParse({ kind: 'ipmi', host: '10.0.0.5', user: 'admin', passwordFile: '/x', firmware: 'efi' }).success, false);
  assert.equal(powerSpecSchema.safeParse({ kind: 'ipmi', host: '10.0.0.5 -P x', user: 'admin', passwordFile: '/x' }).success, false);
  const d = powerDriverFor({ kind: 'ipmi', host: '10.0.0.5', user: 'admin', passwordFile: '/x' });
  assert.equal(d.kind, 'ipmi');
  assert.throws(() => powerDriverFor({ kind: 'ipmi', host: '10.0.0.5', passwordFile: '/x' }), (err: unknown) => err instanceof PowerError && /user/.test(err.message));
});
