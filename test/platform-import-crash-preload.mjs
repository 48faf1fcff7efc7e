// Preloaded (node --import) into a `fleetboot platform import` child by
// platform-import-crash.test.ts: every renameSync and rmSync that touches FBT_CRASH_ROOT is a
// step, once before and once after the call, and the process SIGKILLs itself at step
// FBT_CRASH_STEP, as a power cut would stop it there. Each step is appended to FBT_CRASH_LOG.
// The named exports of node:fs seen by ESM importers follow the patched module only after
// syncBuiltinESMExports (https://nodejs.org/api/module.html#modulesyncbuiltinesmexports).
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';

const root = process.env.FBT_CRASH_ROOT ?? '';
const at = Number(process.env.FBT_CRASH_STEP ?? '0');
const logFile = process.env.FBT_CRASH_LOG;
let step = 0;

function point(what) {
  step += 1;
  if (logFile) fs.appendFileSync(logFile, `${step} ${what}\n`);
  if (step === at) process.kill(process.pid, 'SIGKILL');
}

if (root !== '') {
  for (const name of ['renameSync', 'rmSync']) {
    const original = fs[name];
    fs[name] = function (...args) {
      const paths = args.filter((a) => typeof a === 'string');
      if (!paths.some((p) => p.startsWith(root))) return original.apply(this, args);
      const what = `${name} ${paths.map((p) => p.slice(root.length)).join(' -> ')}`;
      point(`before ${what}`);
      const result = original.apply(this, args);
      point(`after ${what}`);
      return result;
    };
  }
  syncBuiltinESMExports();
}
