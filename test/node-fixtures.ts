// A NodeRecord built in memory, for tests of pure functions (boot plans, rendered modules) that
// take a node as a value: every field has the value a fresh registry row has, the test names
// only the ones it is about.
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
