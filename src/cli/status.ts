import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import type { HeadNodeCounters } from '../http/admin-api.ts';
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

/** The running head node's counters, read with the API token; null when either is out of reach. */
async function fetchCounters(url: string, tokenFile: string): Promise<HeadNodeCounters | null> {
  let token: string;
  try {
    token = readFileSync(tokenFile, 'utf8').trim();
  } catch {
    return null;
  }
  try {
    const res = await fetch(`${url}/api/v1/counters`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(1500) });
    return res.ok ? ((await res.json()) as HeadNodeCounters) : null;
  } catch {
    return null;
  }
}

function counterLines(c: HeadNodeCounters): string[] {
  const lines = [`counters:   since ${c.startedAt}`];
  if (c.dhcp) {
    const d = c.dhcp;
    lines.push(`  dhcp      received ${d.received}, replies ${d.replies}, malformed ${d.malformed}, ignored ${d.ignored}, send errors ${d.sendErrors}, write errors ${d.writeErrors}`);
  }
  if (c.tftp) {
    const f = c.tftp;
    const refused = Object.entries(f.refused).map(([why, n]) => `${why} ${n}`).join(', ');
    lines.push(`  tftp      requests ${f.requests}, served ${f.served}, not found ${f.notFound}, refused ${refused || 0}, malformed ${f.malformed}, timed out ${f.timedOut}, failed ${f.failed}, active ${f.active}`);
  }
  const st = c.store;
  lines.push(`  store     WAL frames checkpointed ${st.checkpointedFrames}, WAL restarts ${st.walRestarts}, boot events indexed ${st.indexedEvents}`);
  return lines;
}

export function registerStatus(program: Command): void {
  program
    .command('status')
    .description("show the config in use, whether the head node answers (and its DHCP/TFTP counters), and the fleet by state")
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExamples:\n  fleetboot status\n  fleetboot status --json | jq .nodes')
    .action(async (o: { json?: boolean }, cmd: Command) => {
      await withStore(cmd, async (store, { config, path }) => {
        const host = config.http.listen === '0.0.0.0' ? '127.0.0.1' : config.http.listen.includes(':') ? `[${config.http.listen}]` : config.http.listen;
        const url = `http://${host}:${config.http.port}`;
        const running = await probeHealth(url);
        const counters = running ? await fetchCounters(url, config.apiTokenFile) : null;
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
          counters,
        };
        if (o.json) return printJson(status);
        process.stdout.write(
          [
            `config:     ${status.config}`,
            `data dir:   ${status.dataDir}`,
            `head node:  ${running ? 'running' : 'not answering'} at ${url}`,
            `dhcp:       ${status.dhcp}    tftp: ${status.tftp ? 'on' : 'off'}    unknown nodes: ${status.unknownNodePolicy}`,
            `networks:   ${status.networks.map((n) => `${n.name} ${n.subnet}${n.interface ? ` on ${n.interface}` : ''}`).join(', ') || '(none)'}`,
            ...(counters ? counterLines(counters) : []),
            '',
            formatTable(['STATE', 'NODES'], nodeStates.map((s) => [s, nodes[s]])),
            '',
          ].join('\n'),
        );
      });
    });
}
