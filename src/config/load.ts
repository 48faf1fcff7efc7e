import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { z } from 'zod';
import { configSchema, type ConfigInput, type FleetbootConfig } from './schema.ts';

/** A config that cannot be used; `message` is one line naming the field and the fault. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** The folder fleetboot is installed in (holds boot-templates/). */
export const installDir = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export const defaultConfigPath = 'fleetboot.json';

/** A loaded config with every path made absolute against the config file's folder. */
export interface LoadedConfig {
  config: FleetbootConfig;
  /** The file it came from, or null for the embedded defaults. */
  path: string | null;
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const field = issue.path.length > 0 ? issue.path.map(String).join('.') : '(top level)';
  return `${field}: ${issue.message}`;
}

/** Validates a parsed JSON value; throws ConfigError naming the first bad field. */
export function parseConfig(value: unknown, baseDir: string, source = 'config'): FleetbootConfig {
  const parsed = configSchema.safeParse(value);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    throw new ConfigError(`${source}: ${first ? describeIssue(first) : 'invalid'}`);
  }
  return absolutize(parsed.data, baseDir);
}

function absolutize(c: FleetbootConfig, baseDir: string): FleetbootConfig {
  const abs = (p: string): string => (isAbsolute(p) ? p : resolve(baseDir, p));
  return {
    ...c,
    dataDir: abs(c.dataDir),
    platformImagesDir: abs(c.platformImagesDir),
    ipxeDir: abs(c.ipxeDir),
    templatesDir: abs(c.templatesDir ?? resolve(installDir, 'boot-templates')),
    apiTokenFile: abs(c.apiTokenFile),
    http: { ...c.http, ...(c.http.unixSocket ? { unixSocket: abs(c.http.unixSocket) } : {}) },
  };
}

/**
 * Loads `path`; with no path, `./fleetboot.json` when it exists, else the embedded defaults
 * (state under ./var, HTTP on 127.0.0.1:8080, DHCP and TFTP off so a fresh head node never
 * answers on a real LAN by surprise).
 */
export function loadConfig(path?: string, cwd = process.cwd()): LoadedConfig {
  const file = path ?? (existsSync(resolve(cwd, defaultConfigPath)) ? defaultConfigPath : undefined);
  if (file === undefined) return { config: parseConfig({}, cwd, 'defaults'), path: null };
  const full = resolve(cwd, file);
  let text: string;
  try {
    text = readFileSync(full, 'utf8');
  } catch (err) {
    throw new ConfigError(`${file}: cannot read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`${file}: not valid JSON: ${(err as Error).message}`);
  }
  return { config: parseConfig(json, dirname(full), file), path: full };
}

export type { ConfigInput };
