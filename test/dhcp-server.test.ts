// The DHCP server over real UDP on loopback, addressed as a relay agent would (giaddr), so
// replies come back unicast to the test's socket (RFC 2131 §4.1).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ConfigInput } from '../src/config/schema.ts';
import { HeadNode } from '../src/headnode.ts';
import { silentLogger } from '../src/log.ts';
import { parseMac } from '../src/mac.ts';
import { clientPacket, RelayAgent, type PacketSpec } from './dhcp-fixtures.ts';
import { startHeadNode, tempDir, testConfig } from './fixtures.ts';
import { requires } from './requires.ts';

const D = { discover: 1, request: 3, decline: 4, release: 7, inform: 8 } as const;

function dhcpConfig(relayPort: number, extra: Partial<ConfigInput> = {}, network: Record<string, unknown> = {}): ConfigInput {
  const { dhcp, ...rest } = extra;
  return {
    dhcp: { mode: 'full', listen: '127.0.0.1', port: 0, relayReplyPort: relayPort, ...dhcp },
    networks: [
      {
        name: 'rack',
        subnet: '10.20.0.0/24',
        serverAddress: '10.20.0.1',
        gateway: '10.20.0.254',
        resolvers: ['10.20.0.53'],
        dnsDomain: 'fleet.test',
        range: { start: '10.20.0.100', end: '10.20.0.103' },
        relayAddresses: ['127.0.0.1'],
        leaseSeconds: 600,
        ...network,
      },
    ],
    ...rest,
  } as ConfigInput;
}

async function setup(t: Parameters<typeof tempDir>[0] & { after: (fn: () => Promise<void> | void) => void }, extra: Partial<ConfigInput> = {}, network: Record<string, unknown> = {}, dir?: string) {
  const agent = await RelayAgent.open(t);
  const running = await startHeadNode(t, dir ?? tempDir(t), dhcpConfig(agent.port, extra, network));
  const port = running.head.dhcp!.ports().dhcp;
  let xid = 1000;
  const ask = (spec: Omit<PacketSpec, 'giaddr'>) => agent.exchange(clientPacket({ giaddr: '127.0.0.1', xid: ++xid, ...spec }), port);
  const packet = (spec: Omit<PacketSpec, 'giaddr'>) => clientPacket({ giaddr: '127.0.0.1', xid: ++xid, ...spec });
  return { ...running, agent, port, ask, packet };
}

test('DORA: an unknown machine gets a dynamic address, becomes a discovered node, and its steps are boot events', async (t) => {
  const { head, ask } = await setup(t);
  const mac = '52:54:00:00:01:01';
  const offer = await ask({ type: D.discover, mac, model: 'udhcpc' });
  assert.equal(offer.options.messageType, 'offer');
  assert.equal(offer.yiaddr, '10.20.0.100');
  assert.equal(offer.giaddr, '127.0.0.1');
  assert.equal(offer.options.serverId, '10.20.0.1');
  assert.equal(offer.options.subnetMask, '255.255.255.0');
  assert.deepEqual(offer.options.routers, ['10.20.0.254']);
  assert.deepEqual(offer.options.domainServers, ['10.20.0.53']);
  assert.equal(offer.options.domainName, 'fleet.test');
  assert.equal(offer.options.leaseSeconds, 600);
  assert.equal(offer.options.renewalSeconds, 300); // RFC 2131 §4.4.5 T1
  assert.equal(offer.options.rebindingSeconds, 525); // T2 = 0.875
  assert.equal(offer.options.bootfileName, undefined); // an OS client gets no boot file
  const ack = await ask({ type: D.request, mac, requested: offer.yiaddr, serverId: '10.20.0.1' });
  assert.equal(ack.options.messageType, 'ack');
  assert.equal(ack.yiaddr, '10.20.0.100');

  const lease = head.store.leases.get('10.20.0.100');
  assert.equal(lease?.state, 'bound');
  assert.equal(lease?.mac, mac);
  assert.ok(lease && lease.expiresAt > Date.now() + 590_000);
  const node = head.store.nodes.findByMac(parseMac(mac)!);
  assert.equal(node?.state, 'discovered');
  assert.equal(head.store.nodes.findByAddress('10.20.0.100')?.node.id, node?.id);
  const kinds = head.store.events.timeline(node!.id).map((e) => e.event);
  assert.deepEqual(kinds, ['dhcp_discover', 'dhcp_request', 'dhcp_ack']);
});

