// `fleetboot service install` and the unit it writes, run under a real systemd: systemd
// boots as PID 1 of a systemd-nspawn container (--volatile=yes: a tmpfs root with the host's
// /usr, so nothing of the host changes) on a private network, the generated unit bound in,
// and the test drives it with systemctl inside the container (nsenter into its namespaces).
import assert from 'node:assert/strict';
import { spawn, spawnSync, execFileSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { planUnit, userExists, writeUnit } from '../src/service/install.ts';
import { renderUnit } from '../src/service/unit.ts';

const repo = new URL('..', import.meta.url).pathname.replace(/\/$/, '');
const testUser = 'fbsvctest';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Runs the CLI of this repo as if installed at ROOT/fbsvc-inst-XXX/install: the repo is bind-mounted
 * there in a private mount namespace (the host is untouched). The unit refuses an install under /tmp
 * (PrivateTmp=), where a clone may sit, so tests that need a working unit install it under /run.
 */
function installedAt(root: string, args: string[]): { code: number; stdout: string; stderr: string; install: string } {
  const dir = mkdtempSync(join(root, 'fbsvc-inst-'));
  try {
    const install = join(dir, 'install');
    mkdirSync(install);
    const r = spawnSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', 'mount --bind "$1" "$2" && shift 2 && exec "$@"', 'sh', repo, install,
      process.execPath, join(install, 'bin/fleetboot.js'), ...args], { encoding: 'utf8' });
    return { code: r.status ?? 1, stdout: r.stdout, stderr: r.stderr, install };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
const installed = (args: string[]): ReturnType<typeof installedAt> => installedAt('/run', args);

describe('fleetboot service install', () => {
  test('--print writes a unit with the absolute node and bin/fleetboot.js, serve, and the state dir as working dir', () => {
    const r = installed(['service', 'install', '--print', '--user', 'root']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^ExecStart=${process.execPath} ${r.install}/bin/fleetboot.js serve$`, 'm'));
    for (const line of ['Type=notify', 'NotifyAccess=main', 'WatchdogSec=30s', 'ProtectHome=yes', 'PrivateTmp=yes', 'User=root', 'StateDirectory=fleetboot', 'StateDirectoryMode=0750', 'WorkingDirectory=/var/lib/fleetboot', 'Restart=on-failure', 'KillSignal=SIGTERM', 'TimeoutStopSec=13s', 'AmbientCapabilities=CAP_NET_BIND_SERVICE CAP_NET_RAW', 'CapabilityBoundingSet=CAP_NET_BIND_SERVICE CAP_NET_RAW', 'ProtectSystem=strict', 'ReadWritePaths=/var/lib/fleetboot', 'StandardOutput=journal']) {
      assert.ok(r.stdout.split('\n').includes(line), `missing ${line}`);
    }
  });

  test('refuses a relative state dir, a missing unit dir and a missing user, naming the fix', () => {
    const rel = installed(['service', 'install', '--print', '--state-dir', 'var/lib/fleetboot']);
    assert.equal(rel.code, 2);
    assert.match(rel.stderr, /--state-dir "var\/lib\/fleetboot" is a relative path/);
    const noDir = installed(['service', 'install', '--user', 'root', '--unit-dir', '/nonexistent/systemd']);
    assert.equal(noDir.code, 2);
    assert.match(noDir.stderr, /--unit-dir \/nonexistent\/systemd does not exist/);
    const noUser = installed(['service', 'install', '--user', 'fbnosuchuser', '--unit-dir', '/tmp']);
    assert.equal(noUser.code, 2);
    assert.match(noUser.stderr, /user fbnosuchuser does not exist: create it with `useradd --system --home-dir \/var\/lib\/fleetboot --shell \/usr\/sbin\/nologin --user-group fbnosuchuser`/);
    const badState = installed(['service', 'install', '--print', '--state-dir', '/srv/fleetboot']);
    assert.equal(badState.code, 2);
    assert.match(badState.stderr, /not under \/var\/lib\//);
  });

  test('a config whose paths leave the state dir gets them in ReadWritePaths=; TimeoutStopSec= follows http.stopGraceSeconds', () => {
    const dir = mkdtempSync('/run/fbsvc-cfg-');
    try {
      const cfg = join(dir, 'fleetboot.json');
      writeFileSync(cfg, JSON.stringify({ platformImagesDir: '/srv/images', http: { stopGraceSeconds: 30, unixSocket: '/run/fleetboot/http.sock' } }));
      const plan = planUnit({ unitDir: dir, user: 'root', stateDir: '/var/lib/fleetboot', configFile: cfg, createUser: false });
      assert.deepEqual(plan.extraWritePaths, ['/var/lib/fleetboot', join(dir, 'var'), '/srv/images', '/run/fleetboot']);
      // The unit for an install at /opt/fleetboot (this checkout may sit under /tmp, which the unit refuses).
      const text = renderUnit({ ...plan, fleetbootJs: '/opt/fleetboot/bin/fleetboot.js' });
      assert.match(text, /^TimeoutStopSec=40s$/m);
      assert.match(text, new RegExp(`^ExecStart=.* --config ${cfg} serve$`, 'm'));
      const path = writeUnit(dir, text);
      assert.equal(readFileSync(path, 'utf8'), text);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the unit and its sandbox', () => {
  const base = { nodeBin: '/usr/bin/node', fleetbootJs: '/opt/fleetboot/bin/fleetboot.js', user: 'fleetboot', stateDir: '/var/lib/fleetboot', configFile: null, stopGraceSeconds: 3, extraWritePaths: ['/var/lib/fleetboot'] };

  test('an install under /tmp is refused, naming PrivateTmp= and the path', () => {
    const r = installedAt('/tmp', ['service', 'install', '--print', '--user', 'root']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /bin\/fleetboot\.js \/tmp\/fbsvc-inst-\w+\/install\/bin\/fleetboot\.js is under \/tmp, which the unit's PrivateTmp=yes replaces with an empty folder/);
    assert.throws(() => renderUnit({ ...base, configFile: '/var/tmp/fleetboot.json' }), /config file \/var\/tmp\/fleetboot\.json is under \/var\/tmp/);
    assert.throws(() => renderUnit({ ...base, extraWritePaths: ['/var/lib/fleetboot', '/tmp/images'] }), /write path \/tmp\/images is under \/tmp/);
  });

  test('an install, node or path under a home folder gets ProtectHome=read-only instead of hiding it', () => {
    assert.match(renderUnit(base), /^ProtectHome=yes$/m);
    for (const o of [{ fleetbootJs: '/root/fleetboot/bin/fleetboot.js' }, { nodeBin: '/home/ops/.nvm/versions/node/v20/bin/node' }, { configFile: '/home/ops/fleetboot.json' }]) {
      const text = renderUnit({ ...base, ...o });
      assert.match(text, /^ProtectHome=read-only$/m, JSON.stringify(o));
      assert.doesNotMatch(text, /^ProtectHome=yes$/m);
    }
    const writes = renderUnit({ ...base, extraWritePaths: ['/var/lib/fleetboot', '/home/ops/images'] });
    assert.match(writes, /^ProtectHome=read-only$/m);
    assert.match(writes, /^ReadWritePaths=\/var\/lib\/fleetboot \/home\/ops\/images$/m);
  });
});

describe('the generated unit under systemd (systemd-nspawn, systemd as PID 1)', () => {
  let work = '';
  let nspawn: ChildProcess | null = null;
  let pid1 = 0;
  let createdUser = false;
  const inside = (args: string[], timeout = 20_000): string =>
    execFileSync('nsenter', ['-t', String(pid1), '-a', ...args], { encoding: 'utf8', timeout, stdio: ['ignore', 'pipe', 'pipe'] });
  const tryInside = (args: string[]): string | null => {
    try {
      return inside(args);
    } catch {
      return null;
    }
  };
  const mainPid = (): number => Number(inside(['systemctl', 'show', '-p', 'MainPID', '--value', 'fleetboot']).trim());

  before(async () => {
    // The run dir must be visible inside the container (PrivateTmp= hides /tmp from the unit), so under /run.
    work = mkdtempSync('/run/fbsvctest-');
    chmodSync(work, 0o755); // the service user reads the config in it
    const units = join(work, 'units');
    mkdirSync(units);
    const cfg = join(work, 'fleetboot.json');
    writeFileSync(cfg, JSON.stringify({
      dataDir: '/var/lib/fleetboot/var', platformImagesDir: '/var/lib/fleetboot/platform-images', apiTokenFile: '/var/lib/fleetboot/var/api-token',
      http: { listen: '0.0.0.0', port: 80 }, tftp: { enabled: true },
      // DHCP on 67 bound to a veth inside the container (made below, before the unit starts).
      dhcp: { mode: 'full' },
      networks: [{ name: 'admin', interface: 'fbsv0', subnet: '10.98.0.0/24', serverAddress: '10.98.0.1', range: { start: '10.98.0.100', end: '10.98.0.110' } }],
    }));
    assert.ok(!userExists(testUser), `test user ${testUser} already exists: a run before this one left it`);
    // The unit names the install's own bin/fleetboot.js, and PrivateTmp= hides /tmp from the
    // service, where a clone of the repo may well sit: the install the unit is written for is the
    // repo bind-mounted at WORK/install (a private mount namespace, so the host is untouched),
    // and the container gets the repo at that same path.
    const install = join(work, 'install');
    mkdirSync(install);
    const viaInstall = spawnSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', 'mount --bind "$1" "$2" && shift 2 && exec "$@"', 'sh', repo, install,
      process.execPath, join(install, 'bin/fleetboot.js'), '--config', cfg, 'service', 'install', '--user', testUser, '--create-user', '--unit-dir', units], { encoding: 'utf8' });
    const r = { code: viaInstall.status ?? 1, stdout: viaInstall.stdout, stderr: viaInstall.stderr };
    assert.equal(r.code, 0, r.stderr);
    createdUser = true;
    assert.match(r.stdout, /systemctl daemon-reload\n.*systemctl enable --now fleetboot/);
    execFileSync('systemd-analyze', ['verify', join(units, 'fleetboot.service')], { stdio: ['ignore', 'pipe', 'pipe'] });
    nspawn = spawn('systemd-nspawn', [
      '--directory=/', '--volatile=yes', '--register=no', '--keep-unit', '--private-network', `--machine=fbsvctest${process.pid}`,
      `--bind-ro=${work}`, `--bind-ro=${repo}:${join(work, 'install')}`, '--bind-ro=/etc/passwd', '--bind-ro=/etc/group',
      `--bind-ro=${join(units, 'fleetboot.service')}:/etc/systemd/system/fleetboot.service`,
      '-b', 'systemd.firstboot=off', 'systemd.mask=systemd-networkd-wait-online.service',
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    nspawn.stderr?.on('data', (d: Buffer) => { err += d.toString(); });
    for (let i = 0; i < 300 && pid1 === 0; i++) {
      await sleep(100);
      const kids = tryRead(`/proc/${nspawn.pid}/task/${nspawn.pid}/children`)?.trim();
      if (kids) pid1 = Number(kids.split(' ')[0]);
    }
    assert.ok(pid1 > 0, `systemd-nspawn did not start a PID 1: ${err}`);
    for (let i = 0; i < 300; i++) {
      // is-system-running exits 1 for "degraded" (systemctl(1)): read its output, not its exit code.
      const state = spawnSync('nsenter', ['-t', String(pid1), '-a', 'systemctl', 'is-system-running'], { encoding: 'utf8' }).stdout?.trim();
      if (state === 'running' || state === 'degraded' || state === 'starting') {
        // The container's private network has only lo: a veth pair in it carries DHCP, the
        // head node on fbsv0 and a client (udhcpc) on fbsv1; nothing leaves the container.
        inside(['ip', 'link', 'add', 'fbsv0', 'type', 'veth', 'peer', 'name', 'fbsv1']);
        inside(['ip', 'addr', 'add', '10.98.0.1/24', 'dev', 'fbsv0']);
        inside(['ip', 'link', 'set', 'fbsv0', 'up']);
        inside(['ip', 'link', 'set', 'fbsv1', 'up']);
        return;
      }
      await sleep(200);
    }
    assert.fail(`systemd in the container did not finish booting: ${err}`);
  });

  after(() => {
    if (nspawn?.pid !== undefined && nspawn.exitCode === null) {
      // SIGTERM to systemd-nspawn powers the container off (systemd-nspawn(1)); then make sure.
      nspawn.kill('SIGTERM');
      try { execFileSync('sh', ['-c', `for i in $(seq 100); do kill -0 ${nspawn.pid} 2>/dev/null || exit 0; sleep 0.1; done; kill -9 ${nspawn.pid}`]); } catch { /* gone */ }
    }
    if (createdUser) execFileSync('userdel', [testUser]);
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test('starts as the service user with the ambient caps, listens on 80 and 69, logs pino JSON to the journal, restarts after kill -9, stops in time', async () => {
    inside(['systemctl', 'start', 'fleetboot'], 60_000);
    // Type=notify: `systemctl start` returns once the head node said READY=1, with every service listening.
    const health = tryInside(['curl', '-sf', 'http://127.0.0.1:80/healthz']) ?? '';
    assert.ok(health !== '', `/healthz did not answer on port 80 as soon as systemctl start returned: ${tryInside(['journalctl', '-u', 'fleetboot', '--no-pager']) ?? ''}`);
    assert.match(inside(['systemctl', 'show', '-p', 'StatusText', '--value', 'fleetboot']), /^serving: DHCP full, TFTP on, HTTP port 80$/m);
    const pid = mainPid();
    const status = inside(['cat', `/proc/${pid}/status`]);
    const uid = execFileSync('id', ['-u', testUser], { encoding: 'utf8' }).trim();
    assert.match(status, new RegExp(`^Uid:\\t${uid}\\t${uid}\\t`, 'm'));
    // capabilities(7): CAP_NET_BIND_SERVICE is bit 10, CAP_NET_RAW bit 13.
    const amb = /^CapAmb:\t([0-9a-f]+)$/m.exec(status)?.[1];
    assert.equal(BigInt(`0x${amb}`), (1n << 10n) | (1n << 13n));
    const socks = inside(['ss', '-lntupH']);
    assert.match(socks, /0\.0\.0\.0:80 /);
    assert.match(socks, /0\.0\.0\.0:69 /);
    assert.match(socks, /:67 /);
    // A real DHCP client gets a lease from the service user's socket on 67 (CAP_NET_BIND_SERVICE,
    // and SO_BINDTODEVICE to fbsv0).
    const dhcp = spawnSync('nsenter', ['-t', String(pid1), '-a', 'udhcpc', '-i', 'fbsv1', '-n', '-q', '-f', '-t', '5', '-T', '1', '-s', '/bin/true'], { encoding: 'utf8', timeout: 30_000 });
    assert.match(`${dhcp.stdout}${dhcp.stderr}`, /lease of 10\.98\.0\.1\d\d obtained/);
    const journal = inside(['journalctl', '-u', 'fleetboot', '-o', 'json', '--no-pager'])
      .trim().split('\n').map((l) => JSON.parse(l) as { MESSAGE?: string | number[] });
    const pino = journal.map((e) => (typeof e.MESSAGE === 'string' ? e.MESSAGE : '')).filter((m) => m.startsWith('{'))
      .map((m) => JSON.parse(m) as { event?: string; level?: number });
    assert.ok(pino.some((m) => m.event === 'config'), 'no pino "config" line in the journal');

    inside(['kill', '-9', String(pid)]);
    let again = 0;
    for (let i = 0; i < 100; i++) {
      await sleep(200);
      const p = mainPid();
      if (p !== 0 && p !== pid && tryInside(['curl', '-sf', 'http://127.0.0.1:80/healthz']) !== null) { again = p; break; }
    }
    assert.ok(again > 0, 'systemd did not restart fleetboot after kill -9 (Restart=on-failure)');
    assert.ok(Number(inside(['systemctl', 'show', '-p', 'NRestarts', '--value', 'fleetboot']).trim()) >= 1);

    const t0 = Date.now();
    inside(['systemctl', 'stop', 'fleetboot'], 30_000);
    const took = Date.now() - t0;
    assert.ok(took < 13_000, `stop took ${took} ms, past TimeoutStopSec=13s`);
    assert.equal(inside(['systemctl', 'show', '-p', 'Result', '--value', 'fleetboot']).trim(), 'success');
    assert.equal((tryInside(['systemctl', 'is-active', 'fleetboot']) ?? 'inactive\n').trim(), 'inactive');
  });

  test('the head node pings the watchdog, and one that cannot listen fails `systemctl start` itself', async () => {
    // A drop-in (in the container's /run) shortens WatchdogSec= so the pings show within seconds.
    inside(['sh', '-c', 'mkdir -p /run/systemd/system/fleetboot.service.d && printf "[Service]\\nWatchdogSec=2s\\n" > /run/systemd/system/fleetboot.service.d/watchdog.conf && systemctl daemon-reload']);
    inside(['systemctl', 'restart', 'fleetboot'], 60_000);
    const restarts = inside(['systemctl', 'show', '-p', 'NRestarts', '--value', 'fleetboot']).trim();
    const pinged = (): bigint => BigInt(inside(['systemctl', 'show', '-p', 'WatchdogTimestampMonotonic', '--value', 'fleetboot']).trim() || '0');
    await sleep(1500);
    const first = pinged();
    await sleep(3000);
    const second = pinged();
    assert.ok(first > 0n && second > first, `no watchdog pings: ${first} then ${second}`);
    assert.equal(inside(['systemctl', 'is-active', 'fleetboot']).trim(), 'active');
    assert.equal(inside(['systemctl', 'show', '-p', 'NRestarts', '--value', 'fleetboot']).trim(), restarts, 'the watchdog restarted a head node that was pinging');
    inside(['systemctl', 'stop', 'fleetboot'], 30_000);

    // Port 80 taken: serve exits before READY=1, so the start job fails (Type=exec would report success).
    inside(['systemd-run', '--unit=fbsvctest-blocker', '--', 'python3', '-m', 'http.server', '--bind', '0.0.0.0', '80']);
    try {
      for (let i = 0; i < 100 && !/0\.0\.0\.0:80 /.test(inside(['ss', '-lntH'])); i++) await sleep(100);
      const start = spawnSync('nsenter', ['-t', String(pid1), '-a', 'systemctl', 'start', 'fleetboot'], { encoding: 'utf8', timeout: 60_000 });
      assert.notEqual(start.status, 0, 'systemctl start succeeded although the head node could not listen on 80');
      assert.match(start.stderr, /fleetboot\.service/);
    } finally {
      tryInside(['systemctl', 'stop', 'fleetboot']);
      tryInside(['systemctl', 'stop', 'fbsvctest-blocker']);
    }
  });
});

function tryRead(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}
