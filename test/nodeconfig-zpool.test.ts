// The zpool plan is the pool SmartOS first boot builds: disklayout's default over the disks
// setup hands it (smartos-live src/node_modules/disklayout.js, called by
// smartos_prompt_config.sh promptpool with no layout, spares or width). The expected plans
// below are worked out by hand from disklayout's rules, not from fleetboot's code:
//   1 disk single, 2 a mirror, 3-4 raidz1, 5-6 raidz2 (raidz1 for SSDs); past that raidz2
//   for more than 16 disks or for 8-16 disks larger than 1.5 TB, raidz2 for 7-11 SSDs, else
//   two-way mirrors (spares: none for 2 or 4 disks, else ceil(n/16), plus one for an odd rest);
//   raidz spares start at min(2, n/7) (raidz1) or min(2, n/12) (raidz2) and grow until the
//   narrowest allowed width (raidz1 3-6, raidz2 7-12) divides the rest; spares are the last disks;
//   the smallest SSD group becomes separate log devices when it has fewer than 5, other
//   SSD groups and smaller spinning groups become cache.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NodeConfigError } from '../src/nodeconfig/network.ts';
import { zpoolPlanOf } from '../src/nodeconfig/render.ts';
import { defaultZpoolLayout, describePlan, parseZpoolLayout, parseZpoolSpec, planZpool, roundedCapacityGb, zpoolLayoutSchema, type Disk, type ZpoolPlan } from '../src/nodeconfig/zpool.ts';
import type { NodeRecord } from '../src/store/nodes.ts';

const TB = 1e12;
const pad = (i: number): string => String(i).padStart(2, '0');
const hdd = (i: number, size = 2 * TB): Disk => ({ name: `c0t${pad(i)}d0`, sizeBytes: size, ssd: false, removable: false });
const ssd = (i: number, size = 0.4 * TB): Disk => ({ name: `c1t${pad(i)}d0`, sizeBytes: size, ssd: true, removable: false });
const hdds = (n: number, size = 2 * TB): Disk[] => Array.from({ length: n }, (_, i) => hdd(i, size));
const ssds = (n: number, size = 0.4 * TB, from = 0): Disk[] => Array.from({ length: n }, (_, i) => ssd(from + i, size));

/** `raidz2 2x8 +1` (class, vdevs x width, spares). */
function shape(p: ZpoolPlan): string {
  return `${p.class} ${p.vdevs.length}x${p.vdevs[0]!.disks.length}${p.spares.length ? ` +${p.spares.length}` : ''}`;
}

function accounted(plan: ZpoolPlan): string[] {
  return [...plan.vdevs.flatMap((v) => v.disks), ...plan.spares, ...(plan.log?.disks ?? []), ...plan.cache, ...plan.unused].sort();
}

const plan = (disks: Disk[]): ZpoolPlan => planZpool(defaultZpoolLayout, disks);

test('round_capacity: devices group by their marketed size', () => {
  assert.equal(roundedCapacityGb(4000787030016), 4000);
  assert.equal(roundedCapacityGb(2000398934016), 2000);
  assert.equal(roundedCapacityGb(480103981056), 480);
  assert.equal(roundedCapacityGb(8004304896), 8);
  assert.equal(roundedCapacityGb(100e6), 0);
});

// n spinning disks of 1 TB (at most 1.5 TB: mirrors from 7 to 16) and of 4 TB (raidz2 from 8).
const spinning: Record<number, [oneTb: string, fourTb: string]> = {
  1: ['single 1x1', 'single 1x1'],
  2: ['mirror 1x2', 'mirror 1x2'],
  3: ['raidz1 1x3', 'raidz1 1x3'],
  4: ['raidz1 1x4', 'raidz1 1x4'],
  5: ['raidz2 1x5', 'raidz2 1x5'],
  6: ['raidz2 1x6', 'raidz2 1x6'],
  7: ['mirror 3x2 +1', 'mirror 3x2 +1'],
  8: ['mirror 3x2 +2', 'raidz2 1x8'],
  9: ['mirror 4x2 +1', 'raidz2 1x9'],
  10: ['mirror 4x2 +2', 'raidz2 1x10'],
  11: ['mirror 5x2 +1', 'raidz2 1x11'],
  12: ['mirror 5x2 +2', 'raidz2 1x11 +1'],
  13: ['mirror 6x2 +1', 'raidz2 1x12 +1'],
  14: ['mirror 6x2 +2', 'raidz2 1x12 +2'],
  15: ['mirror 7x2 +1', 'raidz2 2x7 +1'],
  16: ['mirror 7x2 +2', 'raidz2 2x7 +2'],
  17: ['raidz2 2x8 +1', 'raidz2 2x8 +1'],
  18: ['raidz2 2x8 +2', 'raidz2 2x8 +2'],
  19: ['raidz2 2x9 +1', 'raidz2 2x9 +1'],
  20: ['raidz2 2x9 +2', 'raidz2 2x9 +2'],
  21: ['raidz2 2x10 +1', 'raidz2 2x10 +1'],
  22: ['raidz2 3x7 +1', 'raidz2 3x7 +1'],
  23: ['raidz2 2x11 +1', 'raidz2 2x11 +1'],
  24: ['raidz2 2x11 +2', 'raidz2 2x11 +2'],
};

