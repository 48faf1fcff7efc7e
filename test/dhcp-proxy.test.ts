// ProxyDHCP on a real interface (PXE spec §2.2.3): a PXE client in its own network namespace
// broadcasts a DISCOVER to port 67 and gets a ProxyDHCP offer (boot file, no address) by
// broadcast through the admin interface, then asks port 4011 directly and gets the ACK.
// A plain OS DHCP client on the same wire gets nothing from a proxy.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { execa, type ResultPromise } from 'execa';
import { decodePacket } from '../src/dhcp/packet.ts';
import { clientPacket } from './dhcp-fixtures.ts';
import { cliPath, tempDir, testNamespace } from './fixtures.ts';
import { requires } from './requires.ts';

// The client: sends each packet (hex argv) to its address:port and prints every reply it
// hears on :68 as one hex line; exits after `expect` replies or when the run ends.
const clientScript = `
import dgram from 'node:dgram';
const [expect, ...sends] = process.argv.slice(2);
const s = dgram.createSocket({ type: 'udp4', reuseAddr: true });
let got = 0;
s.on('message', (m) => { console.log(m.toString('hex')); if (++got >= Number(expect)) s.close(); });
s.bind(68, () => {
  s.setBroadcast(true);
  for (const spec of sends) { const [addr, port, hex] = spec.split(':'); s.send(Buffer.from(hex, 'hex'), Number(port), addr); }
});
setTimeout(() => s.close(), 8000).unref();
`;

test('ProxyDHCP answers a PXE broadcast on 67 and a direct request on 4011; an OS client gets nothing', { timeout: 60_000, skip: requires({ root: 'network namespaces and a veth pair', commands: ['ip'] }) }, async (t) => {
  const tag = `${process.pid % 100000}`;
  const server = testNamespace('proxy1s');
  const client = testNamespace('proxy1c');
  let head: ResultPromise | undefined;
  // The head node first (deleting a namespace does not end what runs in it), and before
  // tempDir's removal: after-hooks run in the order they were added.
  t.after(async () => {
    head?.kill('SIGTERM');
    await head;
    for (const ns of [server, client]) await execa('ip', ['netns', 'del', ns], { reject: false });
  });
  const dir = tempDir(t);
  for (const ns of [server, client]) {
    await execa('ip', ['netns', 'add', ns]);
    await execa('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  }
  await execa('ip', ['link', 'add', `sp${tag}`, 'netns', server, 'type', 'veth', 'peer', 'name', 'c0', 'netns', client]);
  await execa('ip', ['-n', server, 'addr', 'add', '10.77.0.1/24', 'dev', `sp${tag}`]);
  await execa('ip', ['-n', server, 'link', 'set', `sp${tag}`, 'up']);
  await execa('ip', ['-n', client, 'link', 'set', 'c0', 'up']);
  // The client has an address from "the other" DHCP server, and a broadcast route.
  await execa('ip', ['-n', client, 'addr', 'add', '10.77.0.50/24', 'dev', 'c0']);
  await execa('ip', ['-n', client, 'route', 'add', '255.255.255.255/32', 'dev', 'c0']);

  const config = {
    dataDir: join(dir, 'var'),
    apiTokenFile: join(dir, 'var', 'api-token'),
    http: { listen: '127.0.0.1', port: 0 },
    log: { level: 'info' },
    dhcp: { mode: 'proxy' },
    networks: [{ name: 'admin', interface: `sp${tag}`, subnet: '10.77.0.0/24', serverAddress: '10.77.0.1' }],
  };
  writeFileSync(join(dir, 'fleetboot.json'), JSON.stringify(config));
  const serve = execa('ip', ['netns', 'exec', server, process.execPath, cliPath, '--config', join(dir, 'fleetboot.json'), 'serve'], { cwd: dir, reject: false, buffer: false });
  head = serve;
  await new Promise<void>((resolve, reject) => {
    const rl = createInterface({ input: serve.stdout! });
    rl.on('line', (line) => line.includes('"event":"dhcp_started"') && resolve());
    serve.then(() => reject(new Error('fleetboot exited before DHCP started')), reject);
  });

  writeFileSync(join(dir, 'client.mjs'), clientScript);
  const mac = '52:54:00:77:00:50';
  const uuid = '4c4c4544005a3510804bb4c04f565631';
  const discover = clientPacket({ type: 1, mac, model: 'ovmf-pxe', uuid, flags: 0x8000, xid: 0x1001 }).toString('hex');
  const request = clientPacket({ type: 3, mac, model: 'ovmf-pxe', uuid, ciaddr: '10.77.0.50', xid: 0x1002 }).toString('hex');
  const osDiscover = clientPacket({ type: 1, mac: '52:54:00:77:00:51', xid: 0x1003 }).toString('hex');
  // The OS client's DISCOVER goes first; the run ends after the two PXE answers.
  const run = await execa(
    'ip',
    ['netns', 'exec', client, process.execPath, join(dir, 'client.mjs'), '2', `255.255.255.255:67:${osDiscover}`, `255.255.255.255:67:${discover}`, `10.77.0.1:4011:${request}`],
    { reject: false, timeout: 20_000 },
  );
  const replies = run.stdout
    .split('\n')
    .filter(Boolean)
    .map((hex) => decodePacket(Buffer.from(hex, 'hex')))
    .flatMap((d) => (d.ok ? [d.packet] : []));
  const offer = replies.find((p) => p.xid === 0x1001);
  const ack = replies.find((p) => p.xid === 0x1002);
  assert.ok(offer, `no proxy offer; got ${run.stdout} ${run.stderr}`);
  assert.equal(offer.options.messageType, 'offer');
  assert.equal(offer.yiaddr, '0.0.0.0');
  assert.equal(offer.siaddr, '10.77.0.1');
  assert.equal(offer.options.vendorClassId, 'PXEClient');
  assert.equal(offer.options.vendorSpecific?.toString('hex'), '060108ff');
  assert.equal(offer.options.bootfileName, 'snponly.efi');
  assert.ok(ack, 'no ACK from port 4011');
  assert.equal(ack.options.messageType, 'ack');
  assert.equal(ack.options.bootfileName, 'snponly.efi');
  assert.equal(replies.some((p) => p.xid === 0x1003), false, 'a proxy must not answer an OS DHCP client');
});
