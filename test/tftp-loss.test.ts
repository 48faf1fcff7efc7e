// A lossy path: a small UDP proxy between real clients and the server drops 10% of the
// packets in each direction (seeded, so a failure replays). Transfers must still complete
// byte-identical, recovered by the server's retransmission timer.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { execa } from 'execa';
import { tempDir } from './fixtures.ts';
import { requires } from './requires.ts';
import { rawGet, startTftp } from './tftp-rawclient.ts';

/** mulberry32: a tiny seeded PRNG so the drop pattern is reproducible. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

interface Session {
  up: Socket;
  down: Socket;
  serverPort: number;
}

/**
 * Clients send their request to `port`. Each client gets an upstream socket (its face toward
 * the server) and a downstream socket (the "server TID" it sees), so per-transfer ports work
 * through the proxy as they do directly.
 */
class LossyProxy {
  dropped = { toServer: 0, toClient: 0 };
  forwarded = { toServer: 0, toClient: 0 };
  private readonly front = createSocket('udp4');
  private readonly sessions = new Map<string, Session>();
  private readonly random: () => number;

  constructor(
    private readonly serverPort: number,
    private readonly lossRate: number,
    seed: number,
  ) {
    this.random = seeded(seed);
    this.front.on('message', (msg, rinfo) => this.fromClient(this.session(rinfo), msg));
  }

  async start(): Promise<number> {
    this.front.bind(0, '127.0.0.1');
    await once(this.front, 'listening');
    return this.front.address().port;
  }

  close(): void {
    this.front.close();
    for (const s of this.sessions.values()) {
      s.up.close();
      s.down.close();
    }
  }

  private session(client: RemoteInfo): Session {
    const key = `${client.address}:${client.port}`;
    let s = this.sessions.get(key);
    if (s) return s;
    const up = createSocket('udp4');
    const down = createSocket('udp4');
    const session: Session = { up, down, serverPort: this.serverPort };
    // ICMP port-unreachable after a client exits surfaces as an error: nothing to do.
    up.on('error', () => undefined);
    down.on('error', () => undefined);
    up.bind(0, '127.0.0.1');
    down.bind(0, '127.0.0.1');
    up.on('message', (msg, from) => {
      session.serverPort = from.port;
      if (this.random() < this.lossRate) return void this.dropped.toClient++;
      this.forwarded.toClient++;
      down.send(msg, client.port, client.address);
    });
    down.on('message', (msg) => this.fromClient(session, msg));
    this.sessions.set(key, session);
    return session;
  }

  private fromClient(s: Session, msg: Buffer): void {
    if (this.random() < this.lossRate) return void this.dropped.toServer++;
    this.forwarded.toServer++;
    s.up.send(msg, s.serverPort, '127.0.0.1');
  }
}

test('with 10% loss each way, curl (lock-step) and an RFC 7440 receiver (windowsize 8) still get byte-identical files', { skip: requires({ commands: ['curl'] }) }, async (t) => {
  const dir = tempDir(t);
  const out = tempDir(t);
  const data = randomBytes(400_000);
  writeFileSync(join(dir, 'f.bin'), data);
  const { port, server } = await startTftp(t, dir, { minRetransmitMs: 20, defaultTimeoutMs: 200, retries: 12 });
  const proxy = new LossyProxy(port, 0.1, 4);
  const proxyPort = await proxy.start();
  t.after(() => proxy.close());

  await execa('curl', ['-sS', '--fail', '--max-time', '60', '--connect-timeout', '3', '--tftp-blksize', '1468', '-o', join(out, 'curl'), `tftp://127.0.0.1:${proxyPort}/f.bin`]);
  assert.ok(readFileSync(join(out, 'curl')).equals(data), 'curl copy differs');

  // atftp 0.8.0 is left out here: after a duplicate DATA it sends one extra ACK and then
  // ignores further copies of that block without re-ACKing, so a lost extra ACK stalls it
  // (its timer restarts on every packet). The windowed path uses the test's RFC 7440 receiver.
  const windowed = await rawGet(proxyPort, 'f.bin', { blksize: '1468', windowsize: '8', tsize: '0' }, { retryMs: 300 });
  assert.ok(windowed.data.equals(data), 'windowed copy differs');

  assert.ok(proxy.dropped.toClient > 10 && proxy.dropped.toServer > 10, `the proxy dropped packets: ${JSON.stringify(proxy.dropped)}`);
  assert.ok(server.stats.retransmits > 0);
});
