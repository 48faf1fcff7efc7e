import type { Command } from 'commander';
import { nodeStates } from '../store/nodes.ts';
import { formatTable, printJson } from './output.ts';
import { withStore } from './context.ts';

async function probeHealth(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1500) });
    return res.ok;
  } catch {
    return false;
  }
}

export function registerStatus(program: Command): void {
  program
    .command('status')
    .description('show the config in use, whether the head node answers, and the fleet by state')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExamples:\n  fleetboot status\n  fleetboot status --json | jq .nodes')
    .action(async (o: { json?: boolean }, cmd: Command) => {
      await withStore(cmd, async (store, { config, path }) => {
        const host = config.http.listen === '0.0.0.0' ? '127.0.0.1' : config.http.listen.includes(':') ? `[${config.http.listen}]` : config.http.listen;
        const url = `http://${host}:${config.http.port}`;
        const running = await probeHealth(url);
        const nodes = store.nodes.countByState();
        const status = {
          config: path ?? '(embedded defaults)',
          dataDir: config.dataDir,
          http: url,
          running,
          dhcp: config.dhcp.mode,
          tftp: config.tftp.enabled,
          unknownNodePolicy: config.unknownNodePolicy,
          networks: config.networks.map((n) => ({ name: n.name, interface: n.interface ?? null, subnet: n.subnet })),
          nodes,
        };
        if (o.json) return printJson(status);
        process.stdout.write(
          [
            `config:     ${status.config}`,
            `data dir:   ${status.dataDir}`,
            `head node:  ${running ? 'running' : 'not answering'} at ${url}`,
            `dhcp:       ${status.dhcp}    tftp: ${status.tftp ? 'on' : 'off'}    unknown nodes: ${status.unknownNodePolicy}`,
            `networks:   ${status.networks.map((n) => `${n.name} ${n.subnet}${n.interface ? ` on ${n.interface}` : ''}`).join(', ') || '(none)'}`,
            '',
            formatTable(['STATE', 'NODES'], nodeStates.map((s) => [s, nodes[s]])),
            '',
          ].join('\n'),
        );
      });
    });
}
