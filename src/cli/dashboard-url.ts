// `fleetboot dashboard-url`: asks the running head node (admin API, bearer token) for a
// one-time dashboard login link and prints it; the link logs a browser in once, within 5 min.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { configFor } from './context.ts';
import { UsageError } from './errors.ts';
import { printJson } from './output.ts';

export function registerDashboardUrl(program: Command): void {
  program
    .command('dashboard-url')
    .description('print a one-time login link to the dashboard of the running head node (valid 5 minutes, once)')
    .option('--host <host>', 'host name to put in the link (default: the HTTP listen address)')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExamples:\n  fleetboot dashboard-url\n  fleetboot dashboard-url --host headnode.example.net\n  fleetboot dashboard-url --json | jq -r .url')
    .action(async (o: { host?: string; json?: boolean }, cmd: Command) => {
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
      let res: Response;
      try {
        res = await fetch(`${api}/api/v1/dashboard/login-links`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(5000) });
      } catch {
        process.stderr.write(`fleetboot: the head node does not answer at ${api}: start it with "fleetboot serve"\n`);
        process.exitCode = 1;
        return;
      }
      if (res.status !== 201) {
        process.stderr.write(`fleetboot: the head node refused a login link (HTTP ${res.status}): ${await res.text()}\n`);
        process.exitCode = 1;
        return;
      }
      const link = (await res.json()) as { path: string; expiresAt: string };
      const host = o.host ?? local;
      const url = `http://${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}:${config.http.port}${link.path}`;
      if (o.json) return printJson({ url, expiresAt: link.expiresAt });
      process.stdout.write(`${url}\n(one use, until ${link.expiresAt})\n`);
    });
}
