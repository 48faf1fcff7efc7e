// The lab's dashboard forward: the lab head node lives in its network namespace, out of reach
// of a browser on the host. This process runs on the host, listens on 127.0.0.1:PORT and
// carries each TCP connection to the head node's HTTP unix socket (http.unixSocket), a file
// that both network namespaces see. It prints `listening PORT` once it listens (on PORT, or
// on a free port when PORT is taken) and ends on SIGTERM.
// Plain JS: spawned with node alone, outside fleetboot's TypeScript loader.
//   node dashboard-forward.mjs SOCKET PORT
import { connect, createServer } from 'node:net';

const [socketPath, portArg] = process.argv.slice(2);
const wanted = Number(portArg);
if (!socketPath || !Number.isInteger(wanted) || wanted < 0 || wanted > 65535) {
  process.stderr.write('usage: dashboard-forward.mjs SOCKET PORT\n');
  process.exit(2);
}

const open = new Set();
const server = createServer((client) => {
  const upstream = connect(socketPath);
  open.add(client);
  const end = () => {
    open.delete(client);
    client.destroy();
    upstream.destroy();
  };
  client.on('error', end).on('close', end);
  upstream.on('error', end).on('close', end);
  client.pipe(upstream);
  upstream.pipe(client);
});

function listen(port) {
  server.once('error', (err) => {
    if (err.code === 'EADDRINUSE' && port !== 0) listen(0);
    else {
      process.stderr.write(`dashboard forward: ${err.message}\n`);
      process.exit(1);
    }
  });
  server.listen(port, '127.0.0.1', () => process.stdout.write(`listening ${server.address().port}\n`));
}
listen(wanted);

process.on('SIGTERM', () => {
  server.close();
  for (const c of open) c.destroy();
  process.exit(0);
});
