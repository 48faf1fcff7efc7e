// The lab state file: everything `lab up` created (namespace, processes, files), written
// before each thing is made, so `lab down` can remove it all even after a crash.
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';

/** A process the lab started: its PID and its start time (/proc/PID/stat field 22), so a
 *  reused PID is never mistaken for ours. */
export const labProcessSchema = z.object({ pid: z.number().int().positive(), startTicks: z.number().int().nonnegative() });
export type LabProcess = z.infer<typeof labProcessSchema>;

export const firmwareSchema = z.enum(['bios', 'uefi']);
export type Firmware = z.infer<typeof firmwareSchema>;

/** A VM's simulated BMC (`lab up --bmc ipmi`, src/lab/bmc.ts): ipmi_sim and its files. */
export const labBmcSchema = z.object({
  kind: z.literal('ipmi'),
  /** IPMI over LAN inside the lab namespace: 127.0.0.1 there is the lab's own loopback. */
  host: z.string(),
  port: z.number().int(),
  /** ipmi_sim's VM serial port, which QEMU's ipmi-bmc-extern connects to. */
  serialPort: z.number().int(),
  /** The QMP port (TCP, namespace loopback) the BMC's chassis_control drives the VM through. */
  qmpPort: z.number().int(),
  user: z.string(),
  passwordFile: z.string(),
  dir: z.string(),
  lanConf: z.string(),
  emulatorFile: z.string(),
  /** What the last `chassis bootdev` asked for (pxe, none, ...), as chassis_control recorded it. */
  bootFile: z.string(),
  /** Every power and boot-device change the BMC made, one timestamped line each. */
  eventLog: z.string(),
  process: labProcessSchema.nullable(),
});
export type LabBmc = z.infer<typeof labBmcSchema>;

export const labVmSchema = z.object({
  name: z.string(),
  mac: z.string(),
  uuid: z.string(),
  tap: z.string(),
  firmware: firmwareSchema,
  /** UEFI without an iPXE NIC ROM: firmware PXE -> TFTP iPXE -> HTTP (docs/netboot-notes.md pitfall 5). */
  chainload: z.boolean(),
  /** The USB key image the VM boots first (`lab up --usb-key`), if any. */
  usbKey: z.string().nullable().default(null),
  /** false: the NIC has no iPXE option ROM (`romfile=`). */
  nicRom: z.boolean().default(true),
  qmpSocket: z.string(),
  serialLog: z.string(),
  disk: z.string(),
  varsFile: z.string().nullable(),
  /** The full command (`ip netns exec NS timeout ... qemu-system-x86_64 ...`), for power-on. */
  argv: z.array(z.string()),
  process: labProcessSchema.nullable(),
  bmc: labBmcSchema.nullable().default(null),
});
export type LabVm = z.infer<typeof labVmSchema>;

export const labStateSchema = z.object({
  version: z.literal(1),
  namespace: z.string(),
  dir: z.string(),
  subnet: z.string(),
  address: z.string(),
  httpPort: z.number().int(),
  configFile: z.string(),
  createdAt: z.number(),
  headNode: labProcessSchema.nullable(),
  radvd: labProcessSchema.nullable(),
  /** `lab up --loss`: the nftables table (bridge family) dropping this share of UDP and TCP on br0. */
  loss: z.object({ percent: z.number().int().min(1).max(99), table: z.string() }).nullish(),
  /** The host's way to the lab dashboard: 127.0.0.1:port forwarded to the head node's unix socket (src/lab/dashboard-forward.mjs). */
  dashboard: z.object({ port: z.number().int().min(0).max(65535), process: labProcessSchema.nullable() }).nullish(),
  vms: z.array(labVmSchema),
});
export type LabState = z.infer<typeof labStateSchema>;

export const stateFileName = 'lab.json';

export function stateFileIn(dir: string): string {
  return join(dir, stateFileName);
}

/** Writes atomically (temp file + rename), so a crash never leaves half a state file. */
export function writeLabState(state: LabState): void {
  const file = stateFileIn(state.dir);
  writeFileSync(`${file}.tmp`, `${JSON.stringify(state, null, 2)}\n`);
  renameSync(`${file}.tmp`, file);
}

export class LabStateError extends Error {
  override readonly name = 'LabStateError';
}

/** The lab recorded in `dir`, or null when there is none. */
export function readLabState(dir: string): LabState | null {
  const file = stateFileIn(dir);
  if (!existsSync(file)) return null;
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new LabStateError(`${file}: not valid JSON (${(err as Error).message}); remove the namespace by hand with 'ip netns del'`);
  }
  const parsed = labStateSchema.safeParse(json);
  if (!parsed.success) throw new LabStateError(`${file}: not a lab state file: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  return parsed.data;
}