test('a registered NIC gets its static address; dynamic clients never get it', async (t) => {
  const { head, ask } = await setup(t);
  const mac = parseMac('52:54:00:00:02:01')!;
  head.store.nodes.create({ nics: [{ mac, ip: '10.20.0.100', isAdmin: true }], hostname: 'cn1' });
  const other = await ask({ type: D.discover, mac: '52:54:00:00:02:02' });
  assert.equal(other.yiaddr, '10.20.0.101');
  await ask({ type: D.request, mac: '52:54:00:00:02:02', requested: other.yiaddr, serverId: '10.20.0.1' });
  const mine = await ask({ type: D.discover, mac, model: 'ovmf-pxe' });
  assert.equal(mine.yiaddr, '10.20.0.100');
  const ack = await ask({ type: D.request, mac, model: 'ovmf-pxe', requested: '10.20.0.100', serverId: '10.20.0.1' });
  assert.equal(ack.options.messageType, 'ack');
  // A static NIC asking for another address is told no (RFC 2131 §4.3.2 INIT-REBOOT).
  const nak = await ask({ type: D.request, mac, requested: '10.20.0.102' });
  assert.equal(nak.options.messageType, 'nak');

  // An operator makes a leased dynamic address static for another NIC: the lease holder
  // keeps it until its lease ends; the new NIC gets another address meanwhile.
  const late = parseMac('52:54:00:00:02:03')!;
  head.store.nodes.create({ nics: [{ mac: late, ip: '10.20.0.101' }] });
  const meanwhile = await ask({ type: D.discover, mac: late });
  assert.notEqual(meanwhile.yiaddr, '10.20.0.101');
  const holder = await ask({ type: D.discover, mac: '52:54:00:00:02:02' });
  assert.equal(holder.yiaddr, '10.20.0.101');
});

test('an address is never handed to two clients; the pool runs out rather than double-allocating', async (t) => {
  const { head, ask, agent, port, packet } = await setup(t);
  const given = new Set<string>();
  for (let i = 0; i < 4; i++) {
    const mac = `52:54:00:00:03:0${i}`;
    // Declared by an operator: not discovered-but-never-booted, whose leases a full pool takes back (docs/hardening.md "DHCP exhaustion").
    head.store.nodes.create({ nics: [{ mac: parseMac(mac)!, isAdmin: true }], hostname: `rack-${i}` });
    const offer = await ask({ type: D.discover, mac });
    const ack = await ask({ type: D.request, mac, requested: offer.yiaddr, serverId: '10.20.0.1' });
    assert.equal(ack.options.messageType, 'ack');
    assert.ok(!given.has(ack.yiaddr), `${ack.yiaddr} given twice`);
    given.add(ack.yiaddr);
  }
  // Pool of 4 is full: a fifth client is offered nothing; a stolen address is NAKed.
  const fifth = packet({ type: D.discover, mac: '52:54:00:00:03:09' });
  agent.send(fifth, port);
  assert.ok(await agent.silentAbout(fifth.readUInt32BE(4), packet({ type: D.discover, mac: '52:54:00:00:03:00' }), port, () => head.dhcp!.settled()));
  const nak = await ask({ type: D.request, mac: '52:54:00:00:03:09', ciaddr: '10.20.0.100', requested: '10.20.0.100' });
  assert.equal(nak.options.messageType, 'nak');
});

