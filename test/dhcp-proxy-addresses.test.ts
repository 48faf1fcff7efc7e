// Under ProxyDHCP another server leases the addresses; fleetboot learns which MAC holds which
// from the PXE client's own requests (option 50 or ciaddr on 67, ciaddr on 4011), so the TFTP
// download that follows from that address lands on the node. Over loopback: Linux routes all
// of 127/8 to lo, so each client binds its own 127.0.0.x as its source address.
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ProxyAddresses } from '../src/dhcp/proxy-addresses.ts';
import { DhcpServer } from '../src/dhcp/server.ts';
import { HeadNode } from '../src/headnode.ts';
import { createLogger } from '../src/log.ts';
import { parseMac, type Mac } from '../src/mac.ts';
import { Store } from '../src/store/store.ts';
import { clientPacket } from './dhcp-fixtures.ts';
import { tempDir, testConfig } from './fixtures.ts';
import { ack, request } from './tftp-rawclient.ts';

const D = { discover: 1, request: 3 } as const;

async function bound(address: string): Promise<Socket> {
  const s = createSocket('udp4');
  s.bind(0, address);
  await once(s, 'listening');
  return s;
}

/** A one-block TFTP read from source address `from` (RFC 1350 §6: DATA 1 shorter than 512 ends it). */
async function tftpGet(from: string, port: number, file: string): Promise<Buffer> {
  const s = await bound(from);
  try {
    const got = once(s, 'message') as Promise<[Buffer, { port: number }]>;
    s.send(request(file), port, '127.0.0.1');
    const [msg, rinfo] = await got;
    assert.equal(msg.readUInt16BE(0), 3, `expected DATA, got opcode ${msg.readUInt16BE(0)}: ${msg.subarray(4).toString()}`);
    await new Promise<void>((resolve, reject) => s.send(ack(1), rinfo.port, '127.0.0.1', (err) => (err ? reject(err) : resolve())));
    return msg.subarray(4);
  } finally {
    s.close();
  }
}

async function send(from: string, port: number, packet: Buffer): Promise<void> {
  const s = await bound(from);
  await new Promise<void>((resolve, reject) => s.send(packet, port, '127.0.0.1', (err) => (err ? reject(err) : resolve())));
  s.close();
}

async function until(what: string, ok: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('under ProxyDHCP a TFTP download from an address a PXE client claimed (option 50 on 67, ciaddr on 4011) is a tftp_get on its node, with its MAC', { timeout: 60_000 }, async (t) => {
  const dir = tempDir(t);
  const ipxe = join(dir, 'ipxe');
  mkdirSync(ipxe);
  writeFileSync(join(ipxe, 'snponly.efi'), 'not really an EFI binary');
  const logs: Array<Record<string, unknown>> = [];
  const log = createLogger('info', { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) });
  const config = testConfig(dir, {
    ipxeDir: ipxe,
    tftp: { enabled: true, listen: '127.0.0.1', port: 0 },
    dhcp: { mode: 'proxy', listen: '127.0.0.1', port: 0, proxyPort: 0 },
    networks: [{ name: 'lo', subnet: '127.0.0.0/8', serverAddress: '127.0.0.1' }],
  });
  const head = new HeadNode(config, { log });
  await head.start();
  t.after(() => head.stop());
  const dhcp = head.dhcp!;
  const ports = dhcp.ports();
  const tftpPort = head.tftp.address()!.port;

  const macA = parseMac('52:54:00:a0:00:01')!;
  const macB = parseMac('52:54:00:b0:00:02')!;
  const macC = parseMac('52:54:00:c0:00:03')!;
  // A: the REQUEST broadcast on 67 confirming the other server's offer of 127.0.0.77 (option 50).
  await send('127.0.0.1', ports.dhcp, clientPacket({ type: D.request, mac: macA, model: 'ovmf-pxe', requested: '127.0.0.77', serverId: '127.0.0.2', xid: 0x2001 }));
  // B: the request to 4011 from the address it now holds (ciaddr).
  await send('127.0.0.78', ports.proxy!, clientPacket({ type: D.request, mac: macB, model: 'ovmf-pxe', ciaddr: '127.0.0.78', xid: 0x2002 }));
  // An address outside the network the request came in on is not taken.
  await send('127.0.0.1', ports.dhcp, clientPacket({ type: D.request, mac: macC, model: 'ovmf-pxe', requested: '10.9.9.9', xid: 0x2003 }));
  await until('the three requests', () => dhcp.stats.received >= 3 && [macA, macB, macC].every((m) => head.store.nodes.findByMac(m) !== undefined));

  // C holds 127.0.0.80 as a static address; A claiming it too changes nothing.
  const nodeC = head.store.nodes.findByMac(macC)!;
  head.store.nodes.upsertNic(nodeC.id, { mac: macC, ip: '127.0.0.80' });
  await send('127.0.0.1', ports.dhcp, clientPacket({ type: D.request, mac: macA, model: 'ovmf-pxe', requested: '127.0.0.80', xid: 0x2004 }));
  await until('the claim of 127.0.0.80', () => dhcp.stats.received >= 4);

  for (const from of ['127.0.0.77', '127.0.0.78', '127.0.0.79', '127.0.0.80']) {
    assert.equal((await tftpGet(from, tftpPort, 'snponly.efi')).toString(), 'not really an EFI binary');
  }
  await head.tftp.whenIdle();
  assert.equal(dhcp.proxyAddresses.macOf('10.9.9.9'), undefined, 'an address outside the network is not taken');

  const getsOf = (mac: Mac) => head.store.events.timeline(head.store.nodes.findByMac(mac)!.id).filter((e) => e.event === 'tftp_get');
  const clientOf = (e: { detail: Record<string, unknown> }) => e.detail.client;
  const a = getsOf(macA);
  assert.deepEqual(a.map(clientOf), ['127.0.0.77']);
  assert.equal(a[0]!.mac, macA);
  assert.equal(a[0]!.detail.file, 'snponly.efi');
  const b = getsOf(macB);
  assert.deepEqual(b.map(clientOf), ['127.0.0.78']);
  assert.equal(b[0]!.mac, macB);
  const c = getsOf(macC);
  assert.deepEqual(c.map(clientOf), ['127.0.0.80'], 'a node holding the address wins over a proxy claim');
  assert.equal(c[0]!.mac, macC);

  const lines = logs.filter((l) => l.event === 'tftp_get');
  const line = (from: string) => lines.find((l) => l.client === from);
  assert.equal(line('127.0.0.77')?.mac, macA);
  assert.equal(line('127.0.0.77')?.node, head.store.nodes.findByMac(macA)!.id);
  assert.equal(line('127.0.0.78')?.mac, macB);
  assert.equal(line('127.0.0.78')?.node, head.store.nodes.findByMac(macB)!.id);
  assert.equal(line('127.0.0.79')?.mac, undefined, 'nobody claimed 127.0.0.79');
});

