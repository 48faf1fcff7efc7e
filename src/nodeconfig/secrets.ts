// Per-node secrets without storing any of them. The head node keeps one random key
// (<dataDir>/node-key, mode 0600); each node's API token and first-boot root password are
// HMAC-SHA256 of that key with the node id and a salt chosen at `node setup`. nodes.token_hash
// holds `<salt>$<SHA-256 of the token>`: the database alone reveals neither secret, setup
// rotates both (new salt), and the boot plan can still hand the token to the node on
// every boot (`fleetboot_token=` boot arg) because it re-derives it from the key.
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { join } from 'node:path';
import { ensureTokenFile } from '../config/token.ts';

export interface NodeKeys {
  key: string;
}

export function nodeKeysIn(dataDir: string): NodeKeys {
  return { key: ensureTokenFile(join(dataDir, 'node-key')) };
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