test('RELEASE frees the address but the client gets it back; DECLINE quarantines it', async (t) => {
  const { head, ask, agent, port, packet } = await setup(t);
  const a = '52:54:00:00:04:01';
  const offer = await ask({ type: D.discover, mac: a });
  await ask({ type: D.request, mac: a, requested: offer.yiaddr, serverId: '10.20.0.1' });
  agent.send(packet({ type: D.release, mac: a, ciaddr: offer.yiaddr, serverId: '10.20.0.1' }), port);
  const again = await ask({ type: D.discover, mac: a });
  await head.dhcp!.settled(); // offers leave before the commit that carries the release
  assert.equal(head.dhcp!.lease(offer.yiaddr)?.state, 'offered');
  // Offers are not written (RFC 2131 §4.3.1): the disk still has the release.
  assert.equal(head.store.leases.get(offer.yiaddr)?.state, 'released');
  assert.equal(again.yiaddr, offer.yiaddr); // RFC 2131 §4.3.1: previous binding first

  const b = '52:54:00:00:04:02';
  const ob = await ask({ type: D.discover, mac: b });
  await ask({ type: D.request, mac: b, requested: ob.yiaddr, serverId: '10.20.0.1' });
  agent.send(packet({ type: D.decline, mac: b, requested: ob.yiaddr, serverId: '10.20.0.1' }), port);
  const next = await ask({ type: D.discover, mac: b });
  assert.notEqual(next.yiaddr, ob.yiaddr);
  await head.dhcp!.settled();
  assert.equal(head.store.leases.get(ob.yiaddr)?.state, 'declined');
  const c = await ask({ type: D.discover, mac: '52:54:00:00:04:03' });
  assert.notEqual(c.yiaddr, ob.yiaddr);
});

test('renewal extends the lease; INIT-REBOOT for an unknown client stays silent; a REQUEST for another server frees our offer', async (t) => {
  let now = Date.now();
  const agent = await RelayAgent.open(t);
  const { head } = await startHeadNode(t, tempDir(t), dhcpConfig(agent.port), () => now);
  const port = head.dhcp!.ports().dhcp;
  let xid = 1;
  const ask = (s: Omit<PacketSpec, 'giaddr'>) => agent.exchange(clientPacket({ giaddr: '127.0.0.1', xid: ++xid, ...s }), port);
  const mac = '52:54:00:00:05:01';
  const offer = await ask({ type: D.discover, mac });
  await ask({ type: D.request, mac, requested: offer.yiaddr, serverId: '10.20.0.1' });
  const first = head.store.leases.get(offer.yiaddr)!.expiresAt;
  now += 300_000; // T1
  const renew = await ask({ type: D.request, mac, ciaddr: offer.yiaddr });
  assert.equal(renew.options.messageType, 'ack');
  assert.equal(renew.ciaddr, offer.yiaddr);
  assert.equal(head.store.leases.get(offer.yiaddr)!.expiresAt, first + 300_000);

  const unknown = clientPacket({ type: D.request, mac: '52:54:00:00:05:02', requested: '10.20.0.103', giaddr: '127.0.0.1', xid: 77 });
  agent.send(unknown, port);
  assert.ok(await agent.silentAbout(77, clientPacket({ type: D.discover, mac: '52:54:00:00:05:03', giaddr: '127.0.0.1', xid: 78 }), port, () => head.dhcp!.settled()));

  const other = '52:54:00:00:05:04';
  const o = await ask({ type: D.discover, mac: other });
  agent.send(clientPacket({ type: D.request, mac: other, requested: o.yiaddr, serverId: '10.20.0.99', giaddr: '127.0.0.1', xid: 90 }), port);
  assert.ok(await agent.silentAbout(90, clientPacket({ type: D.discover, mac: '52:54:00:00:05:05', giaddr: '127.0.0.1', xid: 91 }), port, () => head.dhcp!.settled()));
  assert.equal(head.dhcp!.lease(o.yiaddr)?.state, 'released');
  assert.equal(head.store.leases.get(o.yiaddr), undefined, 'an offer never reaches the disk');

  // After the lease runs out, it is marked expired and the address is free for others.
  now += 700_000;
  assert.ok(head.dhcp!.expireLeases() >= 1);
  await head.dhcp!.settled(); // the write is in
  assert.equal(head.store.leases.get(offer.yiaddr)?.state, 'expired');
  const late = await ask({ type: D.discover, mac: '52:54:00:00:05:06', requested: offer.yiaddr });
  assert.equal(late.yiaddr, offer.yiaddr);
});

