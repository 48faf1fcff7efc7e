// Powering a node through its own driver: `fleetboot node power`, POST /api/v1/nodes/:id/power
// and a rollout's reboot all come here. Every action that changes the machine's power is a
// `power` boot event on the node's timeline, whether it worked or not.
import type { NodeRecord } from '../store/nodes.ts';
import type { Store } from '../store/store.ts';
import { powerDriverFor } from './power-drivers.ts';
import { ManualPowerDriver, manualNodeOf } from './power-manual.ts';
import { PowerError, type PowerDriver, type PowerState } from './power.ts';

/** `pxe` sets "boot from the network next" only, where the driver can; the power is untouched. */
export const powerActions = ['status', 'on', 'off', 'cycle', 'pxe'] as const;
export type PowerAction = (typeof powerActions)[number];

export interface PowerResult {
  action: PowerAction;
  driver: string;
  /** The machine's power as the driver reports it after the action. */
  state: PowerState;
  /** The manual driver: what the operator was told to do (also in the boot event). */
  instructions?: string;
}

export type DriverFactory = (spec: unknown) => PowerDriver;

/**
 * Runs `action` on the node's power driver; throws PowerError naming the node and what to
 * check. `context` joins the boot event's detail (a rollout's id and purpose).
 */
export async function powerNode(
  store: Store,
  node: NodeRecord,
  action: PowerAction,
  driverFor: DriverFactory = powerDriverFor,
  context: Record<string, string | number> = {},
): Promise<PowerResult> {
  if (node.power === null) {
    throw new PowerError(`node ${node.id} has no power settings: set them with "fleetboot node set ${node.id} power.kind=ipmi power.host=BMC power.user=USER power.passwordFile=FILE" (or power.kind=redfish, ssh or manual: see "fleetboot node set --help"; power.kind=qemu power.qmpSocket=PATH for a lab VM)`);
  }
  let driver: PowerDriver;
  try {
    driver = driverFor(node.power);
  } catch (err) {
    throw new PowerError(`node ${node.id}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  const mac = node.nics.find((n) => n.isAdmin)?.mac ?? node.nics[0]?.mac ?? null;
  // A manual driver built from the spec alone (a rollout's) learns here which machine it names.
  // Its instructions go on the timeline when they are given, before any wait for the node, so
  // `node show` lists them ahead of the check-in they lead to.
  if (driver instanceof ManualPowerDriver) driver = driver.forNode(manualNodeOf(node));
  const told = driver instanceof ManualPowerDriver && (action === 'on' || action === 'off' || action === 'cycle') ? { instructions: driver.instructionsFor(action) } : null;
  try {
    if (told) store.events.record({ event: 'power', nodeId: node.id, mac, detail: { action, driver: driver.kind, state: 'unknown', ...told, ...context } });
    if (action === 'on') await driver.powerOn();
    else if (action === 'off') await driver.powerOff();
    else if (action === 'cycle') await driver.powerCycle();
    else if (action === 'pxe') {
      if (!driver.setNextBootNetwork) throw new PowerError(`the ${driver.kind} driver cannot choose the next boot device; ${driver.kind === 'qemu' ? 'a lab VM boots from the network first anyway' : driver.kind === 'ssh' ? 'ssh does not reach the firmware: set network boot first in its setup' : 'set network boot first in the firmware setup'}`);
      await driver.setNextBootNetwork();
    }
    const state = await driver.status();
    if (action !== 'status' && !told) store.events.record({ event: 'power', nodeId: node.id, mac, detail: { action, driver: driver.kind, state, ...context } });
    return { action, driver: driver.kind, state, ...told };
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    if (action !== 'status') store.events.record({ event: 'power', nodeId: node.id, mac, detail: { action, driver: driver.kind, error: message, ...context } });
    throw err instanceof PowerError ? new PowerError(`node ${node.id}: ${message}`, { cause: err }) : err;
  }
}
