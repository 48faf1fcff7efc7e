// A node's power driver from its stored or configured spec (zod-parsed at this edge): `qemu`
// (a lab VM's QMP socket), `ipmi` (a BMC through ipmitool), `redfish`, `ssh` (the node's own
// reboot command over ssh) and `manual` (an operator at the machine).
import type { Logger } from '../log.ts';
import { PowerError, powerSpecSchema, type PowerDriver } from './power.ts';
import { IpmiPowerDriver, type IpmiPowerOptions } from './power-ipmi.ts';
import { QemuPowerDriver, type QemuPowerOptions } from './power-qemu.ts';
import { RedfishPowerDriver, type RedfishPowerOptions } from './power-redfish.ts';
import { SshPowerDriver, type SshPowerOptions } from './power-ssh.ts';
import { ManualPowerDriver, type ManualPowerOptions } from './power-manual.ts';

/** What the caller adds to a spec: how to run things here, never what the spec says. */
export type PowerDriverExtra = Pick<QemuPowerOptions, 'relaunch' | 'timeoutMs'> & {
  ipmi?: Pick<IpmiPowerOptions, 'ipmitool' | 'wrapper' | 'callTimeoutMs' | 'attempts' | 'retryDelayMs' | 'settleTimeoutMs' | 'pollIntervalMs'>;
  redfish?: Pick<RedfishPowerOptions, 'log' | 'callTimeoutMs' | 'attempts' | 'retryDelayMs' | 'settleTimeoutMs' | 'pollIntervalMs' | 'taskTimeoutMs'>;
  ssh?: Pick<SshPowerOptions, 'ssh' | 'wrapper' | 'log' | 'connectTimeoutMs' | 'callTimeoutMs' | 'attempts' | 'retryDelayMs' | 'pollIntervalMs'>;
  /** The node to name, and for a caller that waits (the CLI) where to tell and how to wait. */
  manual?: Pick<ManualPowerOptions, 'node' | 'tell' | 'waitForCheckin' | 'log'>;
};

/** The logger every driver that logs gets: one child per node, so its lines carry `node` and `mac`. */
export function powerLogging(log: Logger): Pick<PowerDriverExtra, 'redfish' | 'ssh' | 'manual'> {
  return { redfish: { log }, ssh: { log }, manual: { log } };
}

export function powerDriverFor(spec: unknown, extra: PowerDriverExtra = {}): PowerDriver {
  const parsed = powerSpecSchema.safeParse(spec);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new PowerError(`power spec: ${issue ? `${issue.path.map(String).join('.') || '(top level)'}: ${issue.message}` : 'invalid'}`);
  }
  const { ipmi, redfish, ssh, manual, ...qemu } = extra;
  switch (parsed.data.kind) {
    case 'qemu':
      return new QemuPowerDriver({
        qmpSocket: parsed.data.qmpSocket,
        ...(parsed.data.guestResetWaitMs !== undefined ? { guestResetWaitMs: parsed.data.guestResetWaitMs } : {}),
        ...qemu,
      });
    case 'ipmi':
      return new IpmiPowerDriver({ ...parsed.data, ...ipmi });
    case 'redfish':
      return new RedfishPowerDriver({ ...parsed.data, ...redfish });
    case 'ssh':
      return new SshPowerDriver({ ...parsed.data, ...ssh });
    case 'manual':
      return new ManualPowerDriver({ ...parsed.data, ...manual });
  }
}