test('one machine keeps one address through its boot chain though firmware and iPXE send different option 61; matchClientId restores RFC 2131 naming', async (t) => {
  const mac = '52:54:00:00:06:01';
  const firmwareId = Buffer.from('00' + '6b4a3e5c0d3f4f0e9d7a2f6c1b2a3c4d', 'hex'); // OVMF: type 0 + GUID
  const ipxeId = Buffer.from('01' + mac.replace(/:/g, ''), 'hex'); // iPXE: type 1 + MAC
  const { ask } = await setup(t);
  const first = await ask({ type: D.discover, mac, model: 'ovmf-pxe', clientId: firmwareId });
  await ask({ type: D.request, mac, model: 'ovmf-pxe', clientId: firmwareId, requested: first.yiaddr, serverId: '10.20.0.1' });
  const second = await ask({ type: D.discover, mac, model: 'ipxe-uefi', clientId: ipxeId });
  assert.equal(second.yiaddr, first.yiaddr);

  const strict = await setup(t, { dhcp: { matchClientId: true } });
  const a = await strict.ask({ type: D.discover, mac, model: 'ovmf-pxe', clientId: firmwareId });
  await strict.ask({ type: D.request, mac, model: 'ovmf-pxe', clientId: firmwareId, requested: a.yiaddr, serverId: '10.20.0.1' });
  const b = await strict.ask({ type: D.discover, mac, model: 'ipxe-uefi', clientId: ipxeId });
  assert.notEqual(b.yiaddr, a.yiaddr);
});

test('a lease that cannot be written is never ACKed, and the server does not believe it bound', async (t) => {
  const { head, ask, agent, port, packet } = await setup(t);
  const dhcp = head.dhcp!;
  const mac = '52:54:00:00:0a:01';
  const offer = await ask({ type: D.discover, mac, model: 'udhcpc' });
  // From here every write to the leases table fails, as a full disk would make it.
  head.store.db.exec("CREATE TRIGGER leases_fail BEFORE INSERT ON leases BEGIN SELECT RAISE(ABORT, 'disk full'); END");
  const request = packet({ type: D.request, mac, requested: offer.yiaddr, serverId: '10.20.0.1' });
  agent.send(request, port);
  for (let i = 0; dhcp.stats.writeErrors === 0; i++) {
    assert.ok(i < 300, 'the failed write is counted');
    await new Promise((r) => setTimeout(r, 10));
  }
  head.store.db.exec('DROP TRIGGER leases_fail');
  const probe = packet({ type: D.discover, mac: '52:54:00:00:0a:02', model: 'udhcpc' });
  assert.ok(await agent.silentAbout(request.readUInt32BE(4), probe, port, () => dhcp.settled()), 'no ACK for a lease not on disk');
  assert.equal(head.store.leases.get(offer.yiaddr), undefined);
  assert.notEqual(dhcp.lease(offer.yiaddr)?.state, 'bound', 'the in-memory book does not keep the binding');
  // The client's retry binds the address, on disk before the ACK.
  const ack = await ask({ type: D.request, mac, requested: offer.yiaddr, serverId: '10.20.0.1' });
  assert.equal(ack.options.messageType, 'ack');
  assert.equal(head.store.leases.get(offer.yiaddr)?.state, 'bound');
});

