// Garbage under load: a flood of malformed datagrams beside real clients, and replies that
// find the send buffer full. Every real client must get its OFFER and ACK, the garbage must be
// counted and cost no reply, and a reply whose send hits EAGAIN/ENOBUFS is queued and tried
// again (bounded) rather than lost.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { test } from 'node:test';
import type { ConfigInput } from '../src/config/schema.ts';
import { decodePacket } from '../src/dhcp/packet.ts';
import { DhcpServer } from '../src/dhcp/server.ts';
import type { DhcpSocketOptions, ReplySocket, SendFailure } from '../src/dhcp/udp.ts';
import { silentLogger } from '../src/log.ts';
import { Store } from '../src/store/store.ts';
import { clientPacket, RelayAgent } from './dhcp-fixtures.ts';
import { startHeadNode, tempDir, testConfig } from './fixtures.ts';

function relayed(relayPort: number, range: { start: string; end: string }): ConfigInput {
  return {
    dhcp: { mode: 'full', listen: '127.0.0.1', port: 0, relayReplyPort: relayPort },
    networks: [{ name: 'rack', subnet: '10.40.0.0/16', serverAddress: '10.40.0.1', range, relayAddresses: ['127.0.0.1'] }],
  };
}

const macOf = (i: number): string => `52:54:00:40:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;

/** Garbage a hostile host sends: random bytes, and BOOTP-shaped packets with broken options. */
function garbage(i: number): Buffer {
  switch (i % 4) {
    case 0:
      return randomBytes(1 + (i % 600));
    case 1: {
      // The magic cookie, then an option whose length runs past the end (RFC 2132 §2).
      const b = clientPacket({ type: 1, mac: macOf(i), xid: 0x7000_0000 + i, giaddr: '127.0.0.1' }).subarray(0, 244);
      return Buffer.concat([b, Buffer.from([53, 200, 1])]);
    }
    case 2:
      return Buffer.alloc(100); // shorter than the 236-byte BOOTP header
    default: {
      const b = clientPacket({ type: 1, mac: macOf(i), xid: 0x7000_0000 + i, giaddr: '127.0.0.1' });
      b.writeUInt32BE(0xdeadbeef, 236); // wrong magic cookie
      return b;
    }
  }
}

test('a flood of 30,000 malformed datagrams beside 300 real clients: every client gets its OFFER and ACK, the garbage is counted, no reply is lost', { timeout: 120_000 }, async (t) => {
  const agent = await RelayAgent.open(t);
  const { head } = await startHeadNode(t, tempDir(t), relayed(agent.port, { start: '10.40.1.0', end: '10.40.3.255' }));
  const port = head.dhcp!.ports().dhcp;
  const flooder = dgram.createSocket('udp4');
  flooder.bind(0, '127.0.0.3');
  await once(flooder, 'listening');
  t.after(() => flooder.close());

  let flooding = true;
  let sent = 0;
  const flood = (async () => {
    while (flooding && sent < 30_000) {
      for (let k = 0; k < 100; k++) flooder.send(garbage(sent++), port, '127.0.0.1');
      await new Promise((r) => setImmediate(r));
    }
  })();

  // Real clients, each as a PXE client behaves: DISCOVER, REQUEST the offer, resend after a
  // second of silence (RFC 2131 §4.1 says 4 s; loopback needs less).
  const clients = 300;
  const exchange = async (bytes: Buffer): Promise<ReturnType<typeof decodePacket> & { ok: true }> => {
    const xid = bytes.readUInt32BE(4);
    for (let attempt = 0; ; attempt++) {
      agent.send(bytes, port);
      try {
        const p = await agent.reply(xid, 1000);
        return { ok: true, packet: p };
      } catch (err) {
        if (attempt >= 4) throw err;
      }
    }
  };
  const results = await Promise.all(
    Array.from({ length: clients }, async (_, i) => {
      const mac = macOf(i);
      const offer = (await exchange(clientPacket({ type: 1, mac, xid: 0x100000 + i, giaddr: '127.0.0.1' }))).packet;
      assert.equal(offer.options.messageType, 'offer');
      const ack = (await exchange(clientPacket({ type: 3, mac, xid: 0x200000 + i, giaddr: '127.0.0.1', requested: offer.yiaddr, serverId: '10.40.0.1' }))).packet;
      assert.equal(ack.options.messageType, 'ack');
      return ack.yiaddr;
    }),
  );
  flooding = false;
  await flood;
  await head.dhcp!.settled();
  assert.equal(new Set(results).size, clients, 'every client its own address');
  const stats = head.dhcp!.stats;
  assert.ok(stats.malformed > 1000, `malformed ${stats.malformed} of ${sent} sent`);
  assert.equal(stats.sendErrors, 0);
  assert.ok(stats.replies >= 2 * clients);
  const counters = head.counters().dhcp!;
  assert.equal(counters.malformed, stats.malformed);
  assert.equal(counters.sendErrors, 0);
  assert.equal(typeof counters.sendRetries, 'number');
});

/**
 * A socket whose send buffer holds `capacity` replies and drains `capacity` every `drainMs`
 * (a bridge to taps whose guests read slowly); a send past it fails with EAGAIN, as
 * sendmmsg(2) does.
 */
class FullBufferSocket implements ReplySocket {
  readonly port = 67;
  readonly delivered: Buffer[] = [];
  private room: number;
  private readonly timer: NodeJS.Timeout;
  onMessage: DhcpSocketOptions['onMessage'] | undefined;

  constructor(
    private readonly capacity: number,
    drainMs: number,
    private readonly failure: { error: string; retryable: boolean } = { error: 'Resource temporarily unavailable', retryable: true },
  ) {
    this.room = capacity;
    this.timer = setInterval(() => (this.room = this.capacity), drainMs);
  }

  sendAll(packets: readonly Buffer[]): SendFailure[] {
    const failed: SendFailure[] = [];
    packets.forEach((p, index) => {
      if (this.room > 0) {
        this.room--;
        this.delivered.push(p);
      } else failed.push({ index, ...this.failure });
    });
    return failed;
  }

  close(): void {
    clearInterval(this.timer);
  }
}

async function serverOn(t: Parameters<typeof tempDir>[0] & { after: (fn: () => Promise<void> | void) => void }, socket: FullBufferSocket): Promise<DhcpServer> {
  const store = Store.open(':memory:');
  const config = testConfig(tempDir(t), relayed(67, { start: '10.40.1.0', end: '10.40.7.255' }));
  const server = new DhcpServer({
    config,
    store,
    log: silentLogger,
    openSocket: (o) => {
      socket.onMessage = o.onMessage;
      return socket;
    },
  });
  await server.start();
  t.after(async () => {
    await server.stop();
    socket.close();
    store.close();
  });
  return server;
}

const relay = { address: '127.0.0.1', family: 'IPv4' as const, port: 67, size: 300 };

test('replies that find the send buffer full (EAGAIN) are queued and sent once it drains: 1,000 OFFERs through a buffer of 50, none lost, in order of arrival', async (t) => {
  const socket = new FullBufferSocket(50, 5);
  const server = await serverOn(t, socket);
  for (let i = 0; i < 1000; i++) socket.onMessage!(clientPacket({ type: 1, mac: macOf(i), xid: 0x300000 + i, giaddr: '127.0.0.1' }), relay);
  const started = Date.now();
  while (socket.delivered.length < 1000 && Date.now() - started < 10_000) await new Promise((r) => setTimeout(r, 20));
  assert.equal(socket.delivered.length, 1000);
  const xids = socket.delivered.map((b) => b.readUInt32BE(4));
  assert.deepEqual(xids, Array.from({ length: 1000 }, (_, i) => 0x300000 + i));
  assert.equal(server.stats.sendErrors, 0);
  assert.ok(server.stats.sendRetries > 0);
  assert.equal(server.stats.sendQueued, 0);
  assert.equal(server.stats.replies, 1000);
});

test('the retry is bounded: a buffer that never drains loses each reply after a second of retries, counted in sendErrors; a failure that is not a full buffer is counted at once', async (t) => {
  const stuck = new FullBufferSocket(0, 60_000);
  const server = await serverOn(t, stuck);
  for (let i = 0; i < 20; i++) stuck.onMessage!(clientPacket({ type: 1, mac: macOf(i), xid: 0x400000 + i, giaddr: '127.0.0.1' }), relay);
  const started = Date.now();
  while (server.stats.sendErrors < 20 && Date.now() - started < 5000) await new Promise((r) => setTimeout(r, 20));
  assert.equal(server.stats.sendErrors, 20);
  assert.equal(server.stats.sendQueued, 0);
  assert.ok(server.stats.sendRetries >= 20);

  const unreachable = new FullBufferSocket(0, 60_000, { error: 'Network is unreachable', retryable: false });
  const other = await serverOn(t, unreachable);
  unreachable.onMessage!(clientPacket({ type: 1, mac: macOf(99), xid: 0x500000, giaddr: '127.0.0.1' }), relay);
  assert.equal(other.stats.sendErrors, 1);
  assert.equal(other.stats.sendRetries, 0);
});
