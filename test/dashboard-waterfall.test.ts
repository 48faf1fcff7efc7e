import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HeadNode } from '../src/headnode.ts';
import { silentLogger } from '../src/log.ts';
import { parseMac } from '../src/mac.ts';
import { tempDir, testConfig } from './fixtures.ts';
import { dashboardLogin } from './dashboard-fixtures.ts';

test('the node page draws each boot as a waterfall of timed steps, and its fragment grows as the boot goes on', async (t) => {
  const dir = tempDir(t);
  let clock = Date.parse('2026-12-02T10:00:00Z');
  const head = new HeadNode(testConfig(dir), { log: silentLogger, now: () => clock });
  await head.start();
  t.after(() => head.stop());
  const url = `http://127.0.0.1:${head.http.address()!.port}`;
  const mac = parseMac('52:54:00:cc:00:01')!;
  const { node } = head.store.nodes.discover({ mac });
  const at = (offsetMs: number, e: Parameters<typeof head.store.events.record>[0]): void => {
    clock = Date.parse('2026-12-02T10:00:00Z') + offsetMs;
    head.store.events.record({ nodeId: node.id, mac, ...e });
  };
  at(0, { event: 'dhcp_discover' });
  at(40, { event: 'dhcp_ack', detail: { ip: '10.0.0.20' } });
  at(1_540, { event: 'tftp_get', detail: { file: 'undionly.kpxe', size: 70_000, ms: 1_400 } });
  const cookie = (await dashboardLogin(url, head.apiToken)).cookie;
  const fragment = async (): Promise<string> => {
    const res = await fetch(`${url}/ui/nodes/${node.id}/waterfall`, { headers: { cookie } });
    assert.equal(res.status, 200);
    return res.text();
  };

  // Mid-boot: DHCP and TFTP are drawn, TFTP with the 1.4 s it took, and the boot is in progress.
  const early = await fragment();
  assert.match(early, /in progress/);
  assert.match(early, /class="step step-tftp"/);
  assert.match(early, /<td class="took">1\.40 s/);
  assert.doesNotMatch(early, /step-kernel/);

  at(2_000, { event: 'script', detail: { platform: 'linux-a' } });
  at(2_100, { event: 'kernel', detail: { stamp: 'linux-a', path: 'vmlinuz', bytes: 8_000_000 } });
  at(4_100, { event: 'initrd', detail: { stamp: 'linux-a', path: 'initrd', bytes: 30_000_000 } });
  at(9_100, { event: 'checkin', detail: { platform: 'linux-a' } });
  const done = await fragment();
  assert.match(done, /checked in after <strong>9\.10 s<\/strong>/);
  const steps = [...done.matchAll(/class="step step-([a-z]+)"/g)].map((m) => m[1]);
  for (const step of ['dhcp', 'tftp', 'script', 'kernel', 'initrd', 'checkin']) assert.ok(steps.includes(step), `${step} drawn: ${steps.join(',')}`);
  assert.ok(steps.indexOf('tftp') < steps.indexOf('kernel') && steps.indexOf('kernel') < steps.indexOf('checkin'), 'steps in boot order');
  // The kernel's bar starts 2.1 s into a 9.1 s boot: its place on the axis is the time it began.
  assert.match(done, /step-kernel"><td class="label">[^<]*<\/td>\s*<td class="track"><div class="bar[^"]*" style="margin-left:23\.1%/);

  // The page itself carries the same section, and without a session the fragment is refused.
  const page = await (await fetch(`${url}/ui/nodes/${node.id}`, { headers: { cookie } })).text();
  assert.match(page, /<section id="waterfall" data-node="\d+">/);
  assert.match(page, /checked in after/);
  assert.equal((await fetch(`${url}/ui/nodes/${node.id}/waterfall`, { redirect: 'manual' })).status, 401);
});
