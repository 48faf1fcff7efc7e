// Whether fleetboot answers a machine it does not know, decided here and nowhere else
// (docs/design.md "The boot path" §4). The DHCP server, the boot-script route and check-in all ask.
//
//   policy      full DHCP              ProxyDHCP   boot script        check-in
//   discover    register, lease        register    register, boots    register
//   ignore      lease, not registered  silent      exit               refused
//   allow-list  silent                 silent      exit               refused
//
// "Unknown" means neither the MAC nor (except under allow-list, which is a list of MACs) the
// machine's UUID is in the registry: a known machine booting from another port is not new.
import type { FleetbootConfig } from '../config/schema.ts';
import type { Mac } from '../mac.ts';
import type { NodeRecord } from '../store/nodes.ts';
import type { Store } from '../store/store.ts';
import type { UuidSource } from '../uuid.ts';

export type UnknownNodePolicy = FleetbootConfig['unknownNodePolicy'];

/** Where a machine asks: full DHCP, ProxyDHCP, the per-node boot script, or a check-in. */
export type AdmissionChannel = 'dhcp' | 'proxy-dhcp' | 'script' | 'checkin';

/**
 * What happens to a machine fleetboot does not know.
 * - `register`: it becomes a `discovered` node and is answered as one;
 * - `unregistered`: answered without being written (full DHCP under `ignore` leases it an
 *   address like any DHCP server would; nothing else is given to it);
 * - `refuse`: DHCP stays silent, the boot script is `exit`, a check-in is refused.
 */
export type UnknownMachineAnswer = { answer: 'register' } | { answer: 'unregistered' | 'refuse'; reason: string };

export function unknownMachineAnswer(policy: UnknownNodePolicy, channel: AdmissionChannel): UnknownMachineAnswer {
  if (policy === 'discover') return { answer: 'register' };
  if (policy === 'allow-list') return { answer: 'refuse', reason: 'not in the registry and the unknown-node policy is "allow-list"' };
  if (channel === 'dhcp') return { answer: 'unregistered', reason: 'not in the registry and the unknown-node policy is "ignore" (an address only)' };
  return { answer: 'refuse', reason: 'not in the registry and the unknown-node policy is "ignore"' };
}

/** What a machine says about itself when it asks. */
export interface MachineIdentity {
  mac: Mac;
  uuid?: string | null;
  uuidFrom?: UuidSource;
  arch?: string | null;
  serial?: string | null;
}

export type Admission =
  | { admitted: true; node: NodeRecord; created: boolean }
  | { admitted: false; answer: 'unregistered' | 'refuse'; reason: string; capped?: true };

/**
 * How many discovered-but-never-booted nodes (store/nodes.ts UNBOOTED_DISCOVERED) there may
 * be before `discover` stops registering new machines (docs/hardening.md "DHCP exhaustion").
 * Check-ins are not capped: a machine that checks in has booted.
 */
export interface AdmissionLimits {
  maxUnbootedDiscovered: number;
}

/** How long a count of unbooted nodes is reused before the registry is asked again. */
const COUNT_REUSE_MS = 1000;

/**
 * The count per store, raised by every registration made here and recounted at most once a
 * COUNT_REUSE_MS, so a flood of new MACs past the cap costs no query per packet. A node that
 * boots in between still counts until the recount: the cap errs towards refusing, never past it.
 */
const unbootedCounts = new WeakMap<Store, { n: number; at: number }>();

function unbootedCount(store: Store): { n: number; at: number } {
  const now = performance.now();
  let c = unbootedCounts.get(store);
  if (!c || now - c.at >= COUNT_REUSE_MS) unbootedCounts.set(store, (c = { n: store.nodes.countUnbootedDiscovered(), at: now }));
  return c;
}

/**
 * The node a machine is, registering it when the policy says so (and, with `limits`, while
 * fewer than the cap are discovered-but-never-booted). A known machine also learns what it
 * reported (UUID spelling, arch, serial, a new NIC for a known UUID).
 */
export function admitMachine(store: Store, policy: UnknownNodePolicy, channel: AdmissionChannel, who: MachineIdentity, limits?: AdmissionLimits): Admission {
  const known = store.nodes.nicByMac(who.mac) !== null || (policy !== 'allow-list' && who.uuid != null && store.nodes.findByUuid(who.uuid) !== undefined);
  let count: { n: number; at: number } | null = null;
  if (!known) {
    const a = unknownMachineAnswer(policy, channel);
    if (a.answer !== 'register') return { admitted: false, answer: a.answer, reason: a.reason };
    if (limits && channel !== 'checkin') {
      count = unbootedCount(store);
      if (count.n >= limits.maxUnbootedDiscovered) {
        return {
          admitted: false,
          answer: 'refuse',
          reason: `not in the registry and ${count.n} discovered nodes have never booted (dhcp.maxUnbootedDiscovered is ${limits.maxUnbootedDiscovered})`,
          capped: true,
        };
      }
    }
  }
  const { node, created } = store.nodes.discover(who);
  if (created && count) count.n++;
  return { admitted: true, node, created };
}
