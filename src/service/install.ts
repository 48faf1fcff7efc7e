// `fleetboot service install`: checks what the unit relies on, then writes it atomically
// (a temp file in the same folder, then rename(2), so systemd never reads half a unit).
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, join, relative } from 'node:path';
import { loadConfig } from '../config/load.ts';
import { defaultUnitOptions, renderUnit, unitName, type UnitOptions } from './unit.ts';

export class ServiceInstallError extends Error {
  override readonly name = 'ServiceInstallError';
}

export interface InstallOptions {
  unitDir: string;
  user: string;
  stateDir: string;
  configFile: string | null;
  createUser: boolean;
  /** For tests: the passwd file to look users up in. */
  passwdFile?: string;
}

/** passwd(5): name:password:uid:gid:gecos:home:shell. */
export function userExists(name: string, passwdFile = '/etc/passwd'): boolean {
  return readFileSync(passwdFile, 'utf8').split('\n').some((line) => line.split(':')[0] === name);
}

function mustBeAbsolute(what: string, p: string): void {
  if (!isAbsolute(p)) throw new ServiceInstallError(`${what} ${JSON.stringify(p)} is a relative path: give an absolute one`);
}

function inside(dir: string, p: string): boolean {
  const r = relative(dir, p);
  return r === '' || (!r.startsWith('..') && !isAbsolute(r));
}

/** Builds the unit's options from the flags and the config, refusing what would not run. */
export function planUnit(o: InstallOptions): UnitOptions {
  mustBeAbsolute('--state-dir', o.stateDir);
  if (o.configFile !== null) mustBeAbsolute('--config', o.configFile);
  if (!/^[a-z_][a-z0-9_-]{0,30}$/.test(o.user)) throw new ServiceInstallError(`--user ${JSON.stringify(o.user)} is not a valid system user name (useradd(8): lower case letters, digits, _ and -)`);
  // Relative paths of a config resolve against its folder, of the defaults against the
  // working directory, which the unit sets to the state dir (config/load.ts).
  const loaded = loadConfig(o.configFile ?? undefined, o.stateDir);
  const c = loaded.config;
  const extra = [c.dataDir, c.platformImagesDir, dirname(c.apiTokenFile), ...(c.http.unixSocket ? [dirname(c.http.unixSocket)] : [])].filter((p) => !inside(o.stateDir, p));
  return {
    ...defaultUnitOptions(),
    user: o.user,
    stateDir: o.stateDir,
    configFile: o.configFile,
    stopGraceSeconds: c.http.stopGraceSeconds,
    extraWritePaths: [...new Set([o.stateDir, ...extra])],
  };
}

export function ensureUser(o: InstallOptions): string | null {
  if (userExists(o.user, o.passwdFile)) return null;
  const cmd = ['useradd', '--system', '--home-dir', o.stateDir, '--shell', '/usr/sbin/nologin', '--user-group', o.user];
  if (!o.createUser) {
    throw new ServiceInstallError(`user ${o.user} does not exist: create it with \`${cmd.join(' ')}\`, or pass --create-user`);
  }
  try {
    execFileSync(cmd[0]!, cmd.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim();
    throw new ServiceInstallError(`\`${cmd.join(' ')}\` failed: ${stderr || (err as Error).message}`);
  }
  return o.user;
}

/** Writes UNITDIR/fleetboot.service via a temp file and rename(2); returns its path. */
export function writeUnit(unitDir: string, text: string): string {
  mustBeAbsolute('--unit-dir', unitDir);
  if (!existsSync(unitDir) || !statSync(unitDir).isDirectory()) {
    throw new ServiceInstallError(`--unit-dir ${unitDir} does not exist or is not a folder (is systemd installed?)`);
  }
  const target = join(unitDir, unitName);
  const tmp = join(unitDir, `.${unitName}.${process.pid}.tmp`);
  try {
    writeFileSync(tmp, text, { mode: 0o644 });
    renameSync(tmp, target);
  } catch (err) {
    try { unlinkSync(tmp); } catch { /* never written */ }
    throw new ServiceInstallError(`cannot write ${target}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  return target;
}

export function renderPlanned(o: InstallOptions): string {
  try {
    return renderUnit(planUnit(o));
  } catch (err) {
    if (err instanceof ServiceInstallError) throw err;
    if (err instanceof Error && err.name === 'Error') throw new ServiceInstallError(err.message);
    throw err;
  }
}
