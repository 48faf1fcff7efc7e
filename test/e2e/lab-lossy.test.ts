// End to end over a lossy link: a lab with `--loss 10` (nftables in the lab namespace drops 10%
// of UDP and TCP on br0, both ways, src/lab/network.ts lossRuleset) boots two VMs at once,
//   node0: SeaBIOS + QEMU's iPXE NIC ROM (DHCP -> HTTP);
//   node1: OVMF with a NIC without the iPXE ROM (firmware PXE -> TFTP snponly.efi -> iPXE -> HTTP),
// and both reach check-in. The nftables counters prove the loss was applied, and the boot
// timelines show the retries it caused: the TFTP transfer's retransmissions, and, for each DHCP
// reply the nftables counters say was lost on a VM's port, that VM's DHCP message seen again
// with the same xid (RFC 2131 §4.1).
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { labUp, startVms } from '../../src/lab/lab.ts';
import { lossTable, readLossCounters } from '../../src/lab/network.ts';
import { readLabState, type LabState, type LabVm } from '../../src/lab/state.ts';
import { ovmfCode, ovmfVars } from '../../src/lab/vm.ts';
import type { Mac } from '../../src/mac.ts';
import type { BootEvent } from '../../src/store/events.ts';
import type { NodeRecord } from '../../src/store/nodes.ts';
import { Store } from '../../src/store/store.ts';
import { labBootNeeds, requires } from '../requires.ts';
import { buildPlatform, labCli, labDiagnosis, removeLab, waitFor } from './lab-fixtures.ts';
import { cliPath, testNamespace } from '../fixtures.ts';

const skip = requires({
  ...labBootNeeds,
  commands: [...(labBootNeeds.commands ?? []), ovmfCode, ovmfVars, '/usr/lib/ipxe/snponly.efi', 'nft'],
});

const lossPercent = 10;

/** DHCP messages the head node saw more than once with one xid: the client's retransmissions. */
function repeatedDhcp(events: BootEvent[]): { event: string; xid: number; times: number; secs: number[] }[] {
  const seen = new Map<string, { event: string; xid: number; times: number; secs: number[] }>();
  for (const e of events) {
    if (e.event !== 'dhcp_discover' && e.event !== 'dhcp_request') continue;
    const xid = e.detail.xid;
    if (typeof xid !== 'number') continue;
    const key = `${e.event}/${xid}`;
    const s = seen.get(key) ?? { event: e.event, xid, times: 0, secs: [] };
    s.times++;
    s.secs.push(typeof e.detail.secs === 'number' ? e.detail.secs : -1);
    seen.set(key, s);
  }
  return [...seen.values()].filter((s) => s.times > 1);
}

