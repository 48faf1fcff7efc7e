// Per-node secrets without storing any of them. The head node keeps one random key
// (<dataDir>/node-key, mode 0600); each node's API token and first-boot root password are
// HMAC-SHA256 of that key with the node id and a salt chosen at `node setup`. nodes.token_hash
// holds `<salt>$<SHA-256 of the token>`: the database alone reveals neither secret, setup
// rotates both (new salt), and the boot plan can still hand the token to the node on
// every boot (`fleetboot_token=` boot arg) because it re-derives it from the key.
// `fleetboot token rotate node-key` replaces the key and re-issues every token at once
// (rotateNodeKey below; docs/hardening.md, "Secrets rotation").
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ensureTokenFile, followTokenFile, writeTokenFile } from '../config/token.ts';
import { writeTransaction } from '../store/db.ts';
import type { Store } from '../store/store.ts';

export interface NodeKeys {
  readonly key: string;
}

export const nodeKeyFile = (dataDir: string): string => join(dataDir, 'node-key');

/** The node key as it is now: a running head node follows a rotation at its next derivation. */
export function nodeKeysIn(dataDir: string): NodeKeys {
  const current = followTokenFile(nodeKeyFile(dataDir));
  return {
    get key(): string {
      return current();
    },
  };
}

/**
 * Replaces the node key and re-issues every node's token under it, each with a new salt, so
 * every token and first-boot root password derived from the old key stops working. Crash
 * safe: the new key goes to `node-key.new` first, the token hashes change in one
 * transaction, and only then is the key renamed into place; settleNodeKey finishes or
 * undoes a rotation cut short in between. Returns how many tokens were re-issued.
 */
export function rotateNodeKey(store: Store, dataDir: string): { reissued: number } {
  settleNodeKey(store, dataDir);
  const file = nodeKeyFile(dataDir);
  const keys: NodeKeys = { key: writeTokenFile(`${file}.new`) };
  const reissued = writeTransaction(store.db, () => {
    let n = 0;
    for (const node of store.nodes.list()) {
      if (saltOf(node.tokenHash) === null) continue;
      store.nodes.update(node.id, { tokenHash: tokenHashFor(keys, node.id, newSalt()) });
      n++;
    }
    return n;
  })();
  renameSync(`${file}.new`, file);
  return { reissued };
}

/**
 * Finishes a node-key rotation cut short (a `node-key.new` left): when the registry's tokens
 * were already re-issued under the new key, it is renamed into place; otherwise it is
 * dropped and the old key stays. Returns what it did.
 */
export function settleNodeKey(store: Store, dataDir: string): 'none' | 'finished' | 'dropped' {
  const file = nodeKeyFile(dataDir);
  const pending = `${file}.new`;
  if (!existsSync(pending)) return 'none';
  let candidate: NodeKeys;
  try {
    candidate = { key: ensureTokenFile(pending) };
  } catch {
    rmSync(pending, { force: true });
    return 'dropped';
  }
  const issued = store.nodes.list().find((n) => saltOf(n.tokenHash) !== null);
  // No token issued yet: either key is right, and the new one is what was asked for.
  const committed = !issued || tokenMatchesNode(currentNodeToken(candidate, issued)!, issued.tokenHash);
  if (committed) {
    renameSync(pending, file);
    return 'finished';
  }
  rmSync(pending, { force: true });
  return 'dropped';
}

function derive(keys: NodeKeys, purpose: string, nodeId: number, salt: string): string {
  return createHmac('sha256', keys.key).update(`${purpose}\0${nodeId}\0${salt}`).digest('base64url');
}

export function newSalt(): string {
  return randomBytes(12).toString('base64url');
}

export function saltOf(tokenHash: string | null): string | null {
  const m = /^([\w-]+)\$[0-9a-f]{64}$/.exec(tokenHash ?? '');
  return m?.[1] ?? null;
}

/** The value for nodes.token_hash after issuing a token with `salt`. */
export function tokenHashFor(keys: NodeKeys, nodeId: number, salt: string): string {
  return `${salt}$${createHash('sha256').update(nodeToken(keys, nodeId, salt)).digest('hex')}`;
}

export function nodeToken(keys: NodeKeys, nodeId: number, salt: string): string {
  return derive(keys, 'node-token', nodeId, salt);
}

/** The token a configured node boots with, or null when none was issued. */
export function currentNodeToken(keys: NodeKeys, node: { id: number; tokenHash: string | null }): string | null {
  const salt = saltOf(node.tokenHash);
  return salt ? nodeToken(keys, node.id, salt) : null;
}

/** Constant-time check of a presented token against the stored hash. */
export function tokenMatchesNode(presented: string, tokenHash: string | null): boolean {
  const m = /^[\w-]+\$([0-9a-f]{64})$/.exec(tokenHash ?? '');
  if (!m?.[1]) return false;
  const a = createHash('sha256').update(presented).digest();
  return timingSafeEqual(a, Buffer.from(m[1], 'hex'));
}

/** The root password answers.json carries on first boot (SmartOS hashes it itself with cryptpass). */
export function rootPassword(keys: NodeKeys, node: { id: number; tokenHash: string | null }): string | null {
  const salt = saltOf(node.tokenHash);
  return salt ? derive(keys, 'root-password', node.id, salt).slice(0, 24) : null;
}
