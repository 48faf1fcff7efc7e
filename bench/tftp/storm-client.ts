// Boot-storm client: N machines at once, each fetching one file the way iPXE's
// undionly.kpxe chainload does (RRQ with blksize 1432 and tsize, lock-step), with a 1 s
// retry and 5 tries like a PXE ROM. Run as its own process so it does not share an event
// loop with the server under test:
//   node --import tsx bench/tftp/storm-client.ts PORT FILE EXPECTED_PATH CLIENTS
// Prints one JSON line: {"ms": total wall time, "ok": n, "failures": n, "errors": {...}}.
import { createSocket, type Socket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

const [portArg, file = 'undionly.kpxe', expectedPath = '', clientsArg = '500'] = process.argv.slice(2);
const port = Number(portArg);
const expected = readFileSync(expectedPath);
const clients = Number(clientsArg);
const blksize = 1432;

function rrq(): Buffer {
  return Buffer.concat([Buffer.from([0, 1]), Buffer.from([file, 'octet', 'blksize', String(blksize), 'tsize', '0', ''].join('\0'), 'latin1')]);
}

function ackPacket(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt16BE(4, 0);
  b.writeUInt16BE(n & 0xffff, 2);
  return b;
}

function fetchOnce(): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket: Socket = createSocket('udp4');
    const out = Buffer.alloc(expected.length + blksize);
    let got = 0;
    let expectedBlock = 1;
    let tid = 0;
    let tries = 0;
    let last: Buffer = rrq();
    let timer: NodeJS.Timeout | undefined;
    const finish = (err?: Error): void => {
      if (timer) clearTimeout(timer);
      socket.close();
      if (err) reject(err);
      else if (got !== expected.length || !out.subarray(0, got).equals(expected)) reject(new Error('content differs'));
      else resolve();
    };
    const send = (): void => {
      socket.send(last, tid || port, '127.0.0.1');
      if (timer) clearTimeout(timer);
      timer = setTimeout(() => {
        if (++tries > 5) return finish(new Error('timeout'));
        send();
      }, 1000);
    };
    socket.on('error', (e) => finish(e));
    socket.on('message', (msg, rinfo) => {
      if (tid === 0) tid = rinfo.port;
      if (rinfo.port !== tid) return;
      const op = msg.readUInt16BE(0);
      if (op === 5) return finish(new Error(`ERROR ${msg.readUInt16BE(2)}`));
      if (op === 6) {
        last = ackPacket(0);
        tries = 0;
        return send();
      }
      if (op !== 3) return;
      const block = msg.readUInt16BE(2);
      if (block === (expectedBlock & 0xffff)) {
        const payload = msg.subarray(4);
        payload.copy(out, got);
        got += payload.length;
        last = ackPacket(expectedBlock);
        expectedBlock++;
        tries = 0;
        if (payload.length < blksize) {
          socket.send(last, tid, '127.0.0.1', () => finish());
          return;
        }
      }
      send();
    });
    socket.bind(0, '127.0.0.1', () => send());
  });
}

const start = performance.now();
const results = await Promise.allSettled(Array.from({ length: clients }, () => fetchOnce()));
const ms = performance.now() - start;
const errors: Record<string, number> = {};
for (const r of results) if (r.status === 'rejected') errors[String((r.reason as Error).message)] = (errors[String((r.reason as Error).message)] ?? 0) + 1;
const failures = results.filter((r) => r.status === 'rejected').length;
process.stdout.write(`${JSON.stringify({ ms: Math.round(ms), ok: clients - failures, failures, errors })}\n`);
