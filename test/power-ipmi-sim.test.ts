// The ipmi power driver through the real ipmitool and a real BMC: OpenIPMI's ipmi_sim with the
// lab's lan.conf and chassis_control, on free loopback ports, and a QMP peer standing in for the
// VM (no QEMU, no root). Proves the RMCP+ session (cipher suite 3, the password read from the
// file), the parsing of ipmitool's output, the boot-device write before a cycle, and the state
// checks against a BMC that really answers.
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { execa } from 'execa';
import { ensureBmcPassword, prepareBmc } from '../src/lab/bmc.ts';
import { IpmiPowerDriver } from '../src/rollout/power-ipmi.ts';
import { PowerError } from '../src/rollout/power.ts';
import { tempDir } from './fixtures.ts';
import { requires } from './requires.ts';

const skip = requires({ commands: ['ipmi_sim', 'ipmitool', 'bash'] });

async function freeUdpPort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
}

/** A QMP peer that keeps a run state like QEMU's: stop pauses, cont runs, system_reset resets. */
function fakeVm(t: { after: (fn: () => void) => void }): { server: Server; commands: string[]; running: () => boolean } {
  const commands: string[] = [];
  let running = true;
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.write(`${JSON.stringify({ QMP: { version: {}, capabilities: [] } })}\r\n`);
    let buf = '';
    s.on('data', (chunk) => {
      buf += chunk.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const cmd = (JSON.parse(buf.slice(0, nl)) as { execute: string }).execute;
        buf = buf.slice(nl + 1);
        if (cmd !== 'qmp_capabilities' && cmd !== 'query-status') commands.push(cmd);
        if (cmd === 'stop') running = false;
        if (cmd === 'cont') running = true;
        s.write(`${JSON.stringify(cmd === 'query-status' ? { return: { running, status: running ? 'running' : 'paused' } } : { return: {} })}\r\n`);
      }
    });
  });
  t.after(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return { server, commands, running: () => running };
}

test('the ipmi driver against ipmi_sim: status, a cycle with PXE (EFI) as the next boot, off and on, each checked', { skip, timeout: 120_000 }, async (t) => {
  const dir = tempDir(t, 'fleetboot-ipmisim-');
  const vm = fakeVm(t);
  const qmpPort = await listen(vm.server);
  const serial = createServer();
  const serialPort = await listen(serial);
  serial.close(); // ipmi_sim listens there itself; nothing connects (no QEMU)
  const port = await freeUdpPort();
  const password = ensureBmcPassword(dir);
  const bmc = prepareBmc(dir, 'node0', 0, password, { port, serialPort, qmpPort });
  const sim = execa('ipmi_sim', ['-c', bmc.lanConf, '-f', bmc.emulatorFile, '-s', join(bmc.dir, 'state'), '-n'], { reject: false, stdin: 'ignore', all: true });
  t.after(async () => {
    sim.kill('SIGTERM'); // the one process this test started, by its handle
    await sim;
  });

  const driver = new IpmiPowerDriver({
    host: '127.0.0.1', port, user: 'admin', passwordFile: password.file, firmware: 'uefi',
    attempts: 5, retryDelayMs: 300, pollIntervalMs: 200, settleTimeoutMs: 20_000,
  });
  // The first call also waits out ipmi_sim's start (session setup fails until it listens).
  assert.equal(await driver.status(), 'on');

  await driver.powerCycle();
  assert.equal(vm.running(), true);
  assert.deepEqual(vm.commands, ['stop', 'system_reset', 'cont'], 'ipmi_sim powered the VM off, then on again');
  assert.equal(readFileSync(bmc.bootFile, 'utf8').trim(), 'pxe');
  assert.match(readFileSync(bmc.eventLog, 'utf8'), /set boot pxe\n.*set power 0\n.*set power 1\n$/);

  await driver.powerOff();
  assert.equal(await driver.status(), 'off');
  assert.equal(vm.running(), false);
  await driver.powerOn();
  assert.equal(await driver.status(), 'on');
  assert.deepEqual(vm.commands.slice(3), ['stop', 'system_reset', 'cont']);

  const wrong = join(dir, 'wrong-password');
  writeFileSync(wrong, 'not-the-password\n', { mode: 0o600 });
  const refused = new IpmiPowerDriver({ host: '127.0.0.1', port, user: 'admin', passwordFile: wrong, attempts: 2, retryDelayMs: 100 });
  await assert.rejects(refused.status(), (err: unknown) => {
    assert.ok(err instanceof PowerError);
    assert.match(err.message, new RegExp(`^BMC 127\\.0\\.0\\.1:${port}: chassis power status failed`));
    assert.ok(err.message.includes(`the password in ${wrong}`), 'the error says which password file to check');
    assert.ok(!err.message.includes(password.password), 'the error never holds the password');
    t.diagnostic(err.message);
    return true;
  });

  const suite17 = new IpmiPowerDriver({ host: '127.0.0.1', port, user: 'admin', passwordFile: password.file, cipherSuite: 17, attempts: 2, retryDelayMs: 100 });
  await assert.rejects(suite17.status(), /refuses cipher suite 17: set power\.cipherSuite/);
});
