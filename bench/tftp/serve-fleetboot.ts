// Runs fleetboot's TFTP server alone (no registry) for the benchmark, like in.tftpd and
// dnsmasq run beside it: `node --import tsx bench/tftp/serve-fleetboot.ts PORT DIR`.
// Prints "ready <port>" on stdout once listening; SIGTERM stops it and prints its counters.
import { createLogger } from '../../src/log.ts';
import { TftpServer } from '../../src/tftp/server.ts';

const [portArg = '0', dir = '.'] = process.argv.slice(2);
const server = new TftpServer({
  listen: '127.0.0.1',
  port: Number(portArg),
  dir,
  log: createLogger(process.env.FLEETBOOT_LOG === 'info' ? 'info' : 'warn'),
  cacheFileMaxBytes: 128 * 1024 * 1024,
  // Unset: the server's default, as config.tftp.busyPollMicros has it.
  ...(process.env.FLEETBOOT_TFTP_BUSY_POLL_US ? { busyPollMicros: Number(process.env.FLEETBOOT_TFTP_BUSY_POLL_US) } : {}),
});
const addr = await server.start();
process.stdout.write(`ready ${addr.port}\n`);
process.on('SIGTERM', () => {
  void server.stop().then(() => {
    process.stderr.write(`${JSON.stringify(server.stats)}\n`);
    process.exit(0);
  });
});
