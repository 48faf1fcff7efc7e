// The native addons `npm ci` builds into build/Release (binding.gyp): one loader, so a missing
// build says the same thing, naming the fix, whichever addon is asked for first.
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { installDir } from './config/load.ts';

const loaded = new Map<string, unknown>();

/** Loads `build/Release/<name>.node` once, or throws naming how to build it. */
export function loadNativeAddon<T>(name: string): T {
  const hit = loaded.get(name);
  if (hit) return hit as T;
  const file = join(installDir, 'build', 'Release', `${name}.node`);
  let addon: T;
  try {
    addon = createRequire(import.meta.url)(file) as T;
  } catch (err) {
    throw new Error(`cannot load ${file} (${(err as Error).message}); run \`npm ci\` or \`npm run install\` to build it (needs make, g++, python3)`);
  }
  loaded.set(name, addon);
  return addon;
}
