// `fleetboot usb-image --standalone`: the platform key (src/usb/standalone.ts), a branch of the
// usb-image verb (cli/usb-image.ts) that writes a key booting a platform with no network boot.
import type { Command } from 'commander';
import { buildStandaloneKey, keyConsoles, type KeyConsole } from '../usb/standalone.ts';
import { withStore } from './context.ts';
import { UsageError } from './errors.ts';
import { formatBytes } from './output.ts';

export interface StandaloneCliOptions {
  out?: string;
  url?: string[];
  standalone?: boolean;
  platform?: string;
  node?: string;
  console?: string;
  static?: string;
  gateway?: string;
  dns?: string[];
  vlan?: string;
}

/** The flags of the standalone branch, added to the usb-image command. */
export function standaloneOptions(cmd: Command): Command {
  return cmd
    .option('--standalone', 'a platform key: the platform itself on the key, booted with no network boot (needs --platform)')
    .option('--platform <stamp>', 'with --standalone: the imported platform the key carries')
    .option('--node <node>', "with --standalone: the node (id, UUID, MAC or hostname) whose config modules the key carries")
    .option('--console <console>', `with --standalone: the console (${keyConsoles.join(', ')}; default boot.console)`);
}

export const standaloneExamples = [
  '  fleetboot usb-image --standalone --platform 20240101T000000Z --out smartos.img',
  '  fleetboot usb-image --standalone --platform lab-6.1 --node cn7 --out cn7.img',
];

/** A netboot key takes none of the platform key's flags. */
export function refuseStandaloneFlags(o: StandaloneCliOptions): void {
  for (const [flag, given] of [['--platform', o.platform], ['--node', o.node], ['--console', o.console]] as const) {
    if (given !== undefined) throw new UsageError(`${flag} is for a platform key: add --standalone (a netboot key boots whatever the head node plans)`);
  }
}

/** Writes the platform key; the network-key flags do not apply to it. */
export async function runStandalone(o: StandaloneCliOptions, sizeMiB: number | undefined, progress: (msg: string) => void, cmd: Command): Promise<void> {
  if (o.platform === undefined) throw new UsageError('--standalone needs --platform STAMP (see fleetboot platform list)');
  for (const [flag, given] of [['--static', o.static], ['--gateway', o.gateway], ['--dns', o.dns], ['--vlan', o.vlan]] as const) {
    if (given !== undefined) throw new UsageError(`${flag} is for a netboot key; a --standalone key takes the node's network from --node`);
  }
  if ((o.url ?? []).length > 1) throw new UsageError('a --standalone key carries one check-in URL: give --url once');
  let console: KeyConsole | undefined;
  if (o.console !== undefined) {
    console = keyConsoles.find((c) => c === o.console);
    if (!console) throw new UsageError(`--console ${o.console}: expected one of ${keyConsoles.join(', ')}`);
  }
  const r = await withStore(cmd, (store, loaded) =>
    buildStandaloneKey({
      store,
      config: loaded.config,
      stamp: o.platform!,
      nodeRef: o.node ?? null,
      out: o.out!,
      url: o.url?.[0] ?? null,
      ...(sizeMiB !== undefined ? { sizeMiB } : {}),
      ...(console ? { console } : {}),
      progress,
    }),
  );
  process.stdout.write(`wrote ${r.out} (${formatBytes(r.sizeBytes)}): platform key, ${o.platform}${o.node ? ` for node ${o.node}` : ''}\n`);
  process.stdout.write(`check it with: fleetboot usb-image --list ${o.out}\n`);
}
