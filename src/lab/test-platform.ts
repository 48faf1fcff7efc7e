// The lab's own Linux test platform (lab/build-test-platform.sh): what `lab up` boots when it
// is given no --platform, built on first use so a new lab never boots into "no platform".
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { installDir } from '../config/load.ts';
import { LabError } from './errors.ts';

export const defaultTestPlatformVersion = 'A';

export interface TestPlatformOptions {
  /** Test platform version (the folder is `<buildDir>/platforms/fleetboot-test-<version>`). */
  version?: string;
  /** Default: `lab-build` in fleetboot's folder, where `npm run lab:build` puts it. */
  buildDir?: string;
  /** Default: fleetboot's `lab/build-test-platform.sh`. */
  script?: string;
  progress: (line: string) => void;
}

/** The folder test platform `version` is built into. */
export function testPlatformDir(version = defaultTestPlatformVersion, buildDir = join(installDir, 'lab-build')): string {
  return join(buildDir, 'platforms', `fleetboot-test-${version}`);
}

/**
 * The test platform's folder, built first when it has no platform.json yet; the build's own
 * output goes to `progress` line by line (the first build downloads a kernel package).
 */
export async function ensureTestPlatform(o: TestPlatformOptions): Promise<string> {
  const version = o.version ?? defaultTestPlatformVersion;
  const buildDir = o.buildDir ?? join(installDir, 'lab-build');
  const dir = testPlatformDir(version, buildDir);
  if (existsSync(join(dir, 'platform.json'))) return dir;
  const script = o.script ?? join(installDir, 'lab', 'build-test-platform.sh');
  if (!existsSync(script)) throw new LabError(`no --platform given and ${script} is missing to build test platform ${version}: pass --platform DIR`);
  o.progress(`lab: no --platform given and ${dir} is not built yet: building test platform ${version} (${script})`);
  const child = spawn('bash', [script, '--version', version, '--build-dir', buildDir], { stdio: ['ignore', 'pipe', 'pipe'] });
  const tail: string[] = [];
  const relay = (stream: NodeJS.ReadableStream): void => {
    createInterface({ input: stream }).on('line', (line) => {
      tail.push(line);
      if (tail.length > 20) tail.shift();
      o.progress(`  ${line}`);
    });
  };
  relay(child.stdout);
  relay(child.stderr);
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  });
  if (code !== 0 || !existsSync(join(dir, 'platform.json'))) {
    throw new LabError(`building test platform ${version} failed (exit ${code ?? 'by signal'}): ${tail.slice(-3).join(' / ') || 'no output'}`);
  }
  o.progress(`lab: built test platform ${version} in ${dir}`);
  return dir;
}
