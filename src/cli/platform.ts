// `fleetboot platform <verb>`: import, list, choose the default and remove platform images.
import { existsSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { importLinuxPlatform, importSmartosTarball, ImportError, isLinuxPlatformSource, parseLinuxManifest, readLinuxManifest } from '../platforms/import.ts';
import { newWorkFolder, platformsRoot } from '../platforms/layout.ts';
import { PlatformExistsError, PlatformInUseError, PlatformMissingError, type PlatformRecord } from '../store/platforms.ts';
import { withStore } from './context.ts';
import { UsageError } from './errors.ts';
import { formatBytes, formatTable, printJson } from './output.ts';

/** A progress bar on stderr when it is a terminal; nothing otherwise (scripts, logs). */
function progressBar(label: string): { update: (done: number, total: number) => void; finish: () => void } {
  if (!process.stderr.isTTY) return { update: () => undefined, finish: () => undefined };
  let last = -1;
  return {
    update(done, total) {
      if (total === 0) {
        // A pipe: no size to measure against, so show the bytes read.
        process.stderr.write(`\r${label} ${formatBytes(done)}`);
        last = 0;
        return;
      }
      const pct = Math.min(100, Math.floor((done * 100) / total));
      if (pct === last) return;
      last = pct;
      const width = 30;
      const fill = Math.round((pct * width) / 100);
      process.stderr.write(`\r${label} [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${String(pct).padStart(3)}%  ${formatBytes(done)} / ${formatBytes(total)}`);
    },
    finish() {
      if (last >= 0) process.stderr.write('\n');
    },
  };
}

function platformView(p: PlatformRecord, usage?: { booting: number; running: number }): Record<string, unknown> {
  return {
    stamp: p.stamp,
    os: p.os,
    version: p.version,
    size: p.size,
    default: p.isDefault,
    nodesBooting: usage?.booting ?? 0,
    nodesRunning: usage?.running ?? 0,
    kernelArgs: p.kernelArgs,
    importedAt: new Date(p.importedAt).toISOString(),
    files: p.files,
  };
}

interface ImportFlags {
  force?: boolean;
  default?: boolean;
  json?: boolean;
  linux?: boolean;
  stamp?: string;
  kernel?: string;
  initrd?: string[];
  cmdline?: string;
  osVersion?: string;
  sha256?: string[];
}

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

export function registerPlatform(program: Command): void {
  const platform = program
    .command('platform')
    .description('import, list and remove platform images (SmartOS tarballs, Linux kernel + initrd)')
    .addHelpText('after', '\nExamples:\n  fleetboot platform import platform-20240101T000000Z.tgz\n  fleetboot platform list');

  platform
    .command('import')
    .description('import a SmartOS platform tarball (platform-<STAMP>.tgz) or a Linux platform (folder with platform.json, or flags)')
    .argument('[source]', 'platform-<STAMP>.tgz, a folder holding platform.json, or platform.json itself')
    .option('--force', 'replace a stamp that is already imported')
    .option('--default', 'make it the default platform (the first import always is)')
    .option('--linux', 'a Linux platform described by the flags below instead of platform.json')
    .option('--stamp <name>', 'Linux: the platform name used in URLs and assignments')
    .option('--kernel <file>', 'Linux: the kernel image')
    .option('--initrd <file>', 'Linux: an initrd (repeat for several, in order)', collect)
    .option('--cmdline <text>', 'Linux: the default kernel command line')
    .option('--os-version <text>', 'Linux: a version to show in `platform list`')
    .option('--sha256 <file=hex>', 'Linux: the expected SHA-256 of a file (repeatable)', collect)
    .option('--json', 'print the imported platform as JSON')
    .addHelpText(
      'after',
      [
        '',
        'Examples:',
        '  fleetboot platform import /var/tmp/platform-20240101T000000Z.tgz',
        '  fleetboot platform import ./lab/linux-platform            # folder with platform.json:',
        '      {"os":"linux","stamp":"lab-6.1","version":"6.1","kernel":"vmlinuz","initrds":["initrd.img"],"cmdline":"console=ttyS0",',
        '       "sha256":{"vmlinuz":"<hex>"}}',
        '  fleetboot platform import --linux --stamp lab-6.1 --kernel vmlinuz --initrd initrd.img --cmdline "console=ttyS0 quiet"',
      ].join('\n'),
    )
    .action(async (source: string | undefined, o: ImportFlags, cmd: Command) => {
      await withStore(cmd, async (store, { config }) => {
        const bar = progressBar('importing');
        const common = { store, platformImagesDir: config.platformImagesDir, force: o.force === true, makeDefault: o.default === true, onProgress: bar.update };
        let imported: PlatformRecord;
        try {
          if (o.linux) {
            if (!o.stamp || !o.kernel) throw new UsageError('--linux needs --stamp and --kernel (and usually --initrd and --cmdline)');
            const dir = source ?? process.cwd();
            const sha256 = Object.fromEntries(
              (o.sha256 ?? []).map((s) => {
                const at = s.lastIndexOf('=');
                if (at <= 0) throw new UsageError(`--sha256 ${s}: expected FILE=HEX`);
                return [s.slice(0, at), s.slice(at + 1)];
              }),
            );
            const manifest = parseLinuxManifest(
              { os: 'linux', stamp: o.stamp, version: o.osVersion, kernel: o.kernel, initrds: o.initrd ?? [], cmdline: o.cmdline ?? '', sha256 },
              'flags',
            );
            imported = await importLinuxPlatform(manifest, dir, common);
          } else {
            if (!source) throw new UsageError('name a platform-<STAMP>.tgz, a folder with platform.json, or use --linux');
            if (!existsSync(source)) throw new UsageError(`${source} does not exist`);
            if (isLinuxPlatformSource(source)) {
              const { manifest, dir } = readLinuxManifest(source);
              imported = await importLinuxPlatform(manifest, dir, common);
            } else if (statSync(source).isDirectory()) {
              throw new UsageError(`${source} is a folder without platform.json; import the platform-<STAMP>.tgz tarball instead`);
            } else {
              imported = await importSmartosTarball(source, common);
            }
          }
        } catch (err) {
          bar.finish();
          if (err instanceof ImportError || err instanceof PlatformExistsError) throw new UsageError(`import refused: ${err.message}`);
          throw err;
        }
        bar.finish();
        if (o.json) return printJson(platformView(imported));
        process.stdout.write(
          `imported ${imported.os} platform ${imported.stamp} (${imported.files.length} files, ${formatBytes(imported.size)})${imported.isDefault ? ', the default' : ''}\n`,
        );
      });
    });

  platform
    .command('list')
    .description('imported platforms: stamp, OS, size, default, nodes booting it, nodes running it')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExamples:\n  fleetboot platform list\n  fleetboot platform list --json | jq -r ".platforms[].stamp"')
    .action(async (o: { json?: boolean }, cmd: Command) => {
      await withStore(cmd, (store) => {
        const usage = store.platforms.usage();
        const list = store.platforms.list();
        if (o.json) return printJson({ platforms: list.map((p) => platformView(p, usage.get(p.stamp))) });
        process.stdout.write(
          `${formatTable(
            ['STAMP', 'OS', 'VERSION', 'SIZE', 'DEFAULT', 'BOOTING', 'RUNNING'],
            list.map((p) => [p.stamp, p.os, p.version, formatBytes(p.size), p.isDefault ? 'yes' : '', usage.get(p.stamp)?.booting ?? 0, usage.get(p.stamp)?.running ?? 0]),
          )}\n`,
        );
      });
    });

  platform
    .command('set-default')
    .description('the platform unassigned nodes (and discovery boots) use')
    .argument('<stamp>')
    .addHelpText('after', '\nExamples:\n  fleetboot platform set-default 20240101T000000Z')
    .action(async (stamp: string, _o: object, cmd: Command) => {
      await withStore(cmd, (store) => {
        try {
          store.platforms.setDefault(stamp);
        } catch (err) {
          if (err instanceof PlatformMissingError) throw new UsageError(err.message);
          throw err;
        }
        process.stdout.write(`${stamp} is now the default platform\n`);
      });
    });

  platform
    .command('remove')
    .description('delete an imported platform (refused while a node is assigned to it, unless --force)')
    .argument('<stamp>')
    .option('--force', 'remove it anyway; nodes assigned to it boot the default platform next time')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExamples:\n  fleetboot platform remove 20230101T000000Z\n  fleetboot platform remove 20230101T000000Z --force')
    .action(async (stamp: string, o: { force?: boolean; json?: boolean }, cmd: Command) => {
      await withStore(cmd, (store, { config }) => {
        const root = platformsRoot(config.platformImagesDir);
        const aside = newWorkFolder(root, 'remove');
        let result: { unassigned: number };
        let folder: string | null = null;
        try {
          // The folder is renamed aside inside the transaction, deleted after the commit;
          // a crash in between leaves a .remove-* folder the next sweep deletes.
          result = store.platforms.remove(stamp, { force: o.force === true }, (name) => {
            folder = name;
            if (existsSync(join(root, name))) renameSync(join(root, name), aside);
          });
        } catch (err) {
          if (folder !== null && existsSync(aside) && !existsSync(join(root, folder))) renameSync(aside, join(root, folder));
          if (err instanceof PlatformMissingError || err instanceof PlatformInUseError) throw new UsageError(err.message);
          throw err;
        }
        rmSync(aside, { recursive: true, force: true });
        if (o.json) return printJson({ removed: stamp, unassignedNodes: result.unassigned });
        process.stdout.write(`removed ${stamp}${result.unassigned > 0 ? `; ${result.unassigned} node(s) will boot the default platform` : ''}\n`);
      });
    });
}
