// The admin API's bearer token: generated once, stored with mode 0600 so only the head
// node's user can read it.
import { randomBytes, timingSafeEqual, createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

export function generateToken(): string {
  return randomBytes(32).toString('base64url');
}

/** Writes a new token atomically with mode 0600; returns it. */
export function writeTokenFile(file: string, token = generateToken()): string {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, `${token}\n`, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
  return token;
}

/** Reads the token, creating the file when it does not exist yet. */
export function ensureTokenFile(file: string): string {
  if (!existsSync(file)) return writeTokenFile(file);
  const token = readFileSync(file, 'utf8').trim();
  if (token.length < 16) throw new Error(`${file}: API token is shorter than 16 characters; delete the file to generate a new one`);
  return token;
}

/** What identifies one version of a file: a rename over it (writeTokenFile) changes the inode. */
function versionOf(file: string): string | null {
  try {
    const st = statSync(file);
    return `${st.ino}:${st.mtimeMs}:${st.size}`;
  } catch {
    return null;
  }
}

/**
 * The token in `file` as it is now: read again whenever the file was replaced (`fleetboot
 * token rotate` writes a new one by rename), so a running head node follows a rotation
 * without a restart. A file gone or unreadable meanwhile keeps the last good token.
 */
export function followTokenFile(file: string): () => string {
  let token = ensureTokenFile(file);
  let seen = versionOf(file);
  return () => {
    const now = versionOf(file);
    if (now !== null && now !== seen) {
      try {
        token = ensureTokenFile(file);
        seen = now;
      } catch {
        // A token too short or a file half-replaced by hand: keep serving the last good one.
      }
    }
    return token;
  };
}

/** Constant-time comparison of a presented token with the expected one. */
export function tokenMatches(presented: string, expected: string): boolean {
  const a = createHash('sha256').update(presented).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}
