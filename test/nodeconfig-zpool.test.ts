import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NodeConfigError } from '../src/nodeconfig/network.ts';
import { parseZpoolSpec, planZpool, type Disk, type ZpoolPlan } from '../src/nodeconfig/zpool.ts';

const TB = 1e12;
const hdd = (i: number, size = 2 * TB): Disk => ({ name: `c0t${i}d0`, sizeBytes: size, ssd: false, removable: false });
const ssd = (i: number): Disk => ({ name: `c1t${i}d0`, sizeBytes: 0.4 * TB, ssd: true, removable: false });
const auto = parseZpoolSpec('default');

function accounted(plan: ZpoolPlan): string[] {
  return [...plan.vdevs.flatMap((v) => v.disks), ...plan.spares, ...(plan.log?.disks ?? []), ...plan.cache, ...plan.unused].sort();
}

test('automatic layout for 1 to 24 spinning disks follows disklayout: single, mirror, raidz1, raidz2, then wider with spares', () => {
  const expected: Record<number, string> = {
    1: 'single 1x1',
    2: 'mirror 1x2',
    3: 'raidz1 1x3',
    4: 'raidz1 1x4',
    5: 'raidz2 1x5',
    6: 'raidz2 1x6',
    7: 'raidz2 1x6 +1',
    8: 'raidz2 1x7 +1',
    9: 'raidz2 1x8 +1',
    10: 'raidz2 1x9 +1',
    11: 'raidz2 1x10 +1',
    12: 'raidz2 1x10 +2',
    13: 'raidz2 2x6 +1',
    16: 'raidz2 2x7 +2',
    24: 'raidz2 3x7 +3',
  };
  for (let n = 1; n <= 24; n++) {
    const disks = Array.from({ length: n }, (_, i) => hdd(i));
    const plan = planZpool(auto, disks);
    // Every disk is placed exactly once, nothing is lost, and each vdev meets its class's minimum.
    assert.deepEqual(accounted(plan), disks.map((d) => d.name).sort(), `n=${n}`);
    assert.equal(plan.unused.length, 0, `n=${n}: no disk left unused`);
    const widths = new Set(plan.vdevs.map((v) => v.disks.length));
    assert.equal(widths.size, 1, `n=${n}: vdevs of equal width`);
    assert.ok(plan.log === null && plan.cache.length === 0);
    if (n >= 7) assert.ok(plan.spares.length >= 1, `n=${n}: a large pool keeps a hot spare`);
    const summary = `${plan.class} ${plan.vdevs.length}x${plan.vdevs[0]!.disks.length}${plan.spares.length ? ` +${plan.spares.length}` : ''}`;
    if (expected[n]) assert.equal(summary, expected[n], `n=${n}`);
    assert.ok(plan.usableBytes > 0);
  }
});

test('large disks (4 TB and up) go to mirrors past 6 disks, with a spare for an odd count', () => {
  const plan7 = planZpool(auto, Array.from({ length: 7 }, (_, i) => hdd(i, 8 * TB)));
  assert.equal(plan7.class, 'mirror');
  assert.equal(plan7.vdevs.length, 3);
  assert.equal(plan7.spares.length, 1);
  const plan12 = planZpool(auto, Array.from({ length: 12 }, (_, i) => hdd(i, 8 * TB)));
  assert.deepEqual([plan12.class, plan12.vdevs.length, plan12.spares.length], ['mirror', 5, 2]);
  assert.equal(plan12.usableBytes, 5 * 8 * TB);
});

test('SSDs beside spinning disks become the log (mirrored when two) and then L2ARC cache', () => {
  const hdds = Array.from({ length: 6 }, (_, i) => hdd(i));
  const one = planZpool(auto, [...hdds, ssd(0)]);
  assert.deepEqual(one.log, { type: 'single', disks: ['c1t0d0'] });
  assert.deepEqual(one.cache, []);
  const two = planZpool(auto, [...hdds, ssd(0), ssd(1)]);
  assert.deepEqual(two.log, { type: 'mirror', disks: ['c1t0d0', 'c1t1d0'] });
  const four = planZpool(auto, [...hdds, ssd(0), ssd(1), ssd(2), ssd(3)]);
  assert.deepEqual(four.log?.disks, ['c1t0d0', 'c1t1d0']);
  assert.deepEqual(four.cache, ['c1t2d0', 'c1t3d0']);
  assert.equal(four.class, 'raidz2');
  assert.deepEqual(four.vdevs[0]!.disks, hdds.map((d) => d.name));
  // Operator limits: no log, one cache device; the other SSDs stay unused.
  const limited = planZpool(parseZpoolSpec('default log=0 cache=1'), [...hdds, ssd(0), ssd(1), ssd(2)]);
  assert.equal(limited.log, null);
  assert.deepEqual(limited.cache, ['c1t0d0']);
  assert.deepEqual(limited.unused, ['c1t1d0', 'c1t2d0']);
  // All-flash nodes keep their data on the SSDs.
  const flash = planZpool(auto, [ssd(0), ssd(1), ssd(2), ssd(3)]);
  assert.equal(flash.class, 'raidz1');
  assert.equal(flash.log, null);
});

test('removable media and excluded disks are left out', () => {
  const usb: Disk = { name: 'c2t0d0', sizeBytes: 8e9, ssd: false, removable: true };
  const plan = planZpool(parseZpoolSpec('default exclude=c0t2d0'), [hdd(0), hdd(1), hdd(2), usb]);
  assert.equal(plan.class, 'mirror');
  assert.deepEqual(plan.unused.sort(), ['c0t2d0', 'c2t0d0']);
});

test('explicit layouts: width and spares are honoured; impossible ones are refused with a clear reason', () => {
  const disks = Array.from({ length: 12 }, (_, i) => hdd(i));
  const mirrors = planZpool(parseZpoolSpec('mirror spares=2'), disks);
  assert.deepEqual([mirrors.vdevs.length, mirrors.spares.length], [5, 2]);
  const threeWay = planZpool(parseZpoolSpec('mirror width=3'), disks);
  assert.deepEqual([threeWay.vdevs.length, threeWay.vdevs[0]!.disks.length], [4, 3]);
  const rz3 = planZpool(parseZpoolSpec('raidz3 width=6'), disks);
  assert.deepEqual([rz3.vdevs.length, rz3.spares.length], [2, 0]);
  const rz1 = planZpool(parseZpoolSpec('raidz1 width=5 spares=1'), disks);
  assert.deepEqual([rz1.vdevs.length, rz1.spares.length, rz1.unused.length], [2, 1, 1]);
  assert.throws(() => planZpool(parseZpoolSpec('raidz2'), [hdd(0), hdd(1), hdd(2)]), /raidz2 of width 3 needs|at least 4/);
  assert.throws(() => planZpool(parseZpoolSpec('raidz3 width=4'), disks), (e: Error) => e instanceof NodeConfigError && /zpool\.width: raidz3 needs vdevs of at least 5/.test(e.message));
  assert.throws(() => planZpool(parseZpoolSpec('mirror exclude=sdz'), disks), /zpool\.exclude: the node has no disk "sdz"/);
  assert.throws(() => parseZpoolSpec('raidz4'), /zpool\.class/);
  assert.throws(() => parseZpoolSpec('mirror width=two'), /zpool\.width/);
  assert.throws(() => parseZpoolSpec('mirror colour=blue'), /expected key=value/);
});
