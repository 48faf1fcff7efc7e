// A fake fleet behind a real head node: nodes set up through the store, power drivers that
// "boot" a node by fetching its config modules and posting a check-in to the real HTTP API,
// as the agent does. A node can be told to come up on a platform other than the one assigned.
import { createHash } from 'node:crypto';
import { HeadNode } from '../src/headnode.ts';
import { silentLogger } from '../src/log.ts';
import { parseMac, type Mac } from '../src/mac.ts';
import { setNodeFields, setupNode } from '../src/nodeconfig/lifecycle.ts';
import { currentNodeToken, nodeKeysIn } from '../src/nodeconfig/secrets.ts';
import { importLinuxPlatform, readLinuxManifest } from '../src/platforms/import.ts';
import type { DriverFactory } from '../src/rollout/node-power.ts';
import type { PowerDriver } from '../src/rollout/power.ts';
import type { NodeRecord } from '../src/store/nodes.ts';
import { testConfig, type RunningHeadNode } from './fixtures.ts';
import { writeLinuxPlatform } from './platform-fixtures.ts';

export const platformA = 'lab-A';
export const platformB = 'lab-B';

export interface FakeMachine {
  name: string;
  mac: Mac;
  /** What the machine comes up on whatever it was assigned (a broken platform falls back); null: what it was assigned. */
  bootsInstead: string | null;
  /** Power cycles the rollout asked for. */
  cycles: number;
  /** Stops checking in at all (a node that never comes back); `boot` still boots it by hand. */
  silent: boolean;
  /** Assigned this platform, it never checks in (its kernel hangs). */
  silentOn: string | null;
  /** Booting this platform, it reports a networking.json other than the one served (stale config). */
  staleModulesOn: string | null;
}

export interface FakeFleet {
  /** The running head node; `restart` replaces it. */
  h: RunningHeadNode;
  /** Stops the head node and starts a new one on the same folder (a head-node restart). */
  restart(): Promise<void>;
  machines: Map<string, FakeMachine>;
  /** Boots a machine now: module fetches and a check-in, as the agent would after a reboot. */
  boot(name: string): Promise<void>;
  node(name: string): NodeRecord;
  /** Every check-in that failed (a test asserts there were none). */
  errors: string[];
}

type TestContext = { after: (fn: () => Promise<void> | void) => void };

/**
 * A head node with platforms lab-A and lab-B and `names` nodes set up, running lab-A, each
 * with a power spec whose socket path names it. The driver factory boots the named machine
 * a moment after each power cycle.
 */
export async function fakeFleet(t: TestContext, dir: string, names: string[], options: { rolloutPollMs?: number; traits?: Record<string, Record<string, string>> } = {}): Promise<FakeFleet> {
  const machines = new Map<string, FakeMachine>();
  const errors: string[] = [];
  names.forEach((name, i) => {
    machines.set(name, { name, mac: parseMac(`52:54:00:77:00:${(i + 1).toString(16).padStart(2, '0')}`)!, bootsInstead: null, cycles: 0, silent: false, silentOn: null, staleModulesOn: null });
  });
  const pending = new Set<Promise<void>>();
  let fleet: FakeFleet | null = null;
  const driverFor: DriverFactory = (spec) => {
    const name = String((spec as { qmpSocket: string }).qmpSocket).replace(/^\/fake\//, '');
    const m = machines.get(name);
    if (!m) throw new Error(`no fake machine ${name}`);
    const driver: PowerDriver = {
      kind: 'fake',
      powerCycle: async () => {
        m.cycles++;
        // The machine resets now and checks in a little later, as a real boot would.
        const hangs = m.silent || (m.silentOn !== null && fleet!.node(name).bootPlatform === m.silentOn);
        const p = new Promise<void>((resolve) => setTimeout(resolve, 20)).then(() => (hangs ? undefined : fleet!.boot(name)));
        pending.add(p);
        void p.catch((err: unknown) => errors.push(String(err))).finally(() => pending.delete(p));
      },
      powerOff: async () => undefined,
      powerOn: async () => undefined,
      status: async () => 'on',
    };
    return driver;
  };
  // Not startHeadNode: this one needs the fake drivers and a short poll.
  const startHead = async (): Promise<RunningHeadNode> => {
    const head = new HeadNode(testConfig(dir), { log: silentLogger, powerDriverFor: driverFor, rolloutPollMs: options.rolloutPollMs ?? 200 });
    await head.start();
    return { head, url: `http://127.0.0.1:${head.http.address()!.port}`, token: head.apiToken };
  };
  let running = await startHead();
  t.after(async () => {
    await Promise.allSettled([...pending]);
    await running.head.stop();
  });
  // Set-up goes through the first head node's store; later reads through the current one's.
  const head = running.head;
  const store = head.store;
  for (const stamp of [platformA, platformB]) {
    const m = readLinuxManifest(writeLinuxPlatform(dir, { stamp }));
    await importLinuxPlatform(m.manifest, m.dir, { store, platformImagesDir: head.config.platformImagesDir });
  }
  const keys = nodeKeysIn(head.config.dataDir);
  const byName = (name: string): NodeRecord => running.head.store.nodes.findByMac(machines.get(name)!.mac)!;
  const url = (): string => running.url;

  const boot = async (name: string): Promise<void> => {
    const m = machines.get(name)!;
    const node = byName(name);
    const token = currentNodeToken(keys, node)!;
    // The agent reports the SHA-1 of each module it found; fetch them as iPXE would have.
    const modules: Record<string, string> = {};
    for (const file of ['networking.json', 'answers.json', 'node.json']) {
      const res = await fetch(`${url()}/nodes/${m.mac}/${file}?token=${encodeURIComponent(token)}`);
      const stale = file === 'networking.json' && m.staleModulesOn !== null && m.staleModulesOn === (m.bootsInstead ?? node.bootPlatform);
      if (res.status === 200) modules[file] = createHash('sha1').update(`${await res.text()}${stale ? ' ' : ''}`).digest('hex');
      else await res.arrayBuffer();
    }
    const res = await fetch(`${url()}/api/v1/nodes/checkin`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({
        uuid: null,
        hostname: name,
        nics: [{ mac: m.mac, name: 'eth0', ip: null }],
        cpu: { model: 'QEMU Virtual CPU', count: 1 },
        ramBytes: 536870912,
        disks: [{ name: 'vda', sizeBytes: 10737418240, ssd: false, removable: false }],
        platform: m.bootsInstead ?? byName(name).bootPlatform,
        bootTime: Math.floor(Date.now() / 1000),
        modules,
        node: String(node.id),
      }),
    });
    if (res.status !== 200) throw new Error(`check-in of ${name}: ${res.status} ${await res.text()}`);
  };

  for (const name of names) {
    const m = machines.get(name)!;
    let node = store.nodes.discover({ mac: m.mac }).node;
    node = setupNode(store, keys, node, { network: { hostname: name, nics: [{ mac: m.mac, tags: ['admin'] }] } });
    const traits = Object.entries(options.traits?.[name] ?? {}).map(([k, v]) => `traits.${k}=${v}`);
    setNodeFields(store, node, ['power.kind=qemu', `power.qmpSocket=/fake/${name}`, ...traits]);
    store.nodes.update(node.id, { bootPlatform: platformA });
    // First boot: setting_up -> running on lab-A.
    await boot(name);
  }
  const restart = async (): Promise<void> => {
    await running.head.stop();
    running = await startHead();
    fleet!.h = running;
  };
  fleet = { h: running, restart, machines, boot, node: byName, errors };
  return fleet;
}
