// The lab gives each VM's node its power once the node has registered: the VM's QMP socket
// (the qemu driver) when it has no BMC, so the lab's rollouts reboot through it with no
// operator step; an operator's own power settings are left alone.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { assignLabPower } from '../src/lab/lab.ts';
import type { LabState } from '../src/lab/state.ts';
import { prepareVm } from '../src/lab/vm.ts';
import { parseMac } from '../src/mac.ts';
import { Store } from '../src/store/store.ts';
import { tempDir } from './fixtures.ts';

test('a lab VM without a BMC gets the qemu driver of its QMP socket, once, after its node registers', (t) => {
  const dir = tempDir(t);
  const vm = (i: number) => prepareVm('fb-lab', dir, { index: i, firmware: 'bios', chainload: false, memoryMiB: 256, diskMiB: 16, timeoutSeconds: 60 }, 1);
  const [bios, other] = [vm(0), vm(1)];
  const state: LabState = {
    version: 1, namespace: 'fb-lab', dir, subnet: '10.99.0.0/24', address: '10.99.0.1', httpPort: 8080,
    configFile: join(dir, 'fleetboot.json'), createdAt: 0, headNode: null, radvd: null, vms: [bios, other],
  };
  assert.deepEqual(assignLabPower(state), [], 'no registry yet: nothing to set');
  const store = Store.open(Store.fileIn(join(dir, 'var')));
  t.after(() => store.close());
  const node = store.nodes.discover({ mac: parseMac(bios.mac)! }).node;
  const set = assignLabPower(state);
  assert.deepEqual(set, [{ vm: bios.name, nodeId: node.id, spec: { kind: 'qemu', qmpSocket: bios.qmpSocket, guestResetWaitMs: 20000 } }]);
  assert.deepEqual(store.nodes.get(node.id)!.power, { kind: 'qemu', qmpSocket: bios.qmpSocket, guestResetWaitMs: 20000 });
  assert.deepEqual(assignLabPower(state), [], 'set once');
  // The second VM's node has power an operator gave it: kept.
  const mine = store.nodes.discover({ mac: parseMac(other.mac)! }).node;
  store.nodes.update(mine.id, { power: { kind: 'qemu', qmpSocket: '/elsewhere.qmp' } });
  assert.deepEqual(assignLabPower(state), []);
  assert.deepEqual(store.nodes.get(mine.id)!.power, { kind: 'qemu', qmpSocket: '/elsewhere.qmp' });
});
