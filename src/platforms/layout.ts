// Where imported platforms live on disk and the start-up sweep that keeps that folder in
// step with the registry: each row names its folder under `platform-images/os/` (`<STAMP>`,
// or `<STAMP>~<hex>` for a re-import), and a folder exists exactly when a row names it.
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Logger } from '../log.ts';
import type { Store } from '../store/store.ts';

/** The folder holding one sub-folder per imported stamp. */
export function platformsRoot(platformImagesDir: string): string {
  return join(platformImagesDir, 'os');
}

// Work folders sit beside the stamps (same filesystem, so the final rename is atomic) and
// carry the pid of the process using them, so a sweep never removes a live import's folder.
const workFolder = /^\.(import|remove)-(\d+)-[0-9a-f]+$/;

export function newWorkFolder(root: string, kind: 'import' | 'remove'): string {
  mkdirSync(root, { recursive: true });
  return join(root, `.${kind}-${process.pid}-${randomBytes(6).toString('hex')}`);
}

/**
 * A folder name no import has used: the stamp itself when free, else the stamp and a random
 * suffix (`~` is in neither stamp alphabet, import.ts smartosStamp/linuxStamp). Called under
 * the write lock, so two imports cannot pick the same free name.
 */
export function newPlatformFolder(root: string, stamp: string): string {
  if (!existsSync(join(root, stamp))) return stamp;
  for (;;) {
    const name = `${stamp}~${randomBytes(6).toString('hex')}`;
    if (!existsSync(join(root, name))) return name;
  }
}

function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes what an interrupted import or removal left behind (kill -9, power loss): work
 * folders of dead processes, and platform folders no registry row names (an import killed
 * between its rename and its commit, or the replaced folder of an import --force killed
 * after its commit). Runs under the database write lock, so it cannot race an import that
 * is committing. Returns the names removed.
 */
export function sweepPlatformFolders(store: Store, platformImagesDir: string, log?: Logger): string[] {
  const root = platformsRoot(platformImagesDir);
  if (!existsSync(root)) return [];
  return store.platforms.withWriteLock((folders) => {
    const removed: string[] = [];
    for (const ent of readdirSync(root, { withFileTypes: true })) {
      const work = workFolder.exec(ent.name);
      let stale: boolean;
      if (work) stale = !processAlive(Number(work[2]));
      else if (ent.name.startsWith('.')) stale = false; // not ours (editor swap files, .gitkeep)
      else stale = !folders.has(ent.name);
      if (!stale) continue;
      rmSync(join(root, ent.name), { recursive: true, force: true });
      removed.push(ent.name);
      log?.warn({ event: 'platform_sweep', folder: ent.name }, 'removed leftover platform folder');
    }
    return removed;
  });
}
