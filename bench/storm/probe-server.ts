// The far end of the storm's bandwidth probe: every connection to HOST:PORT is sent the same
// 1 MiB of random bytes over and over until the client closes it (nodes.ts `probe` reads it),
// so the probe measures the bridge and veth path the storm uses, not a disk.
//   ip netns exec HEAD_NS node --import tsx bench/storm/probe-server.ts HOST PORT
// Prints "ready" once listening; SIGTERM ends it.
import { randomBytes } from 'node:crypto';
import { createServer, type Socket } from 'node:net';

const [host = '127.0.0.1', portArg = '9000'] = process.argv.slice(2);
const chunk = randomBytes(1024 * 1024);

function pump(s: Socket): void {
  while (!s.destroyed && s.write(chunk));
  if (!s.destroyed) s.once('drain', () => pump(s));
}

const server = createServer((s) => {
  s.on('error', () => s.destroy());
  pump(s);
});
server.listen(Number(portArg), host, () => process.stdout.write('ready\n'));
process.on('SIGTERM', () => process.exit(0));
