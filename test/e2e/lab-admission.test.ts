// End to end, boot storm admission: a lab head node that lets one VM fetch its platform at a
// time (boot.admission.maxConcurrentBoots = 1) and three VMs powered on together. None is
// refused: the ones over the limit get iPXE's wait script (boot-templates/wait.ipxe.hbs), sleep
// and ask again on their own, and each boots once the one before it has its files. The
// timelines show the waits, and no two VMs' platform downloads overlap.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { labUp, startVms } from '../../src/lab/lab.ts';
import type { LabState, LabVm } from '../../src/lab/state.ts';
import type { Mac } from '../../src/mac.ts';
import type { NodeRecord } from '../../src/store/nodes.ts';
import { Store } from '../../src/store/store.ts';
import { labBootNeeds, requires } from '../requires.ts';
import { buildPlatform, labDiagnosis, labOptions, removeLab, waitFor } from './lab-fixtures.ts';
import { testNamespace } from '../fixtures.ts';

const skip = requires(labBootNeeds);

describe('e2e: three VMs at once through a head node admitting one boot at a time', { skip, timeout: 300_000 }, () => {
  let dir: string;
  let lab: LabState;
  let store: Store;
  let vms: LabVm[] = [];
  const ns = testNamespace('admit');
  const diagnose = (): string => labDiagnosis(dir, vms);
  const node = (vm: LabVm): NodeRecord | undefined => store.nodes.findByMac(vm.mac as Mac);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fleetboot-admit-'));
    const options = labOptions(dir, ns, {
      nodes: 0,
      vmTimeoutSeconds: 280,
      platforms: [await buildPlatform('A')],
      admission: { maxConcurrentBoots: 1, retryMinSeconds: 2, retryMaxSeconds: 5 },
    });
    lab = await labUp(options);
    store = Store.open(Store.fileIn(join(dir, 'var')));
    vms = await startVms(lab, options, 0, 3);
  });

  after(async () => {
    store?.close();
    await removeLab(dir, ns);
  });

  it('every VM checks in with no operator action; those turned away waited in iPXE and asked again', async () => {
    const booted = await Promise.all(
      vms.map((vm) => waitFor(`${vm.name} to check in`, 260_000, () => {
        const n = node(vm);
        return n && n.lastSeen !== null ? n : undefined;
      }, diagnose)),
    );
    const timelines = booted.map((n) => store.events.timeline(n.id, 500));
    const scripts = timelines.map((events) => events.filter((e) => e.event === 'script').map((e) => String(e.detail['action'])));
    for (const [i, s] of scripts.entries()) assert.equal(s.at(-1), 'boot', `${vms[i]!.name}: ${s.join(', ')}\n${diagnose()}`);
    const waited = scripts.filter((s) => s.includes('wait')).length;
    assert.ok(waited >= 2, `at least two of three VMs powered on together must have waited: ${JSON.stringify(scripts)}`);
    // One slot: each VM's platform downloads (its boot script to its last /os file) do not overlap another's.
    const spans = timelines.map((events) => {
      // Platform files only (they carry the stamp); the node's own config modules take no slot.
      const files = events.filter((e) => (e.event === 'kernel' || e.event === 'module' || e.event === 'initrd') && e.detail['stamp'] !== undefined);
      const start = events.filter((e) => e.event === 'script' && e.detail['action'] === 'boot').at(-1)!.at;
      const end = Math.max(...files.map((e) => e.at + Number(e.detail['ms'] ?? 0)));
      return [start, end] as const;
    }).sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < spans.length; i++) {
      assert.ok(spans[i]![0] >= spans[i - 1]![1] - 50, `downloads overlap: ${JSON.stringify(spans)}`);
    }
  });
});