test('leases survive a restart: the same client gets the same address, others do not', async (t) => {
  const dir = tempDir(t);
  const mac = '52:54:00:00:06:01';
  let ip: string;
  {
    const agent = await RelayAgent.open(t);
    const { head } = await startHeadNode(t, dir, dhcpConfig(agent.port));
    const port = head.dhcp!.ports().dhcp;
    const offer = await agent.exchange(clientPacket({ type: D.discover, mac, giaddr: '127.0.0.1', xid: 1 }), port);
    await agent.exchange(clientPacket({ type: D.request, mac, requested: offer.yiaddr, serverId: '10.20.0.1', giaddr: '127.0.0.1', xid: 2 }), port);
    ip = offer.yiaddr;
    await head.stop();
  }
  const agent = await RelayAgent.open(t);
  const { head } = await startHeadNode(t, dir, dhcpConfig(agent.port));
  const port = head.dhcp!.ports().dhcp;
  const other = await agent.exchange(clientPacket({ type: D.discover, mac: '52:54:00:00:06:02', requested: ip, giaddr: '127.0.0.1', xid: 3 }), port);
  assert.notEqual(other.yiaddr, ip);
  const again = await agent.exchange(clientPacket({ type: D.request, mac, requested: ip, giaddr: '127.0.0.1', xid: 4 }), port);
  assert.equal(again.options.messageType, 'ack');
  assert.equal(again.yiaddr, ip);
});

// The HTTP check fetches snponly.efi from the default ipxeDir, /usr/lib/ipxe.
test('PXE clients get the boot file their firmware can run; iPXE gets the stage-1 URL', { skip: requires({ commands: ['/usr/lib/ipxe/snponly.efi'] }) }, async (t) => {
  const { head, ask } = await setup(t);
  const httpPort = head.http.address()!.port;
  const ovmf = await ask({ type: D.discover, mac: '52:54:00:00:07:01', model: 'ovmf-pxe' });
  // docs/netboot-notes.md pitfall 4: siaddr + file + 67 + 66, and no option 60 without 43.
  assert.equal(ovmf.siaddr, '10.20.0.1');
  assert.equal(ovmf.file, 'snponly.efi');
  assert.equal(ovmf.options.bootfileName, 'snponly.efi');
  assert.equal(ovmf.options.tftpServerName, '10.20.0.1');
  assert.equal(ovmf.options.vendorClassId, undefined);
  assert.equal(ovmf.options.ipxeEncap?.toString('hex'), 'b00101');

  const bios = await ask({ type: D.discover, mac: '52:54:00:00:07:02', model: 'ipxe-bios' });
  assert.equal(bios.options.bootfileName, `http://10.20.0.1:${httpPort}/boot/stage1.ipxe`);
  assert.equal(bios.file, `http://10.20.0.1:${httpPort}/boot/stage1.ipxe`);

  const http = await ask({ type: D.discover, mac: '52:54:00:00:07:03', model: 'ovmf-http' });
  assert.equal(http.options.bootfileName, `http://10.20.0.1:${httpPort}/ipxe/snponly.efi`);
  assert.equal(http.options.vendorClassId, 'HTTPClient');

  const node = head.store.nodes.findByMac(parseMac('52:54:00:00:07:03')!);
  assert.equal(node?.arch, 'efi-x64-http');
  // The HTTP server serves that binary.
  const res = await fetch(`http://127.0.0.1:${httpPort}/ipxe/snponly.efi`);
  assert.equal(res.status, 200);
  assert.ok((await res.arrayBuffer()).byteLength > 10_000);
  assert.equal((await fetch(`http://127.0.0.1:${httpPort}/ipxe/..%2fpasswd`)).status, 400);
});

test('publicUrl wins for the stage-1 URL; UUID from option 97 lands on the node', async (t) => {
  const { head, ask } = await setup(t, { http: { listen: '127.0.0.1', port: 0, publicUrl: 'http://boot.example.test:9000/' } } as Partial<ConfigInput>);
  const ack = await ask({ type: D.discover, mac: '52:54:00:00:08:01', model: 'ipxe-uefi', uuid: '4c4c4544005a3510804bb4c04f565631' });
  assert.equal(ack.options.bootfileName, 'http://boot.example.test:9000/boot/stage1.ipxe');
  assert.equal(head.store.nodes.findByMac(parseMac('52:54:00:00:08:01')!)?.uuid, '4c4c4544-005a-3510-804b-b4c04f565631');
});

