// `fleetboot init`: a first config for one admin network, checked by the same schema the
// loader uses so `init` can never write a file `serve` would refuse.
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { dirname } from 'node:path';
import { ConfigError, parseConfig } from './load.ts';
import { intToIpv4, ipInSubnet, parseCidr, type ConfigInput } from './schema.ts';

export interface InitOptions {
  interface: string;
  subnet: string;
  range?: string;
  gateway?: string;
  address?: string;
  mode?: 'full' | 'proxy';
  httpPort?: number;
}

/** The host's IPv4 address on `iface` that lies inside `subnet`, if any. */
export function interfaceAddress(iface: string, subnet: string): string | undefined {
  return networkInterfaces()[iface]?.find((a) => a.family === 'IPv4' && ipInSubnet(a.address, subnet))?.address;
}

/** The upper half of the subnet's host addresses: a dynamic range that leaves room for static ones. */
export function defaultRange(subnet: string): { start: string; end: string } {
  const { network, prefix } = parseCidr(subnet);
  const size = 2 ** (32 - prefix);
  if (size < 8) throw new ConfigError(`--subnet ${subnet}: too small for a dynamic range; pass --range`);
  return { start: intToIpv4(network + size / 2), end: intToIpv4(network + size - 2) };
}

export function buildInitialConfig(o: InitOptions, baseDir: string): ConfigInput {
  const subnetOk = /^\d+\.\d+\.\d+\.\d+\/\d+$/.test(o.subnet);
  if (!subnetOk) throw new ConfigError(`--subnet: expected a CIDR subnet like 10.0.0.0/24, got ${JSON.stringify(o.subnet)}`);
  let range: { start: string; end: string } | undefined;
  if (o.range !== undefined) {
    const [start, end, extra] = o.range.split('-');
    if (!start || !end || extra !== undefined) throw new ConfigError(`--range: expected START-END like 10.0.0.100-10.0.0.199, got ${JSON.stringify(o.range)}`);
    range = { start, end };
  } else if ((o.mode ?? 'full') === 'full') {
    range = defaultRange(o.subnet);
  }
  const serverAddress = o.address ?? interfaceAddress(o.interface, o.subnet);
  if (serverAddress === undefined) {
    throw new ConfigError(`--interface ${o.interface}: no IPv4 address in ${o.subnet} on this host; pass --address with the head node's address`);
  }
  const config: ConfigInput = {
    dataDir: './var',
    platformImagesDir: './platform-images',
    ipxeDir: '/usr/lib/ipxe',
    apiTokenFile: './var/api-token',
    unknownNodePolicy: 'discover',
    http: { listen: '0.0.0.0', port: o.httpPort ?? 8080 },
    dhcp: { mode: o.mode ?? 'full' },
    tftp: { enabled: true },
    networks: [
      {
        name: 'admin',
        interface: o.interface,
        subnet: o.subnet,
        serverAddress,
        ...(o.gateway !== undefined ? { gateway: o.gateway } : {}),
        ...(range ? { range } : {}),
        resolvers: [],
      },
    ],
  };
  // Validate with the loader's schema, field names as the operator typed them.
  try {
    parseConfig(config, baseDir, 'init');
  } catch (err) {
    const msg = (err as Error).message
      .replace(/^init: networks\.0\.range\.(start|end)/, '--range ($1)')
      .replace(/^init: networks\.0\.range/, '--range')
      .replace(/^init: networks\.0\.gateway/, '--gateway')
      .replace(/^init: networks\.0\.serverAddress/, '--address')
      .replace(/^init: networks\.0\.subnet/, '--subnet');
    throw new ConfigError(msg);
  }
  return config;
}

/** Writes the config atomically; refuses to overwrite unless `force`. */
export function writeConfigFile(file: string, config: ConfigInput, force = false): void {
  if (existsSync(file) && !force) throw new ConfigError(`${file} already exists; pass --force to overwrite it`);
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o644 });
  renameSync(tmp, file);
}
