// The ssh power driver against a real sshd: dropbear (Debian dropbear-bin) in a network namespace
// of the test's own, reached by OpenSSH's ssh run in that namespace. root's home is a temp folder
// bind-mounted over /root in the namespace's own mount namespace (ip netns exec makes one), so
// authorized_keys is the test's. The "reboot" command is a script that records its call and takes
// the sshd down the way a reboot does: the listener and every session it holds end.
import assert from 'node:assert/strict';
import { appendFileSync, chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { execa, type ResultPromise } from 'execa';
import { createLogger } from '../src/log.ts';
import { powerDriverFor } from '../src/rollout/power-drivers.ts';
import { SshPowerDriver, type SshPowerOptions } from '../src/rollout/power-ssh.ts';
import { PowerError } from '../src/rollout/power.ts';
import { tempDir, testNamespace } from './fixtures.ts';
import { requires } from './requires.ts';

const skip = requires({ root: 'dropbear runs in a network namespace with a bind mount over /root', commands: ['ip', 'dropbear', 'dropbearkey', 'ssh', 'ssh-keygen', 'pgrep'] });

const port = 2222;

describe('ssh power driver against dropbear in a namespace', { skip, timeout: 180_000 }, () => {
  const ns = testNamespace('ssh');
  let dir: string;
  let sshd: ResultPromise | null = null;
  let knownHosts: string;
  let key: string;
  let keyText: string;
  const cleanups: (() => void)[] = [];

  const startSshd = async (): Promise<void> => {
    const home = join(dir, 'root');
    // dropbear -F: foreground (the PID is the one we started); -E: log to stderr; -s: no passwords.
    sshd = execa('ip', ['netns', 'exec', ns, 'sh', '-c', 'mount --bind "$1" /root && exec dropbear -F -E -s -m -j -k -p "127.0.0.1:$2" -r "$3" -P "$4"', 'sh', home, String(port), join(dir, 'hostkey'), join(dir, 'dropbear.pid')], { reject: false, stdin: 'ignore', stderr: { file: join(dir, 'dropbear.log'), append: true } });
    for (let i = 0; i < 100; i++) {
      const r = await execa('ip', ['netns', 'exec', ns, 'bash', '-c', `exec 3<>/dev/tcp/127.0.0.1/${port}`], { reject: false, shell: false });
      if (r.exitCode === 0) return;
      await new Promise((res) => setTimeout(res, 100));
    }
    assert.fail(`dropbear did not listen:\n${readFileSync(join(dir, 'dropbear.log'), 'utf8')}`);
  };
  const stopSshd = async (): Promise<void> => {
    // exitCode is null while the process runs (node:child_process).
    if (sshd && sshd.exitCode === null && sshd.signalCode === null) {
      sshd.kill('SIGTERM');
      await sshd;
    }
    sshd = null;
  };

  /** A command on the node that records it ran and ends the sshd like a shutdown does. */
  const fakeDown = (name: string): string => {
    const script = join(dir, name);
    writeFileSync(
      script,
      `#!/bin/sh\necho "$(date +%s) $*" >> ${join(dir, `${name}.calls`)}\nps -eo args >> ${join(dir, `${name}.ps`)}\nL=$(cat ${join(dir, 'dropbear.pid')})\nS=$(pgrep -P "$L")\nkill "$L" $S\n`,
    );
    chmodSync(script, 0o755);
    return script;
  };
  const calls = (name: string): string[] => (existsSync(join(dir, `${name}.calls`)) ? readFileSync(join(dir, `${name}.calls`), 'utf8').trim().split('\n') : []);

  const driver = (o: Partial<SshPowerOptions> = {}, log?: SshPowerOptions['log']): SshPowerDriver =>
    new SshPowerDriver({ host: '127.0.0.1', port, keyFile: key, knownHostsFile: knownHosts, wrapper: ['ip', 'netns', 'exec', ns], connectTimeoutMs: 3000, retryDelayMs: 200, pollIntervalMs: 300, downTimeoutMs: 20_000, random: () => 0.5, ...(log ? { log } : {}), ...o });

  const capture = (): { log: ReturnType<typeof createLogger>; text: () => string } => {
    let text = '';
    const sink = new Writable({ write: (chunk: Buffer, _e, cb) => { text += chunk.toString(); cb(); } });
    return { log: createLogger('debug', sink), text: () => text };
  };

  before(async () => {
    dir = tempDir({ after: (fn) => cleanups.push(fn) });
    await execa('ip', ['netns', 'add', ns]);
    await execa('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    await execa('dropbearkey', ['-t', 'ed25519', '-f', join(dir, 'hostkey')]);
    key = join(dir, 'id_ed25519');
    await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'fleetboot-test', '-f', key]);
    await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'not-authorized', '-f', join(dir, 'wrong')]);
    keyText = readFileSync(key, 'utf8');
    mkdirSync(join(dir, 'root', '.ssh'), { recursive: true, mode: 0o700 });
    chmodSync(join(dir, 'root'), 0o700);
    writeFileSync(join(dir, 'root', '.ssh', 'authorized_keys'), readFileSync(`${key}.pub`), { mode: 0o600 });
    // The host's public key as ssh-keyscan would give it, pinned for [127.0.0.1]:2222.
    const pub = (await execa('dropbearkey', ['-y', '-f', join(dir, 'hostkey')])).stdout.split('\n').find((l) => l.startsWith('ssh-ed25519'))!;
    knownHosts = join(dir, 'known_hosts');
    writeFileSync(knownHosts, `[127.0.0.1]:${port} ${pub.split(' ').slice(0, 2).join(' ')}\n`);
    await startSshd();
  });

  after(async () => {
    await stopSshd();
    await execa('ip', ['netns', 'del', ns], { reject: false });
    for (const c of cleanups) c();
  });

  it('status is on when an ssh session runs true; the key is only a file name in argv', async () => {
    const d = driver();
    assert.equal(await d.status(), 'on');
    const argv = d.argv('reboot');
    assert.ok(argv.includes(key), 'ssh -i names the key file');
    assert.ok(!argv.join(' ').includes(keyText.split('\n')[1]!), 'no key material in argv');
    assert.ok(argv.includes('BatchMode=yes') && argv.includes('StrictHostKeyChecking=yes'));
    assert.ok(!argv.some((a) => /StrictHostKeyChecking=no/.test(a)));
  });

  it('powerCycle runs the reboot command, counts the dropped session as success and sees the node go down', async () => {
    const reboot = fakeDown('fake-reboot');
    const { log, text } = capture();
    const d = driver({ command: reboot }, log);
    await d.powerCycle();
    assert.equal(calls('fake-reboot').length, 1, 'the reboot command ran once (a dropped session is not retried)');
    assert.equal(await d.status(), 'unknown', 'the node does not answer ssh any more');
    // The key's material is in no process's argv while ssh ran, nor in the log.
    const material = keyText.split('\n')[1]!;
    assert.ok(!readFileSync(join(dir, 'fake-reboot.ps'), 'utf8').includes(material));
    assert.ok(text().includes('power_ssh_command'), text());
    assert.ok(!text().includes(material));
    await stopSshd();
    await startSshd();
    assert.equal(await d.status(), 'on', 'the node answers again once its sshd is back');
  });

  it('powerOff runs the poweroff command and waits for the node to go down; powerOn is refused naming what to do', async () => {
    const off = fakeDown('fake-poweroff');
    const d = driver({ poweroffCommand: off });
    await d.powerOff();
    assert.equal(calls('fake-poweroff').length, 1);
    await assert.rejects(d.powerOn(), (err: Error) => err instanceof PowerError && /cannot power a machine on; power it on by hand, or give the node a BMC driver/.test(err.message));
    assert.equal((d as { setNextBootNetwork?: unknown }).setNextBootNetwork, undefined, 'ssh cannot reach the firmware');
    await stopSshd();
    await startSshd();
  });

  it('a key the node does not know is refused at once with a message naming the node and the key', async () => {
    const reboot = fakeDown('never-reboot');
    const wrong = join(dir, 'wrong');
    const started = Date.now();
    await assert.rejects(driver({ keyFile: wrong, command: reboot, retryDelayMs: 5000 }).powerCycle(), (err: Error) => {
      assert.ok(err instanceof PowerError);
      assert.match(err.message, /ssh root@127\.0\.0\.1:2222: the node refused the key .*wrong \(Permission denied\)/);
      assert.match(err.message, /authorized_keys/);
      return true;
    });
    assert.ok(Date.now() - started < 5000, 'not retried: a refusal repeats');
    assert.deepEqual(calls('never-reboot'), []);
    assert.equal(await driver({ keyFile: wrong }).status(), 'unknown');
  });

  it('a host key that differs from the pinned one is refused; trust on first use pins the first key it sees', async () => {
    const other = join(dir, 'other_known_hosts');
    writeFileSync(other, `[127.0.0.1]:${port} ${readFileSync(join(dir, 'wrong.pub'), 'utf8').split(' ').slice(0, 2).join(' ')}\n`);
    const reboot = fakeDown('mitm-reboot');
    await assert.rejects(driver({ knownHostsFile: other, command: reboot }).powerCycle(), /host key does not match the one in .*other_known_hosts: refused/);
    assert.deepEqual(calls('mitm-reboot'), []);
    const empty = join(dir, 'empty_known_hosts');
    writeFileSync(empty, '');
    await assert.rejects(driver({ knownHostsFile: empty }).powerCycle(), /no host key for the node in .*empty_known_hosts: add it .* or set power.trustOnFirstUse=true/);
    const tofu = join(dir, 'tofu_known_hosts');
    await assert.rejects(driver({ knownHostsFile: tofu }).status(), /cannot read the known_hosts file/, 'without trust on first use the file must exist');
    assert.equal(await driver({ knownHostsFile: tofu, trustOnFirstUse: true }).status(), 'on');
    assert.match(readFileSync(tofu, 'utf8'), /^\[127\.0\.0\.1\]:2222 ssh-ed25519 /);
    // The key it pinned is the node's: a mismatch later is refused even with trust on first use.
    writeFileSync(tofu, readFileSync(other));
    await assert.rejects(driver({ knownHostsFile: tofu, trustOnFirstUse: true, command: reboot }).powerCycle(), /host key does not match/);
  });

  it('a node nothing answers for: retried with backoff, then an error naming the node and what to check', async () => {
    const { log, text } = capture();
    const started = Date.now();
    await assert.rejects(driver({ port: 2299, attempts: 3 }, log).powerCycle(), (err: Error) => {
      assert.ok(err instanceof PowerError);
      assert.match(err.message, /^ssh root@127\.0\.0\.1:2299: the reboot command \(reboot\) failed after 3 attempts: .*Connection refused; check that the node is up and its sshd answers on port 2299/);
      return true;
    });
    // retryDelay 200 ms ×(0.5+0.5): 200 + 400 ms between the three tries.
    assert.ok(Date.now() - started >= 600);
    assert.equal(text().split('\n').filter((l) => l.includes('power_ssh_retry')).length, 2);
  });

  it('a reboot command that fails on the node is an error with its exit status; the node stays up', async () => {
    await assert.rejects(driver({ command: 'exit 3' }).powerCycle(), /the reboot command \(exit 3\) exited 3 on the node/);
    assert.equal(await driver().status(), 'on');
  });

  it('the stored spec: defaults, the fields it needs named, and the driver built from it', () => {
    assert.throws(() => powerDriverFor({ kind: 'ssh', keyFile: key, knownHostsFile: knownHosts }), /power spec: host: /);
    assert.throws(() => powerDriverFor({ kind: 'ssh', host: '-oProxyCommand=x', keyFile: key, knownHostsFile: knownHosts }), /power spec: host: expected a host name or an IP address/);
    assert.throws(() => powerDriverFor({ kind: 'ssh', host: 'cn7', knownHostsFile: knownHosts }), /power spec: keyFile: /);
    const d = powerDriverFor({ kind: 'ssh', host: 'cn7', keyFile: key, knownHostsFile: knownHosts, trustOnFirstUse: 'false' });
    assert.ok(d instanceof SshPowerDriver);
    assert.equal(d.endpoint, 'root@cn7:22');
    assert.ok(d.argv('reboot').join(' ').endsWith('-i ' + key + ' -p 22 -l root -- cn7 reboot'));
  });

  it('one action at a time per node: a status asked during a cycle runs after it', async () => {
    const reboot = fakeDown('serial-reboot');
    const d = driver({ command: reboot });
    const order: string[] = [];
    await Promise.all([d.powerCycle().then(() => order.push('cycle')), driver().status().then((s) => order.push(`status ${s}`))]);
    assert.deepEqual(order, ['cycle', 'status unknown']);
    appendFileSync(join(dir, 'dropbear.log'), 'restart after serial test\n');
    await stopSshd();
    await startSshd();
  });
});
