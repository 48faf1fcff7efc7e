// The lab's simulated BMC files (src/lab/bmc.ts) without root: the lan.conf ipmi_sim reads, and
// the chassis_control program ipmi_sim runs, driven here against a QMP peer on a loopback TCP
// port exactly as ipmi_sim would call it (`PROG get power`, `PROG set power 0`, ...).
import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { execa } from 'execa';
import { bmcPorts, chassisControlScript, ensureBmcPassword, ipmiSimArgv, labPowerSpec, prepareBmc, qemuBmcArgs } from '../src/lab/bmc.ts';
import { prepareVm } from '../src/lab/vm.ts';
import { powerSpecSchema } from '../src/rollout/power.ts';
import { runCli, tempDir, testNamespace } from './fixtures.ts';
import { requires } from './requires.ts';

test('each VM gets its own BMC ports, a lan.conf with a LAN channel on 127.0.0.1, the VM serial link, an admin user and chassis_control', (t) => {
  const dir = tempDir(t);
  assert.deepEqual(bmcPorts(0), { port: 9001, serialPort: 9002, qmpPort: 9003 });
  assert.deepEqual(bmcPorts(2), { port: 9007, serialPort: 9008, qmpPort: 9009 });
  const password = ensureBmcPassword(dir);
  assert.equal(ensureBmcPassword(dir).password, password.password, 'one password per lab, kept');
  assert.ok(password.password.length >= 12 && password.password.length <= 20);
  assert.equal(statSync(password.file).mode & 0o077, 0, 'the password file is private');
  const bmc = prepareBmc(dir, 'node1', 1, password);
  const lan = readFileSync(bmc.lanConf, 'utf8');
  for (const line of ['startlan 1', 'addr 127.0.0.1 9004', 'endlan', `chassis_control "${bmc.dir}/chassis-control"`, 'serial 15 127.0.0.1 9005 codec VM', `user 2 true "admin" "${password.password}" admin 10 md5`]) {
    assert.ok(lan.includes(line), `lan.conf has ${line}:\n${lan}`);
  }
  assert.equal(statSync(bmc.lanConf).mode & 0o077, 0, 'lan.conf holds the password: private');
  assert.deepEqual(ipmiSimArgv('fb-lab', bmc), ['ip', 'netns', 'exec', 'fb-lab', 'ipmi_sim', '-c', bmc.lanConf, '-f', bmc.emulatorFile, '-s', join(bmc.dir, 'state'), '-n']);

  const vm = prepareVm('fb-lab', dir, { index: 1, firmware: 'uefi', chainload: false, memoryMiB: 256, diskMiB: 16, timeoutSeconds: 60, bmc }, 1);
  const argv = vm.argv.join(' ');
  assert.ok(argv.includes(qemuBmcArgs(bmc).join(' ')), 'QEMU gets the KCS BMC device and the QMP port');
  assert.ok(!vm.argv.includes('-no-reboot'), 'a VM behind a BMC reboots');
  assert.ok(prepareVm('fb-lab', dir, { index: 2, firmware: 'bios', chainload: false, memoryMiB: 256, diskMiB: 16, timeoutSeconds: 60 }, 1).argv.includes('-no-reboot'));

  vm.bmc = bmc;
  const spec = labPowerSpec(vm);
  assert.deepEqual(spec, { kind: 'ipmi', host: '127.0.0.1', port: 9004, user: 'admin', passwordFile: password.file, cipherSuite: 3, firmware: 'uefi' });
  assert.ok(powerSpecSchema.safeParse(spec).success);
  assert.ok(!JSON.stringify(spec).includes(password.password), 'the spec names the file, not the password');
});

test('chassis_control answers ipmi_sim over QMP: power from query-status, off = stop, on = system_reset + cont, reset, boot device recorded', async (t) => {
  const dir = tempDir(t);
  const commands: string[] = [];
  let running = true;
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.write(`${JSON.stringify({ QMP: { version: {}, capabilities: [] } })}\r\n`);
    let buf = '';
    s.on('data', (chunk) => {
      buf += chunk.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const cmd = (JSON.parse(buf.slice(0, nl)) as { execute: string }).execute;
        buf = buf.slice(nl + 1);
        if (cmd !== 'qmp_capabilities') commands.push(cmd);
        if (cmd === 'stop') running = false;
        if (cmd === 'cont') running = true;
        // An event between replies, as QEMU sends them: the script must skip it.
        if (cmd === 'system_reset') s.write(`${JSON.stringify({ event: 'RESET', data: { guest: false } })}\r\n`);
        s.write(`${JSON.stringify(cmd === 'query-status' ? { return: { running, status: running ? 'running' : 'paused' } } : { return: {} })}\r\n`);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  const port = (server.address() as AddressInfo).port;
  const script = join(dir, 'chassis-control');
  writeFileSync(script, chassisControlScript(port, join(dir, 'bootdev'), join(dir, 'chassis.log')));
  chmodSync(script, 0o700);
  const run = async (...args: string[]): Promise<string> => {
    const r = await execa(script, args, { reject: false, timeout: 20_000 });
    assert.equal(r.exitCode, 0, `${args.join(' ')}: ${String(r.stdout)} ${String(r.stderr)}`);
    return String(r.stdout).trim();
  };
  assert.equal(await run('get', 'power'), 'power:1');
  assert.equal(await run('get', 'boot'), 'boot:default');
  await run('set', 'boot', 'pxe');
  assert.equal(await run('get', 'boot'), 'boot:pxe');
  await run('set', 'power', '0');
  assert.equal(await run('get', 'power'), 'power:0');
  await run('set', 'power', '1');
  assert.equal(await run('get', 'power'), 'power:1');
  await run('set', 'reset', '1');
  assert.deepEqual(commands, ['query-status', 'stop', 'query-status', 'system_reset', 'cont', 'query-status', 'system_reset']);
  assert.match(readFileSync(join(dir, 'chassis.log'), 'utf8'), /set boot pxe\n.*set power 0\n.*set power 1\n.*set reset 1\n$/);

  server.close();
  for (const s of sockets) s.destroy();
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(await run('get', 'power'), 'power:0', 'no QMP peer: the VM is off');
});

test('lab up --bmc refuses an unknown kind with exit code 2', { skip: requires({ root: 'lab up checks for root first', commands: ['ip'] }) }, async (t) => {
  const dir = tempDir(t);
  const r = await runCli(['lab', 'up', '--dir', join(dir, 'lab'), '--namespace', testNamespace('bmc1'), '--detach', '--bmc', 'redfish'], dir);
  assert.equal(r.exitCode, 2, String(r.stderr));
  assert.match(String(r.stderr), /--bmc redfish: expected none or ipmi/);
});