test('allow-list answers only registered MACs; discover creates nodes', async (t) => {
  const { head, agent, port, packet } = await setup(t, { unknownNodePolicy: 'allow-list' });
  const known = parseMac('52:54:00:00:09:01')!;
  head.store.nodes.create({ nics: [{ mac: known }] });
  const stranger = packet({ type: D.discover, mac: '52:54:00:00:09:02' });
  agent.send(stranger, port);
  assert.ok(await agent.silentAbout(stranger.readUInt32BE(4), packet({ type: D.discover, mac: known }), port, () => head.dhcp!.settled()));
  assert.equal(head.store.nodes.findByMac(parseMac('52:54:00:00:09:02')!), undefined);
});

test('INFORM gets configuration without a lease', async (t) => {
  const { ask } = await setup(t);
  const ack = await ask({ type: D.inform, mac: '52:54:00:00:0a:01', ciaddr: '10.20.0.77' });
  assert.equal(ack.options.messageType, 'ack');
  assert.equal(ack.yiaddr, '0.0.0.0');
  assert.equal(ack.options.leaseSeconds, undefined);
  assert.deepEqual(ack.options.routers, ['10.20.0.254']);
});

test('ProxyDHCP answers PXE clients only, with boot information and no address, on 67 and 4011', async (t) => {
  const agent = await RelayAgent.open(t);
  const cfg = dhcpConfig(agent.port);
  (cfg.dhcp as Record<string, unknown>).mode = 'proxy';
  (cfg.dhcp as Record<string, unknown>).proxyPort = 0;
  const { head } = await startHeadNode(t, tempDir(t), cfg);
  const { dhcp, proxy } = head.dhcp!.ports();
  assert.ok(proxy && proxy !== dhcp);
  const uuid = '4c4c4544005a3510804bb4c04f565631';
  const offer = await agent.exchange(clientPacket({ type: D.discover, mac: '52:54:00:00:0b:01', model: 'ovmf-pxe', uuid, giaddr: '127.0.0.1', xid: 5 }), dhcp);
  assert.equal(offer.options.messageType, 'offer');
  assert.equal(offer.yiaddr, '0.0.0.0');
  assert.equal(offer.options.vendorClassId, 'PXEClient');
  assert.equal(offer.options.vendorSpecific?.toString('hex'), '060108ff'); // PXE discovery control = 8
  assert.equal(offer.options.clientUuid, '4c4c4544-005a-3510-804b-b4c04f565631');
  assert.equal(offer.options.bootfileName, 'snponly.efi');
  assert.equal(offer.options.leaseSeconds, undefined);
  // Port 4011: the client has an address now and asks directly; the answer comes back to it.
  const ack = await agent.exchange(clientPacket({ type: D.request, mac: '52:54:00:00:0b:01', model: 'ovmf-pxe', uuid, ciaddr: '10.20.0.50', xid: 6 }), proxy);
  assert.equal(ack.options.messageType, 'ack');
  assert.equal(ack.options.bootfileName, 'snponly.efi');
  // An OS's DHCP client is not ours to answer in proxy mode.
  const os = clientPacket({ type: D.discover, mac: '52:54:00:00:0b:02', giaddr: '127.0.0.1', xid: 7 });
  agent.send(os, dhcp);
  assert.ok(await agent.silentAbout(7, clientPacket({ type: D.discover, mac: '52:54:00:00:0b:03', model: 'ipxe-bios', giaddr: '127.0.0.1', xid: 8 }), dhcp, () => head.dhcp!.settled()));
  assert.equal(head.store.leases.list().length, 0);
});

test('an admin interface that does not exist stops the start with a message naming it', async (t) => {
  const config = testConfig(tempDir(t), {
    dhcp: { mode: 'full', listen: '127.0.0.1', port: 0 },
    networks: [{ name: 'admin', interface: 'fbnosuch0', subnet: '10.21.0.0/24', serverAddress: '10.21.0.1' }],
  });
  const head = new HeadNode(config, { log: silentLogger });
  await assert.rejects(head.start(), /DHCP on fbnosuch0: SO_BINDTODEVICE fbnosuch0: No such device/);
});
