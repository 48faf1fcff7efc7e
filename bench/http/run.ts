// bench/http: 200 concurrent clients (wrk) each fetching a 256 MiB boot_archive, from
// fleetboot's /os route and from nginx (sendfile) serving the same file, interleaved in
// one run. Prints aggregate MB/s per round, the medians and the ratio. Not part of npm test.
//
//   node --import tsx bench/http/run.ts [--rounds 3] [--seconds 8] [--connections 200] [--mib 256]
import { execa, type ResultPromise } from 'execa';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import { importSmartosTarball } from '../../src/platforms/import.ts';
import { Store } from '../../src/store/store.ts';
import { sha1Hex, smartosEntries, tarOf } from '../../test/platform-fixtures.ts';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '8' },
    connections: { type: 'string', default: '200' },
    mib: { type: 'string', default: '256' },
  },
});
const rounds = Number(values.rounds);
const seconds = Number(values.seconds);
const connections = Number(values.connections);
const mib = Number(values.mib);
const repo = resolve(import.meta.dirname, '../..');
const stamp = '20240101T000000Z';
const urlPath = `/os/${stamp}/platform/i86pc/amd64/boot_archive`;

async function waitFor(url: string, deadlineMs: number): Promise<void> {
  const until = Date.now() + deadlineMs;
  for (;;) {
    try {
      const res = await fetch(url, { method: 'HEAD' });
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > until) throw new Error(`${url} did not answer within ${deadlineMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Aggregate MB/s (10^6 bytes) from wrk's "Transfer/sec" (bytes read, complete responses or not). */
async function wrk(url: string): Promise<number> {
  const r = await execa('wrk', ['-t2', `-c${connections}`, `-d${seconds}s`, '--timeout', '120s', url], { timeout: (seconds + 30) * 1000 });
  const m = /Transfer\/sec:\s+([\d.]+)(B|KB|MB|GB)/.exec(r.stdout);
  if (!m) throw new Error(`cannot read wrk output:\n${r.stdout}`);
  const scale = { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3 }[m[2] as 'B' | 'KB' | 'MB' | 'GB'];
  return (Number(m[1]) * scale) / 1e6;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

const dir = mkdtempSync(join(tmpdir(), 'fleetboot-bench-http-'));
chmodSync(dir, 0o755); // nginx workers run as an unprivileged user
const children: ResultPromise[] = [];
try {
  // A real import of a platform tarball holding a 256 MiB boot_archive.
  const archive = Buffer.alloc(mib << 20);
  for (let i = 0; i < archive.length; i += 4096) archive.writeUInt32LE(i, i);
  const images = join(dir, 'platform-images');
  const store = Store.open(join(dir, 'var', 'fleetboot.db'));
  const tgz = join(dir, `platform-${stamp}.tgz`);
  writeFileSync(tgz, gzipSync(tarOf(smartosEntries({ stamp, bootArchive: archive })), { level: 1 }));
  await importSmartosTarball(tgz, { store, platformImagesDir: images });
  store.close();
  rmSync(tgz);
  const archiveSha1 = sha1Hex(archive);

  const fbPort = 18000 + (process.pid % 1000);
  const ngPort = fbPort + 1000;
  writeFileSync(
    join(dir, 'fleetboot.json'),
    JSON.stringify({ dataDir: join(dir, 'var'), platformImagesDir: images, apiTokenFile: join(dir, 'var', 'api-token'), http: { listen: '127.0.0.1', port: fbPort }, log: { level: 'warn' } }),
  );
  const fleetboot = execa(process.execPath, [join(repo, 'bin/fleetboot.js'), '--config', join(dir, 'fleetboot.json'), 'serve'], { cwd: dir, reject: false, stdout: 'ignore', stderr: 'inherit' });
  children.push(fleetboot);

  // nginx as commonly deployed for static files: sendfile, workers = cores, no access log.
  const ngDir = join(dir, 'nginx');
  const conf = `daemon off;
worker_processes auto;
pid ${ngDir}/nginx.pid;
error_log ${ngDir}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  client_body_temp_path ${ngDir}/body; proxy_temp_path ${ngDir}/proxy; fastcgi_temp_path ${ngDir}/fastcgi;
  uwsgi_temp_path ${ngDir}/uwsgi; scgi_temp_path ${ngDir}/scgi;
  server {
    listen 127.0.0.1:${ngPort};
    location /os/ { alias ${images}/os/; default_type application/octet-stream; }
  }
}
`;
  await execa('mkdir', ['-p', ngDir]);
  writeFileSync(join(ngDir, 'nginx.conf'), conf);
  const nginx = execa('nginx', ['-c', join(ngDir, 'nginx.conf'), '-p', ngDir], { reject: false, stdout: 'ignore', stderr: 'inherit' });
  children.push(nginx);

  const fbUrl = `http://127.0.0.1:${fbPort}${urlPath}`;
  const ngUrl = `http://127.0.0.1:${ngPort}${urlPath}`;
  await waitFor(fbUrl, 15_000);
  await waitFor(ngUrl, 15_000);
  // Both serve the same bytes.
  for (const u of [fbUrl, ngUrl]) {
    const body = Buffer.from(await (await fetch(u)).arrayBuffer());
    if (sha1Hex(body) !== archiveSha1) throw new Error(`${u} served different bytes`);
  }

  console.log(`HTTP: ${connections} concurrent clients x ${mib} MiB boot_archive, wrk -t2 -c${connections} -d${seconds}s, ${rounds} interleaved rounds`);
  const results: { fleetboot: number[]; nginx: number[] } = { fleetboot: [], nginx: [] };
  for (let i = 1; i <= rounds; i++) {
    const order = i % 2 === 1 ? (['fleetboot', 'nginx'] as const) : (['nginx', 'fleetboot'] as const);
    for (const who of order) {
      const mbs = await wrk(who === 'fleetboot' ? fbUrl : ngUrl);
      results[who].push(mbs);
      console.log(`round ${i}  ${who.padEnd(9)}  ${mbs.toFixed(0).padStart(6)} MB/s`);
    }
  }
  const fb = median(results.fleetboot);
  const ng = median(results.nginx);
  console.log('');
  console.log(`server      median MB/s   rounds`);
  console.log(`fleetboot   ${fb.toFixed(0).padStart(11)}   ${results.fleetboot.map((x) => x.toFixed(0)).join(' ')}`);
  console.log(`nginx       ${ng.toFixed(0).padStart(11)}   ${results.nginx.map((x) => x.toFixed(0)).join(' ')}`);
  console.log(`ratio fleetboot/nginx: ${(fb / ng).toFixed(2)}`);
} finally {
  for (const c of children) c.kill('SIGTERM');
  await Promise.allSettled(children);
  rmSync(dir, { recursive: true, force: true });
}
