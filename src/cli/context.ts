// What every verb needs: the config (from --config, ./fleetboot.json or the embedded
// defaults) and, for verbs that read or change the fleet, the registry.
import type { Command } from 'commander';
import { loadConfig, type LoadedConfig } from '../config/load.ts';
import { Store } from '../store/store.ts';

export interface GlobalOptions {
  config?: string;
}

/** The root program's options, reachable from any subcommand. */
export function globalOptions(cmd: Command): GlobalOptions {
  let root = cmd;
  while (root.parent) root = root.parent;
  return root.opts<GlobalOptions>();
}

export function configFor(cmd: Command): LoadedConfig {
  return loadConfig(globalOptions(cmd).config);
}

/** Runs `fn` with the registry open, closing it afterwards whatever happens. */
export async function withStore<T>(cmd: Command, fn: (store: Store, loaded: LoadedConfig) => T | Promise<T>): Promise<T> {
  const loaded = configFor(cmd);
  const store = Store.open(Store.fileIn(loaded.config.dataDir));
  try {
    return await fn(store, loaded);
  } finally {
    store.close();
  }
}