test('proxy address memory: entries lapse after the lease time asked for (option 51) or the default, and the oldest go beyond the cap', () => {
  let now = 1_000_000;
  const book = new ProxyAddresses({ cap: 3, defaultSeconds: 60, now: () => now });
  const m = (n: number) => parseMac(`52:54:00:00:00:0${n}`)!;
  book.learn('10.0.0.1', m(1));
  book.learn('10.0.0.2', m(2), 10);
  now += 9_999;
  assert.equal(book.macOf('10.0.0.2'), m(2));
  now += 1;
  assert.equal(book.macOf('10.0.0.2'), undefined, 'lapsed at its 10 s lease');
  assert.equal(book.macOf('10.0.0.1'), m(1));
  book.learn('10.0.0.3', m(3));
  book.learn('10.0.0.4', m(4));
  book.learn('10.0.0.1', m(5)); // re-claimed: now the newest, by another MAC
  book.learn('10.0.0.6', m(6));
  assert.equal(book.size, 3);
  assert.equal(book.macOf('10.0.0.3'), undefined, 'the oldest went first');
  assert.equal(book.macOf('10.0.0.1'), m(5));
  assert.equal(book.macOf('10.0.0.4'), m(4));
  assert.equal(book.macOf('10.0.0.6'), m(6));
  now += 60_000;
  assert.equal(book.macOf('10.0.0.6'), undefined, 'lapsed at the 60 s default');
  assert.throws(() => new ProxyAddresses({ cap: 0 }), /cap must be a positive integer, got 0/);
});

test('proxy address memory honours the lease time a REQUEST on 67 names (option 51)', { timeout: 30_000 }, async (t) => {
  const dir = tempDir(t);
  let now = Date.now();
  const dhcpBook = new ProxyAddresses({ now: () => now });
  const config = testConfig(dir, {
    tftp: { enabled: false },
    dhcp: { mode: 'proxy', listen: '127.0.0.1', port: 0, proxyPort: 0 },
    networks: [{ name: 'lo', subnet: '127.0.0.0/8', serverAddress: '127.0.0.1' }],
  });
  const store = Store.open(':memory:');
  const server = new DhcpServer({ config, store, log: createLogger('silent'), proxyAddresses: dhcpBook });
  const ports = await server.start();
  t.after(async () => {
    await server.stop();
    store.close();
  });
  const mac = parseMac('52:54:00:d0:00:04')!;
  const lease = Buffer.alloc(4);
  lease.writeUInt32BE(30);
  await send('127.0.0.1', ports.dhcp, clientPacket({ type: D.request, mac, model: 'ovmf-pxe', requested: '127.0.0.90', extra: [[51, lease]] }));
  await until('the REQUEST', () => dhcpBook.macOf('127.0.0.90') !== undefined);
  now += 29_000;
  assert.equal(dhcpBook.macOf('127.0.0.90'), mac);
  now += 1_000;
  assert.equal(dhcpBook.macOf('127.0.0.90'), undefined);
});
