// Power drivers: how a rollout (or an operator) reboots a node. Each driver runs a real tool
// or protocol (DESIGN.md "Rolling upgrades"): ipmitool, Redfish, ssh, QEMU's QMP socket.
// The interface is deliberately small so a rollout never needs to know which one it holds.
import { z } from 'zod';

/** What a driver can say about the machine's power: `unknown` when it cannot tell. */
export type PowerState = 'on' | 'off' | 'unknown';

export interface PowerDriver {
  /** Short name for logs and `--json` output (`qemu`, `ipmi`, ...). */
  readonly kind: string;
  /** Hard reset if on, power on if off: the node boots again from the network. */
  powerCycle(): Promise<void>;
  /** Power off. `soft` asks the OS first (ACPI power button) and forces off after `graceMs`. */
  powerOff(options?: { soft?: boolean; graceMs?: number }): Promise<void>;
  powerOn(): Promise<void>;
  status(): Promise<PowerState>;
}

/** A power action that could not be carried out; `message` says what to check. */
export class PowerError extends Error {
  override readonly name = 'PowerError';
}

/** How a node's power is reached, as stored or configured (parsed at the edge with zod). */
export const powerSpecSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('qemu'),
    /** QMP unix socket of the VM (`-qmp unix:PATH,server=on,wait=off`). */
    qmpSocket: z.string().min(1),
  }),
]);
export type PowerSpec = z.infer<typeof powerSpecSchema>;