test('1 to 24 spinning disks of 1 TB and of 4 TB get disklayout default layout, every disk placed once', () => {
  for (const [n, [oneTb, fourTb]] of Object.entries(spinning).map(([k, v]) => [Number(k), v] as const)) {
    for (const [size, expected] of [[1 * TB, oneTb], [4 * TB, fourTb]] as const) {
      const disks = hdds(n, size);
      const p = plan(disks);
      assert.equal(shape(p), expected, `${n} x ${size / TB} TB`);
      assert.deepEqual(accounted(p), disks.map((d) => d.name).sort(), `${n} x ${size / TB} TB: every disk placed once`);
      assert.deepEqual([p.log, p.cache, p.unused], [null, [], []]);
    }
  }
});

test('the inventories fleetboot used to get wrong: 8 x 4 TB, 12 x 1 TB, 12 x 4 TB', () => {
  const eight = plan(hdds(8, 4 * TB));
  assert.equal(shape(eight), 'raidz2 1x8');
  assert.equal(eight.usableBytes, 6 * 4 * TB);
  const twelveSmall = plan(hdds(12, 1 * TB));
  assert.equal(shape(twelveSmall), 'mirror 5x2 +2');
  // Spares are the last disks of the role; mirrors pair the rest in order.
  assert.deepEqual(twelveSmall.spares, ['c0t10d0', 'c0t11d0']);
  assert.deepEqual(twelveSmall.vdevs[0], { type: 'mirror', disks: ['c0t00d0', 'c0t01d0'] });
  assert.equal(twelveSmall.usableBytes, 5 * TB);
  const twelveBig = plan(hdds(12, 4 * TB));
  assert.equal(shape(twelveBig), 'raidz2 1x11 +1');
  assert.equal(twelveBig.usableBytes, 9 * 4 * TB);
  // 2 TB is already "larger than 1.5 TB": 8 of them are raidz2 too; 7 are still mirrors.
  assert.equal(shape(plan(hdds(8, 2 * TB))), 'raidz2 1x8');
  assert.equal(shape(plan(hdds(7, 2 * TB))), 'mirror 3x2 +1');
});

test('SSDs beside spinning disks: up to 4 of the smallest size are separate log devices, the rest cache', () => {
  const data = hdds(6);
  for (let k = 1; k <= 4; k++) {
    const p = plan([...data, ...ssds(k)]);
    assert.equal(shape(p), 'raidz2 1x6', `${k} SSDs`);
    assert.deepEqual(p.log, { type: 'single', disks: ssds(k).map((d) => d.name) }, `${k} SSDs are ${k} log devices, never a mirror`);
    assert.deepEqual(p.cache, [], `${k} SSDs: no cache`);
  }
  const five = plan([...data, ...ssds(5)]);
  assert.equal(five.log, null, '5 SSDs of one size are not logs');
  assert.deepEqual(five.cache, ssds(5).map((d) => d.name));
  // Two SSD sizes: the smaller (2 of them) logs, the larger cache.
  const mixed = plan([...data, ...ssds(2, 0.2 * TB), ...ssds(2, 0.8 * TB, 2)]);
  assert.deepEqual(mixed.log?.disks, ['c1t00d0', 'c1t01d0']);
  assert.deepEqual(mixed.cache, ['c1t02d0', 'c1t03d0']);
  // Smaller spinning disks beside larger ones are cache, not data.
  const twoSizes = plan([...hdds(6, 4 * TB), { ...hdd(20, 1 * TB) }, { ...hdd(21, 1 * TB) }]);
  assert.equal(shape(twoSizes), 'raidz2 1x6');
  assert.deepEqual(twoSizes.cache, ['c0t20d0', 'c0t21d0']);
  // Disks whose sizes differ by under 5% are one group.
  const nearly = plan([...hdds(5, 4000787030016), hdd(9, 3840755982336)]);
  assert.equal(shape(nearly), 'raidz2 1x6');
  assert.equal(nearly.cache.length, 0);
});

