// A node's power driver from its stored or configured spec (zod-parsed at this edge). Only
// `qemu` exists so far; ipmi/redfish/ssh/manual join the union in power.ts as they are written.
import { PowerError, powerSpecSchema, type PowerDriver } from './power.ts';
import { QemuPowerDriver, type QemuPowerOptions } from './power-qemu.ts';

export function powerDriverFor(spec: unknown, extra: Pick<QemuPowerOptions, 'relaunch' | 'timeoutMs'> = {}): PowerDriver {
  const parsed = powerSpecSchema.safeParse(spec);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new PowerError(`power spec: ${issue ? `${issue.path.map(String).join('.') || '(top level)'}: ${issue.message}` : 'invalid'}`);
  }
  switch (parsed.data.kind) {
    case 'qemu':
      return new QemuPowerDriver({ qmpSocket: parsed.data.qmpSocket, ...extra });
  }
}
