// The check-in a node posts (checkinSchema, src/nodeconfig/sysinfo.ts): safeParse never throws;
// a refusal names the fields; an accepted report respects the list bounds (checkinBounds) and
// parses again to the same value.
import { isDeepStrictEqual } from 'node:util';
import { describeIssues } from '../../src/nodeconfig/network.ts';
import { checkinBounds, checkinSchema } from '../../src/nodeconfig/sysinfo.ts';
import { check, jsonOf, type FuzzTarget } from '../target.ts';

export const checkin: FuzzTarget = {
  name: 'checkin',
  about: 'check-in reports: refused naming the field, or bounded and stable under a second parse',
  coverage: ['/src/nodeconfig/sysinfo.ts', '/src/nodeconfig/zpool.ts', '/src/mac.ts', '/src/uuid.ts', '/node_modules/zod/'],
  dictionary: ['uuid', 'hostname', 'nics', 'mac', 'name', 'ip', 'cpu', 'model', 'count', 'ramBytes', 'disks', 'platform', 'bootTime', 'modules', 'node', 'agent', 'networking.json', 'size', 'type', 'serial', '00000000-0000-0000-0000-000000000000', '52:54:00:12:34:56', '5254.0012.3456', '10.0.0.5', 'da39a3ee5e6b4b0d3255bfef95601890afd80709', '20240101T000000Z'],
  format: 'json',
  maxLen: 256 * 1024,
  run(data) {
    const doc = jsonOf(data);
    if (!doc) return;
    const r = checkinSchema.safeParse(doc.value);
    if (!r.success) {
      check(r.error.issues.length > 0 && describeIssues(r.error).length > 0, () => 'a refusal without issues');
      return;
    }
    const c = r.data;
    check(c.nics.length >= 1 && c.nics.length <= checkinBounds.nics, () => `${c.nics.length} NICs accepted`);
    check(c.disks.length <= checkinBounds.disks, () => `${c.disks.length} disks accepted`);
    check(Object.keys(c.modules).length <= checkinBounds.modules, () => `${Object.keys(c.modules).length} modules accepted`);
    const again = checkinSchema.safeParse(JSON.parse(JSON.stringify(c)));
    check(again.success && isDeepStrictEqual(again.data, c), () => `an accepted check-in parses differently the second time${again.success ? '' : `: ${describeIssues(again.error)}`}`);
  },
};
