// `fleetboot dashboard-url`: asks the running head node (admin API, bearer token) for a
// one-time dashboard login link and prints it; the link logs a browser in once, within 5 min.
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import type { Command } from 'commander';
import { configFor } from './context.ts';
import { UsageError } from './errors.ts';
import { printJson } from './output.ts';

export function registerDashboardUrl(program: Command): void {
  program
    .command('dashboard-url')
    .description('print a one-time login link to the dashboard of the running head node (valid 5 minutes, once)')
    .option('--host <host>', 'host name to put in the link (default: the HTTP listen address)')
    .option('--base-url <url>', 'the whole start of the link instead, e.g. http://127.0.0.1:8080 for the lab\'s dashboard forward')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExamples:\n  fleetboot dashboard-url\n  fleetboot dashboard-url --host headnode.example.net\n  fleetboot dashboard-url --json | jq -r .url\n  fleetboot --config var/lab/fleetboot.json dashboard-url --base-url http://127.0.0.1:8080   # the lab (see lab status)')
    .action(async (o: { host?: string; baseUrl?: string; json?: boolean }, cmd: Command) => {
      if (o.baseUrl !== undefined && !/^https?:\/\/[^/]+$/.test(o.baseUrl)) throw new UsageError(`--base-url ${JSON.stringify(o.baseUrl)}: expected http(s)://HOST[:PORT] with no path`);
      const { config } = configFor(cmd);
      const listen = config.http.listen;
      const local = listen === '0.0.0.0' ? '127.0.0.1' : listen === '::' ? '[::1]' : listen.includes(':') ? `[${listen}]` : listen;
      const api = `http://${local}:${config.http.port}`;
      let token: string;
      try {
        token = readFileSync(config.apiTokenFile, 'utf8').trim();
      } catch (err) {
        throw new UsageError(`cannot read the API token from ${config.apiTokenFile}: ${(err as Error).message}`);
      }
      // Over http.unixSocket when the config has one: it reaches a head node in another
      // network namespace (the lab's) through the file system.
      const socket = config.http.unixSocket;
      const where = socket ? `unix socket ${socket}` : api;
      let res: { status: number; body: string };
      try {
        res = await postLoginLink(socket ? { socketPath: socket } : { url: api }, token);
      } catch {
        process.stderr.write(`fleetboot: the head node does not answer at ${where}: start it with "fleetboot serve"\n`);
        process.exitCode = 1;
        return;
      }
      if (res.status !== 201) {
        process.stderr.write(`fleetboot: the head node refused a login link (HTTP ${res.status}): ${res.body}\n`);
        process.exitCode = 1;
        return;
      }
      const link = JSON.parse(res.body) as { path: string; expiresAt: string };
      const host = o.host ?? local;
      const url = o.baseUrl !== undefined ? `${o.baseUrl}${link.path}` : `http://${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}:${config.http.port}${link.path}`;
      if (o.json) return printJson({ url, expiresAt: link.expiresAt });
      process.stdout.write(`${url}\n(one use, until ${link.expiresAt})\n`);
    });
}

/** POST /api/v1/dashboard/login-links over TCP or a unix socket (node:http `socketPath`). */
function postLoginLink(to: { url: string } | { socketPath: string }, token: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const path = '/api/v1/dashboard/login-links';
    const options = { method: 'POST', headers: { authorization: `Bearer ${token}` }, timeout: 5000 };
    const req =
      'socketPath' in to ? request({ ...options, socketPath: to.socketPath, path }) : request(new URL(path, to.url), options);
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}
