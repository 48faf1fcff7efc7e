// A raw TFTP client for tests that need to send what real clients do not: OVMF's abort
// after OACK, duplicate ACKs, write requests, NUL bytes and traversal paths curl would
// normalise away.
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { once } from 'node:events';
import { createLogger } from '../src/log.ts';
import { Store } from '../src/store/store.ts';
import { TftpServer, type TftpServerOptions } from '../src/tftp/server.ts';

export interface Datagram {
  msg: Buffer;
  rinfo: RemoteInfo;
}

export function request(filename: string | Buffer, mode = 'octet', options: Record<string, string> = {}, opcode = 1): Buffer {
  const parts: Buffer[] = [Buffer.from([0, opcode]), Buffer.isBuffer(filename) ? filename : Buffer.from(filename), Buffer.from([0]), Buffer.from(`${mode}\0`)];
  for (const [k, v] of Object.entries(options)) parts.push(Buffer.from(`${k}\0${v}\0`));
  return Buffer.concat(parts);
}

export function ack(block: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt16BE(4, 0);
  b.writeUInt16BE(block & 0xffff, 2);
  return b;
}

export function errorPacket(code: number, message: string): Buffer {
  return Buffer.concat([Buffer.from([0, 5, 0, code]), Buffer.from(`${message}\0`)]);
}

export function parseOack(msg: Buffer): Record<string, string> {
  const fields = msg.subarray(2).toString('latin1').split('\0');
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i]) out[fields[i]!] = fields[i + 1]!;
  return out;
}

export class RawClient {
  readonly socket: Socket;
  private readonly queue: Datagram[] = [];
  private waiter: ((d: Datagram) => void) | undefined;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('message', (msg, rinfo) => {
      const w = this.waiter;
      if (w) {
        this.waiter = undefined;
        w({ msg, rinfo });
      } else this.queue.push({ msg, rinfo });
    });
  }

  static async open(): Promise<RawClient> {
    const socket = createSocket('udp4');
    socket.bind(0, '127.0.0.1');
    await once(socket, 'listening');
    return new RawClient(socket);
  }

  /** Sends; the promise settles once the datagram has left (close() would drop a queued one). */
  send(msg: Buffer, port: number): Promise<void> {
    return new Promise((resolve, reject) => this.socket.send(msg, port, '127.0.0.1', (err) => (err ? reject(err) : resolve())));
  }

  /** The next datagram, or an error after `ms`. */
  next(ms = 3000): Promise<Datagram> {
    const d = this.queue.shift();
    if (d) return Promise.resolve(d);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        reject(new Error(`no datagram within ${ms} ms`));
      }, ms);
      this.waiter = (x) => {
        clearTimeout(timer);
        resolve(x);
      };
    });
  }

  /** Datagrams that arrive within `ms` (for "nothing more was sent" checks). */
  async drain(ms: number): Promise<Datagram[]> {
    const got: Datagram[] = [];
    for (;;) {
      try {
        got.push(await this.next(ms));
      } catch {
        return got;
      }
    }
  }

  close(): void {
    this.socket.close();
  }
}

/**
 * Reads `filename` with `options` as RFC 7440 §4 describes the receiver: ACK each window's
 * last block (every block without windowsize); on a gap, ACK the last block received in
 * order once; on silence for `retryMs`, repeat the last ACK (or the request).
 * `ackTimes` > 1 sends every ACK that many times.
 */
export async function rawGet(
  port: number,
  filename: string,
  options: Record<string, string>,
  how: { ackTimes?: number; retryMs?: number; ackDelayMs?: number } = {},
): Promise<{ data: Buffer; dataPackets: number; oack: Record<string, string> | null }> {
  const c = await RawClient.open();
  const retryMs = how.retryMs ?? 3000;
  try {
    const rrq = request(filename, 'octet', options);
    await c.send(rrq, port);
    let tid = 0;
    let oack: Record<string, string> | null = null;
    let lastAck = -1;
    const sendAck = async (n: number): Promise<void> => {
      lastAck = n;
      for (let i = 0; i < (how.ackTimes ?? 1); i++) await c.send(ack(n), tid);
    };
    let blksize = 512;
    let window = 1;
    const chunks: Buffer[] = [];
    let expected = 1;
    let dataPackets = 0;
    let inWindow = 0;
    let gapReported = false;
    for (let silent = 0; ; ) {
      let d: Datagram;
      try {
        d = await c.next(retryMs);
      } catch (err) {
        if (++silent > 20) throw err;
        if (lastAck < 0) await c.send(rrq, port);
        else await sendAck(lastAck);
        inWindow = 0;
        continue;
      }
      silent = 0;
      const op = d.msg.readUInt16BE(0);
      if (op === 5) throw new Error(`server error ${d.msg.readUInt16BE(2)}: ${d.msg.subarray(4).toString()}`);
      if (tid === 0) tid = d.rinfo.port;
      if (op === 6) {
        if (oack === null) {
          oack = parseOack(d.msg);
          blksize = Number(oack.blksize ?? 512);
          window = Number(oack.windowsize ?? 1);
        }
        if (expected === 1) await sendAck(0);
        continue;
      }
      if (op !== 3) throw new Error(`unexpected opcode ${op}`);
      dataPackets++;
      const block = d.msg.readUInt16BE(2);
      if (block !== (expected & 0xffff)) {
        // An old block again means our ACK was lost: ACK it every time (RFC 1350 §6). A block
        // from ahead means a gap: ACK the last in-order block once per gap (RFC 7440 §4).
        const old = ((expected - block) & 0xffff) < 0x8000;
        if (old || !gapReported) {
          gapReported = !old;
          inWindow = 0;
          await sendAck((expected - 1) & 0xffff);
        }
        continue;
      }
      gapReported = false;
      const payload = d.msg.subarray(4);
      chunks.push(Buffer.from(payload));
      inWindow++;
      const last = payload.length < blksize;
      if (last || inWindow === window) {
        if (how.ackDelayMs) await new Promise((r) => setTimeout(r, how.ackDelayMs));
        await sendAck(expected & 0xffff);
        inWindow = 0;
      }
      expected++;
      if (last) break;
    }
    return { data: Buffer.concat(chunks), dataPackets, oack };
  } finally {
    c.close();
  }
}

/** A TFTP server on an ephemeral loopback port over `dir`, with an in-memory registry and captured log lines. */
export async function startTftp(
  t: { after: (fn: () => Promise<void> | void) => void },
  dir: string,
  options: Partial<TftpServerOptions> = {},
): Promise<{ server: TftpServer; port: number; store: Store; logs: Array<Record<string, unknown>> }> {
  const logs: Array<Record<string, unknown>> = [];
  const log = createLogger('info', { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) });
  const store = Store.open(':memory:');
  const server = new TftpServer({ listen: '127.0.0.1', port: 0, dir, log, store, ...options });
  const addr = await server.start();
  t.after(async () => {
    await server.stop();
    store.close();
  });
  return { server, port: addr.port, store, logs };
}
