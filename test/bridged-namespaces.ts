// A small admin LAN for hostile-client tests: a server namespace with a bridge, member
// namespaces wired to it by veth pairs (each member's end is `c0`), and `fleetboot serve` run
// in the server namespace, with its counters read over the admin API from inside it. Every
// process is ended and every namespace deleted when the test ends, passed or failed.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { cliPath, testNamespace } from './fixtures.ts';

export interface Member {
  /** CIDR address for `c0`; none for a DHCP client. */
  address?: string;
  mac?: string;
  /** A route for 255.255.255.255 (docs/netboot-notes.md pitfall 1), for a member that broadcasts from a configured address. */
  broadcastRoute?: boolean;
}

export interface BridgedLan {
  server: string;
  members: string[];
  /** Processes to end before the namespaces go (in the order given). */
  procs: ResultPromise[];
}

export async function bridgedLan(t: { after: (fn: () => Promise<void>) => void }, tag: string, serverAddress: string, members: Member[]): Promise<BridgedLan> {
  const lan: BridgedLan = { server: testNamespace(`${tag}-s`), members: members.map((_, i) => testNamespace(`${tag}-${i}`)), procs: [] };
  const created: string[] = [];
  t.after(async () => {
    for (const p of lan.procs) p.kill('SIGTERM');
    await Promise.allSettled(lan.procs);
    for (const ns of created) await execa('ip', ['netns', 'del', ns], { reject: false });
  });
  for (const ns of [lan.server, ...lan.members]) {
    await execa('ip', ['netns', 'add', ns]);
    created.push(ns);
    await execa('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  }
  await execa('ip', ['-n', lan.server, 'link', 'add', 'br0', 'type', 'bridge', 'forward_delay', '0', 'stp_state', '0']);
  await execa('ip', ['-n', lan.server, 'addr', 'add', serverAddress, 'dev', 'br0']);
  await execa('ip', ['-n', lan.server, 'link', 'set', 'br0', 'up']);
  for (const [i, m] of members.entries()) {
    const ns = lan.members[i]!;
    await execa('ip', ['link', 'add', `p${i}`, 'netns', lan.server, 'type', 'veth', 'peer', 'name', 'c0', 'netns', ns]);
    await execa('ip', ['-n', lan.server, 'link', 'set', `p${i}`, 'master', 'br0', 'up']);
    if (m.mac) await execa('ip', ['-n', ns, 'link', 'set', 'c0', 'address', m.mac]);
    if (m.address) await execa('ip', ['-n', ns, 'addr', 'add', m.address, 'dev', 'c0']);
    await execa('ip', ['-n', ns, 'link', 'set', 'c0', 'up']);
    if (m.broadcastRoute) await execa('ip', ['-n', ns, 'route', 'add', '255.255.255.255/32', 'dev', 'c0']);
  }
  return lan;
}

export interface ServeInNamespace {
  log: () => string;
  /** GET /api/v1/counters from inside the server namespace. */
  counters: <T>() => Promise<T>;
}

/** Writes `config` to DIR/fleetboot.json and runs `fleetboot serve` in the LAN's server namespace until `ready` is logged. */
export async function serveIn(lan: BridgedLan, dir: string, config: { apiTokenFile: string } & Record<string, unknown>, ready: RegExp): Promise<ServeInNamespace> {
  writeFileSync(join(dir, 'fleetboot.json'), JSON.stringify({ ...config, http: { listen: '127.0.0.1', port: 0 }, log: { level: 'info' } }));
  const head = execa('ip', ['netns', 'exec', lan.server, process.execPath, cliPath, '--config', join(dir, 'fleetboot.json'), 'serve'], { cwd: dir, reject: false, buffer: false });
  lan.procs.push(head);
  let log = '';
  head.stdout?.on('data', (c: Buffer) => (log += c.toString()));
  const started = Date.now();
  while (!ready.test(log) || !/"event":"http_listen"/.test(log)) {
    if (Date.now() - started > 30_000 || head.exitCode !== null) throw new Error(`fleetboot serve did not start:\n${log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const httpPort = Number(/"event":"http_listen"[^\n]*"port":(\d+)/.exec(log)?.[1]);
  return {
    log: () => log,
    counters: async <T>() => {
      const token = readFileSync(config.apiTokenFile, 'utf8').trim();
      const res = await execa('ip', ['netns', 'exec', lan.server, 'curl', '-sS', '--fail', '-H', `Authorization: Bearer ${token}`, `http://127.0.0.1:${httpPort}/api/v1/counters`]);
      return JSON.parse(res.stdout) as T;
    },
  };
}
