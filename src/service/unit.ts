// The systemd unit `fleetboot service install` writes. Each directive's reason is in
// docs/service.md; the directives themselves are systemd.service(5) and systemd.exec(5).
import { isAbsolute, resolve } from 'node:path';
import { installDir } from '../config/load.ts';

export interface UnitOptions {
  /** Absolute node binary (process.execPath at install time). */
  nodeBin: string;
  /** Absolute bin/fleetboot.js of this install. */
  fleetbootJs: string;
  /** The system user (and group of the same name) the service runs as. */
  user: string;
  /** Absolute state dir: must be /var/lib/<StateDirectory=>. */
  stateDir: string;
  /** Absolute config file, or null: serve then reads STATE/fleetboot.json or the defaults. */
  configFile: string | null;
  /** http.stopGraceSeconds of the config: TimeoutStopSec= must leave room above it. */
  stopGraceSeconds: number;
  /** Paths outside the state dir the config writes to (data dir, platform images, token). */
  extraWritePaths: string[];
}

/** The unit name, and the service name for systemctl. */
export const unitName = 'fleetboot.service';

/** systemd.exec(5) "StateDirectory=": relative to /var/lib for system units. */
export const stateRoot = '/var/lib';

export function defaultUnitOptions(): Pick<UnitOptions, 'nodeBin' | 'fleetbootJs'> {
  return { nodeBin: process.execPath, fleetbootJs: resolve(installDir, 'bin/fleetboot.js') };
}

/** systemd.syntax(7) quoting for one word of ExecStart=: double quotes, with \ and " escaped, % doubled (specifiers). */
function execWord(word: string): string {
  const escaped = word.replace(/%/g, '%%');
  if (/^[A-Za-z0-9_./:@+=,-]+$/.test(escaped)) return escaped;
  return `"${escaped.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/** A path in a space-separated list directive (ReadWritePaths=): spaces are not allowed in it. */
function listPath(p: string): string {
  if (/\s/.test(p)) throw new Error(`path ${JSON.stringify(p)} has white space: systemd's ReadWritePaths= cannot hold it`);
  return p.replace(/%/g, '%%');
}

/**
 * The two capabilities the head node needs and no more (capabilities(7)):
 * CAP_NET_BIND_SERVICE binds DHCP 67 and TFTP 69 (and HTTP 80 when configured) below 1024;
 * CAP_NET_RAW lets SO_BINDTODEVICE pin the DHCP socket to its interface on kernels before
 * 5.7 (socket(7) SO_BINDTODEVICE). No raw or packet socket is opened (src/dhcp/native/dhcp_io.c
 * is a plain AF_INET SOCK_DGRAM socket), so nothing else is needed.
 */
/**
 * systemd.service(5) WatchdogSec=: the head node pings at half this (service/notify.ts); an
 * event loop stuck this long answers no DHCP or HTTP either, and systemd restarts it.
 */
export const watchdogSeconds = 30;

export const capabilities = ['CAP_NET_BIND_SERVICE', 'CAP_NET_RAW'] as const;

/** systemd.exec(5) PrivateTmp=: the service gets its own /tmp and /var/tmp, so nothing under them is reachable. */
const privateTmpRoots = ['/tmp', '/var/tmp'];
/** systemd.exec(5) ProtectHome=: these are hidden (yes) or read-only (read-only). */
const homeRoots = ['/home', '/root', '/run/user'];

const under = (roots: readonly string[], p: string): string | undefined => roots.find((r) => p === r || p.startsWith(`${r}/`));

/**
 * What the unit must reach, checked against its sandbox: a path under /tmp cannot work at all
 * (refused, naming it); one under a home folder gets ProtectHome=read-only instead of yes,
 * so the service can read its install there and write what ReadWritePaths= lists.
 */
function protectHome(o: UnitOptions): 'yes' | 'read-only' {
  const paths: [string, string][] = [['node binary', o.nodeBin], ['bin/fleetboot.js', o.fleetbootJs], ['state dir', o.stateDir], ...o.extraWritePaths.map((p): [string, string] => ['write path', p])];
  if (o.configFile) paths.push(['config file', o.configFile]);
  for (const [name, p] of paths) {
    const tmp = under(privateTmpRoots, p);
    if (tmp) throw new Error(`${name} ${p} is under ${tmp}, which the unit's PrivateTmp=yes replaces with an empty folder: install fleetboot (and its config and data) outside ${tmp}, e.g. under /opt or /var/lib`);
  }
  return paths.some(([, p]) => under(homeRoots, p)) ? 'read-only' : 'yes';
}

export function renderUnit(o: UnitOptions): string {
  for (const [name, p] of [['node binary', o.nodeBin], ['bin/fleetboot.js', o.fleetbootJs], ['state dir', o.stateDir]] as const) {
    if (!isAbsolute(p)) throw new Error(`${name} ${JSON.stringify(p)} is not an absolute path`);
  }
  const home = protectHome(o);
  const stateName = o.stateDir.startsWith(`${stateRoot}/`) ? o.stateDir.slice(stateRoot.length + 1) : null;
  if (stateName === null || stateName.length === 0) throw new Error(`state dir ${o.stateDir} is not under ${stateRoot}/ (systemd.exec(5) StateDirectory=)`);
  const exec = [o.nodeBin, o.fleetbootJs, ...(o.configFile ? ['--config', o.configFile] : []), 'serve'].map(execWord).join(' ');
  // http.stopGraceSeconds for requests in flight, then the registry closes; 10 s more is room for that.
  const timeoutStop = o.stopGraceSeconds + 10;
  const writePaths = [...new Set(o.extraWritePaths)].map(listPath);
  const caps = capabilities.join(' ');
  return `# Written by \`fleetboot service install\`; docs/service.md explains each line.
[Unit]
Description=fleetboot head node (DHCP, TFTP, HTTP network boot)
Documentation=file://${listPath(resolve(installDir, 'docs/service.md'))}
Wants=network-online.target
After=network-online.target

[Service]
Type=notify
NotifyAccess=main
WatchdogSec=${watchdogSeconds}s
ExecStart=${exec}
WorkingDirectory=${listPath(o.stateDir)}
User=${o.user}
Group=${o.user}
StateDirectory=${stateName}
StateDirectoryMode=0750
UMask=0027
Restart=on-failure
RestartSec=2s
KillSignal=SIGTERM
KillMode=mixed
TimeoutStopSec=${timeoutStop}s
StandardOutput=journal
StandardError=journal
SyslogIdentifier=fleetboot
AmbientCapabilities=${caps}
CapabilityBoundingSet=${caps}
NoNewPrivileges=yes
ProtectSystem=strict
${writePaths.length > 0 ? `ReadWritePaths=${writePaths.join(' ')}\n` : ''}ProtectHome=${home}
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
SystemCallArchitectures=native

[Install]
WantedBy=multi-user.target
`;
}