describe('e2e: lab boot over a lossy link (10% packet loss)', { skip, timeout: 270_000 }, () => {
  let dir: string;
  let lab: LabState;
  let store: Store;
  let bios: LabVm;
  let uefi: LabVm;
  const ns = testNamespace('lossy');
  const diagnose = (): string => labDiagnosis(dir, [bios, uefi]);
  const node = (vm: LabVm): NodeRecord | undefined => store.nodes.findByMac(vm.mac as Mac);
  const checkedIn = (vm: LabVm): Promise<NodeRecord> =>
    waitFor(`${vm.name} to check in over the lossy link`, 200_000, () => {
      const n = node(vm);
      return n && n.lastSeen !== null ? n : undefined;
    }, diagnose);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fleetboot-lossy-'));
    const vmOptions = { memoryMiB: 512, diskMiB: 1024, vmTimeoutSeconds: 240, progress: () => undefined };
    lab = await labUp({
      ...vmOptions,
      dir,
      namespace: ns,
      nodes: 0,
      firmware: 'bios',
      chainload: false,
      subnet: '10.99.0.0/24',
      httpPort: 8080,
      logLevel: 'info',
      platforms: [await buildPlatform('A')],
      loss: lossPercent,
    });
    store = Store.open(Store.fileIn(join(dir, 'var')));
    // Both at once: one SeaBIOS with the iPXE NIC ROM, one OVMF chainloading iPXE over TFTP.
    [bios, uefi] = [
      (await startVms(lab, { ...vmOptions, firmware: 'bios', chainload: false }, 0, 1))[0]!,
      (await startVms(lab, { ...vmOptions, firmware: 'uefi', chainload: true }, 1, 1))[0]!,
    ];
  });

  after(async () => {
    store?.close();
    await removeLab(dir, ns);
  });

  it('the loss is recorded in lab.json and loaded as nftables rules in the lab namespace only', async () => {
    assert.deepEqual(readLabState(dir)?.loss, { percent: lossPercent, table: lossTable });
    const rules = await execa('ip', ['netns', 'exec', ns, 'nft', 'list', 'table', 'bridge', lossTable]);
    for (const hook of ['input', 'output', 'forward']) {
      assert.match(rules.stdout, new RegExp(`hook ${hook} [^]*?numgen random mod 100 < ${lossPercent}`), `a ${hook} chain drops ${lossPercent}%:\n${rules.stdout}`);
    }
    const host = await execa('nft', ['list', 'tables'], { reject: false });
    assert.ok(!host.stdout.includes(lossTable), 'the host outside the lab namespace has no loss table');
    const status = await labCli(() => lab, () => dir)(['lab', 'status', '--dir', dir, '--json']);
    assert.equal(status.exitCode, 0, status.stderr);
    const shown = JSON.parse(status.stdout) as { loss: { percent: number; dropped: { byHook: Record<string, number> } } | null };
    assert.equal(shown.loss?.percent, lossPercent, `lab status --json shows the loss: ${status.stdout}`);
    assert.deepEqual(Object.keys(shown.loss.dropped.byHook).sort(), ['forward', 'input', 'output']);
  });

  it('lab up --loss outside 1-99 is refused before anything is made, naming the flag', async () => {
    for (const bad of ['0', '100', '5.5', 'ten']) {
      const other = join(dir, `refused-${bad}`);
      const r = await execa(process.execPath, [cliPath, 'lab', 'up', '--loss', bad, '--dir', other, '--namespace', testNamespace('lossno')], { reject: false });
      assert.equal(r.exitCode, 2, `--loss ${bad}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`--loss ${bad.replace('.', '\\.')}: expected a whole number from 1 to 99`));
      assert.ok(!(await execa('ip', ['netns', 'list'])).stdout.includes(testNamespace('lossno')), 'no namespace was made');
    }
  });

  it('both VMs, SeaBIOS and OVMF chainloading iPXE over TFTP, reach check-in; the counters show UDP and TCP drops', async (t) => {
    const [b, u] = await Promise.all([checkedIn(bios), checkedIn(uefi)]);
    assert.equal(b.currentPlatform, 'fleetboot-test-A');
    assert.equal(u.currentPlatform, 'fleetboot-test-A');
    const counters = await readLossCounters(ns);
    assert.ok(counters, 'the loss table is still there');
    t.diagnostic(`dropped: ${JSON.stringify(counters)}`);
    assert.ok(counters.byHook.input > 0, 'packets to the head node were dropped');
    assert.ok(counters.byHook.output > 0, 'packets from the head node were dropped');
    const lost = (vm: LabVm, protocol: string): number => counters.fromPort.find((p) => p.port === vm.tap && p.protocol === protocol)?.packets ?? 0;
    // Each VM's kernel and initramfs come over HTTP: thousands of segments, so both lost TCP.
    assert.ok(lost(bios, 'tcp') > 0 && lost(uefi, 'tcp') > 0, `each VM lost TCP packets: ${JSON.stringify(counters.fromPort)}`);
    // The chainload VM's TFTP ACKs are UDP.
    assert.ok(lost(uefi, 'udp') > 0, `the UEFI VM lost UDP packets: ${JSON.stringify(counters.fromPort)}`);
  });

  it("each node's boot timeline shows the retries: TFTP retransmissions, DHCP messages repeated with their xid", async (t) => {
    const counters = (await readLossCounters(ns))!;
    for (const vm of [bios, uefi]) {
      const events = store.events.timeline(node(vm)!.id);
      const repeats = repeatedDhcp(events);
      const tftp = events.filter((e) => e.event === 'tftp_get');
      t.diagnostic(`${vm.name} (${vm.firmware}): DHCP repeats ${JSON.stringify(repeats)}; TFTP ${JSON.stringify(tftp.map((e) => e.detail))}`);
      for (const e of events.filter((x) => x.event === 'dhcp_discover' || x.event === 'dhcp_request')) {
        assert.equal(typeof e.detail.xid, 'number', `${e.event} records the xid: ${JSON.stringify(e.detail)}`);
        assert.equal(typeof e.detail.secs, 'number', `${e.event} records secs: ${JSON.stringify(e.detail)}`);
      }
      const tftpRetransmits = tftp.reduce((n, e) => n + (typeof e.detail.retransmits === 'number' ? e.detail.retransmits : 0), 0);
      if (vm.chainload) {
        assert.ok(tftp.length > 0, `${vm.name} fetched iPXE over TFTP`);
        assert.ok(tftp.every((e) => typeof e.detail.retransmits === 'number'), 'each TFTP transfer records its retransmissions');
        assert.ok(tftpRetransmits > 0, `${vm.name}: a TFTP transfer over a lossy link shows retransmissions: ${JSON.stringify(tftp.map((e) => e.detail))}`);
      }
      // A DHCP reply for this VM lost on its port makes the client send its DISCOVER or REQUEST
      // again with the same xid (RFC 2131 §4.1 retransmission): the head node saw that message
      // twice, and the timeline must say so.
      const repliesLost = counters.dhcpRepliesLost.find((l) => l.port === vm.tap && l.mac === vm.mac)?.packets ?? 0;
      t.diagnostic(`${vm.name}: ${repliesLost} DHCP repl${repliesLost === 1 ? 'y' : 'ies'} for it lost`);
      if (repliesLost > 0) assert.ok(repeats.length > 0, `${vm.name} lost ${repliesLost} DHCP repl(ies), so its timeline shows a repeated DHCP message: ${JSON.stringify(events.filter((e) => e.event.startsWith('dhcp_')).map((e) => [e.event, e.detail.xid, e.detail.secs]))}`);
      // A repeated xid is a client's retransmission (a reply of ours was lost): each one repeats
      // the same message, and RFC 2131 §4.4.1 has secs never go down within an exchange.
      for (const r of repeats) {
        assert.deepEqual(r.secs, [...r.secs].sort((x, y) => x - y), `${vm.name}: secs of ${r.event} xid ${r.xid} never go down`);
      }
    }
  });
});
