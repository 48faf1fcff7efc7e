import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseMac } from '../src/mac.ts';
import { startHeadNode, tempDir, type RunningHeadNode } from './fixtures.ts';

// The documented bounds (docs/hardening.md, "Check-in bounds").
const bounds = { nics: 64, disks: 256, modules: 64 };

/** The n-th locally administered MAC, 02:00:00:xx:xx:xx. */
const macOf = (n: number): string => `02:00:00:${[n >> 16, n >> 8, n].map((b) => (b & 0xff).toString(16).padStart(2, '0')).join(':')}`;

function report(fields: { nics?: unknown[]; disks?: unknown[]; modules?: Record<string, string> }): Record<string, unknown> {
  return {
    uuid: null,
    hostname: null,
    nics: fields.nics ?? [{ mac: macOf(1) }],
    cpu: { model: 'Intel(R) Xeon(R) Platinum 8480+', count: 224 },
    ramBytes: 2 ** 41,
    disks: fields.disks ?? [],
    platform: '20240101T000000Z',
    bootTime: 1_790_000_000,
    modules: fields.modules ?? {},
  };
}

const nics = (n: number): unknown[] => Array.from({ length: n }, (_, i) => ({ mac: macOf(i + 1), name: `ixgbe${i}`, ip: null }));
const disks = (n: number): unknown[] => Array.from({ length: n }, (_, i) => ({ name: `c0t${i}d0`, sizeBytes: 16 * 2 ** 40, ssd: false }));
const modules = (n: number): Record<string, string> => Object.fromEntries(Array.from({ length: n }, (_, i) => [`module${i}.json`, 'a'.repeat(40)]));

async function post(h: RunningHeadNode, body: unknown): Promise<{ status: number; message: string }> {
  const res = await fetch(`${h.url}/api/v1/nodes/checkin`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const json = (await res.json()) as { error?: { message: string } };
  return { status: res.status, message: json.error?.message ?? '' };
}

test('a discovery check-in over a list bound is refused with 400 naming the field and the bound, and registers nothing', async (t) => {
  const h = await startHeadNode(t, tempDir(t));
  const cases: [Record<string, unknown>, RegExp][] = [
    [report({ nics: nics(bounds.nics + 1) }), /^nics: at most 64 NICs/],
    // Thousands of entries, none of them valid: one issue for the list, not one per entry.
    [report({ nics: Array.from({ length: 7000 }, () => ({ mac: 'x' })) }), /^nics: at most 64 NICs \(see docs\/hardening\.md, "Check-in bounds"\)$/],
    [report({ disks: disks(bounds.disks + 1) }), /^disks: at most 256 disks/],
    [report({ modules: modules(bounds.modules + 1) }), /^modules: at most 64 modules/],
  ];
  for (const [body, expected] of cases) {
    const r = await post(h, body);
    assert.equal(r.status, 400, r.message);
    assert.match(r.message, expected);
  }
  assert.equal(h.head.store.nodes.list().length, 0);
});

test('a large server at every bound checks in and is registered with all its NICs and disks', async (t) => {
  const h = await startHeadNode(t, tempDir(t));
  const r = await post(h, report({ nics: nics(bounds.nics), disks: disks(bounds.disks), modules: modules(bounds.modules) }));
  assert.equal(r.status, 201, r.message);
  const [node] = h.head.store.nodes.list();
  assert.ok(node);
  assert.equal(node.nics.length, 64);
  assert.equal(h.head.store.nodes.findByMac(parseMac(macOf(64))!)?.id, node.id);
});
