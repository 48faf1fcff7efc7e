// `fleetboot <verb>`: parses, calls into the modules, formats. Exit codes: 0 done, 1 failed,
// 2 the operator asked for something wrong (a bad flag, config or argument).
import { Command, CommanderError } from 'commander';
import { ConfigError } from '../config/load.ts';
import { UsageError } from './errors.ts';
import { PowerError } from '../rollout/power.ts';
import { registerDashboardUrl } from './dashboard-url.ts';
import { registerInit } from './init.ts';
import { registerLab } from './lab.ts';
import { registerNode } from './node.ts';
import { registerNodePlatform } from './node-platform.ts';
import { registerPlatform } from './platform.ts';
import { registerRollout } from './rollout.ts';
import { registerServe } from './serve.ts';
import { registerService } from './service.ts';
import { registerStatus } from './status.ts';
import { registerToken } from './token.ts';
import { registerUsbImage } from './usb-image.ts';

export function buildProgram(): Command {
  const program = new Command('fleetboot')
    .description('network-boot a fleet of bare-metal servers from this head node')
    .option('-c, --config <file>', 'head-node config file (default: ./fleetboot.json, else embedded defaults)')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  registerInit(program);
  registerServe(program);
  registerService(program);
  registerStatus(program);
  registerDashboardUrl(program);
  registerLab(program);
  registerNode(program);
  registerNodePlatform(program);
  registerPlatform(program);
  registerRollout(program);
  registerToken(program);
  registerUsbImage(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version "fail" with exit code 0.
      return err.exitCode === 0 ? 0 : 2;
    }
    if (err instanceof ConfigError || err instanceof UsageError) {
      process.stderr.write(`fleetboot: ${err.message}\n`);
      return 2;
    }
    if (err instanceof PowerError) {
      // The driver's message names the node and what to check; a stack would bury it.
      process.stderr.write(`fleetboot: ${err.message}\n`);
      return 1;
    }
    const sys = err as NodeJS.ErrnoException & { address?: string; port?: number };
    if (sys.code === 'EADDRINUSE' || sys.code === 'EACCES' || sys.code === 'EADDRNOTAVAIL') {
      // A listener could not start: say which, without a stack.
      process.stderr.write(`fleetboot: cannot listen on ${sys.address ?? '?'}:${sys.port ?? '?'}: ${sys.code}\n`);
      return 1;
    }
    process.stderr.write(`fleetboot: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return 1;
  }
}

// A reader that goes away (`fleetboot node list | head`) is the end of the output, not a crash.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
}

const code = await main(process.argv);
if (code !== 0) process.exitCode = code;
