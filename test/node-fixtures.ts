// A NodeRecord built in memory, for tests of pure functions (boot plans, rendered modules) that
// take a node as a value: every field has the value a fresh registry row has, the test names
// only the ones it is about.
import type { Mac } from '../src/mac.ts';
import type { NodeRecord } from '../src/store/nodes.ts';

export function nodeRecord(fields: Partial<NodeRecord> & Pick<NodeRecord, 'id'>): NodeRecord {
  return {
    uuid: null,
    uuidSources: {},
    power: null,
    hostname: null,
    state: 'discovered',
    bootPlatform: null,
    previousPlatform: null,
    currentPlatform: null,
    arch: 'x86_64',
    serial: null,
    lastBoot: null,
    lastSeen: null,
    sysinfo: null,
    networkConfig: null,
    zpoolConfig: null,
    traits: {},
    tokenHash: null,
    createdAt: 0,
    updatedAt: 0,
    nics: [],
    ...fields,
  };
}

/** A check-in report as the agent sends it for a one-NIC QEMU machine; `extra` overrides fields. */
export function checkinReport(mac: Mac, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    uuid: null,
    hostname: null,
    nics: [{ mac, name: 'eth0', ip: null }],
    cpu: { model: 'QEMU Virtual CPU', count: 2 },
    ramBytes: 536870912,
    disks: [{ name: 'vda', sizeBytes: 10737418240, ssd: false, removable: false }],
    platform: 'linux-test',
    bootTime: 1_790_000_000,
    modules: {},
    ...extra,
  };
}