test('all-flash nodes: data on the largest SSDs, raidz1 up to 6, raidz2 for 7 to 11, smaller SSDs as logs', () => {
  assert.equal(shape(plan(ssds(4, 1 * TB))), 'raidz1 1x4');
  assert.equal(shape(plan(ssds(5, 1 * TB))), 'raidz1 1x5');
  // raidz1 takes the narrowest width (3) that divides 6.
  assert.equal(shape(plan(ssds(6, 1 * TB))), 'raidz1 2x3');
  assert.equal(shape(plan(ssds(7, 1 * TB))), 'raidz2 1x7');
  assert.equal(shape(plan(ssds(11, 1 * TB))), 'raidz2 1x11');
  assert.equal(shape(plan(ssds(12, 1 * TB))), 'mirror 5x2 +2');
  const two = plan([...ssds(4, 1 * TB), ...ssds(2, 0.4 * TB, 4)]);
  assert.equal(shape(two), 'raidz1 1x4');
  assert.deepEqual(two.log?.disks, ['c1t04d0', 'c1t05d0']);
});

test('USB, removable and tiny devices are left out, as setup and disklayout leave them', () => {
  const usbDisk: Disk = { name: 'c3t0d0', sizeBytes: 2 * TB, ssd: false, removable: false, usb: true };
  const stick: Disk = { name: 'c2t0d0', sizeBytes: 8e9, ssd: false, removable: true };
  const tiny: Disk = { name: 'c4t0d0', sizeBytes: 100e6, ssd: false, removable: false };
  const p = plan([...hdds(2), usbDisk, stick, tiny]);
  assert.equal(shape(p), 'mirror 1x2');
  assert.deepEqual(p.unused, ['c3t0d0', 'c2t0d0', 'c4t0d0']);
  assert.throws(() => plan([stick]), (e: Error) => e instanceof NodeConfigError && /no primary storage disks/.test(e.message));
  assert.equal(describePlan(plan([...hdds(12, 4 * TB), ...ssds(2)])), 'raidz2 1x11, 1 spare, 2 logs');
});

test('explicit layouts are refused naming the field: first boot builds only the default', () => {
  assert.deepEqual(parseZpoolSpec('default'), { class: 'default', exclude: [] });
  const refused = (spec: string, field: RegExp): void =>
    assert.throws(() => parseZpoolSpec(spec), (e: Error) => e instanceof NodeConfigError && field.test(e.message), spec);
  refused('mirror', /^zpool\.class: SmartOS first-boot setup builds only disklayout's default pool .*"mirror" would not be built/);
  refused('raidz2 width=6', /^zpool\.class: /);
  refused('default spares=1', /^zpool\.spares: .*spares=1 would not be honoured/);
  refused('default width=4', /^zpool\.width: /);
  refused('default cache=1', /^zpool\.cache: /);
  refused('default log=0', /^zpool\.log: /);
  refused('default exclude=c0t2d0', /^zpool\.exclude: .*c0t2d0 would not be left out/);
  refused('raidz4', /^zpool\.class: /);
  refused('default width=two', /^zpool\.width: /);
  refused('default colour=blue', /expected key=value/);
  assert.throws(() => parseZpoolLayout({ class: 'raidz1' }), /^NodeConfigError: zpool\.class: |zpool\.class: /);
  assert.throws(() => planZpool({ class: 'mirror', exclude: [] }, hdds(4)), /zpool\.class: /);
});

test("node show's plan for a layout stored before refusals is the default one, saying the stored one is not built", () => {
  const node = { sysinfo: { disks: hdds(12, 4 * TB) }, zpoolConfig: zpoolLayoutSchema.parse({ class: 'mirror', spares: 2 }) } as unknown as NodeRecord;
  const { plan: shown, error } = zpoolPlanOf(node);
  assert.equal(error, null);
  assert.equal(shape(shown!), 'raidz2 1x11 +1');
  assert.match(shown!.reason, /stored layout is not built \(zpool\.class: .*"mirror"/);
  const fresh = zpoolPlanOf({ ...node, zpoolConfig: { class: 'default', exclude: [] } } as NodeRecord).plan!;
  assert.match(fresh.reason, /^disklayout's default for 12 data disks larger than 1\.5 TB: raidz2, 1 vdev of 11, 1 spare$/);
});
