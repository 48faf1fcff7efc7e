// Power drivers: how a rollout (or an operator) reboots a node. Each driver runs a real tool
// or protocol (docs/design.md "Rolling upgrades"): ipmitool, Redfish, ssh, QEMU's QMP socket.
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
  /**
   * Asks the firmware to boot from the network on the next boot only, without touching power.
   * Drivers that cannot (a VM always PXE-boots first, ssh has no firmware access) leave it out;
   * every driver that has it calls it itself before a power cycle or power on.
   */
  setNextBootNetwork?(): Promise<void>;
}

/** A power action that could not be carried out; `message` says what to check. */
export class PowerError extends Error {
  override readonly name = 'PowerError';
}

/** How a node's power is reached, as stored or configured (parsed at the edge with zod). */
// Numbers arrive as strings from `node set power.port=623` and as numbers from JSON.
const portField = z.coerce.number().int().min(1).max(65535);

/** Why `u` is not a Redfish service address (https://HOST[:PORT]), or null when it is one. */
function redfishUrlProblem(u: string): string | null {
  let url: URL;
  try {
    url = new URL(u);
  } catch {
    return `expected https://BMC[:PORT], got ${JSON.stringify(u)}`;
  }
  if (url.protocol !== 'https:') return 'expected an https:// URL (every Redfish request carries the credentials or a session token)';
  if (!['', '/', '/redfish/v1', '/redfish/v1/'].includes(url.pathname) || url.search || url.username) return 'expected https://BMC[:PORT] with no path, query or user (the driver finds /redfish/v1 itself)';
  return null;
}

export const powerSpecSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('qemu'),
    /** QMP unix socket of the VM (`-qmp unix:PATH,server=on,wait=off`). */
    qmpSocket: z.string().min(1),
    /**
     * How long a power cycle waits for the firmware's own reset before -no-reboot is restored
     * (power-qemu.ts powerCycle): SeaBIOS VMs need ~20 s under TCG, OVMF makes none.
     */
    guestResetWaitMs: z.coerce.number().int().min(0).max(120_000).optional(),
  }),
  z.object({
    kind: z.literal('ipmi'),
    /** The BMC's address (IPMI over LAN, RMCP+: ipmitool -I lanplus). */
    host: z.string().min(1).regex(/^[A-Za-z0-9.:_-]+$/, 'expected a host name or an IP address'),
    /** UDP port; 623 is the RMCP port (IPMI v2.0 §13.1). */
    port: portField.default(623),
    /** At most 16 bytes: the user name field of RAKP message 1 (IPMI v2.0 §13.20). */
    user: z.string().min(1).max(16),
    /**
     * A file holding the password on its first line. The password never goes into the spec, a
     * command line or a log: ipmitool reads it itself (`-f`, lib/ipmi_main.c ipmi_password_file_read).
     */
    passwordFile: z.string().min(1),
    /**
     * RMCP+ cipher suite (IPMI v2.0 §22.15.2, Table 22-20). 3 (RAKP-HMAC-SHA1, HMAC-SHA1-96,
     * AES-CBC-128) is what every IPMI 2.0 BMC has and what OpenIPMI's ipmi_sim accepts; 17
     * (SHA-256) is newer BMCs' default and ipmi_sim refuses it ("invalid authentication algorithm").
     */
    cipherSuite: z.coerce.number().int().min(0).max(255).default(3),
    /** uefi: the network boot is asked for as an EFI boot (boot flags parameter 5, byte 1 bit 5: IPMI v2.0 §28.12, Table 28-14). */
    firmware: z.enum(['bios', 'uefi']).default('bios'),
  }),
  z.object({
    kind: z.literal('redfish'),
    /**
     * The BMC's Redfish service, https://HOST[:PORT]. Plain http is refused: every request
     * carries the credentials or a session token (DSP0266 §"Security details": HTTPS required).
     */
    url: z.string().superRefine((u, ctx) => {
      const problem = redfishUrlProblem(u);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    }),
    /** The ComputerSystem's Id; without it, the one member of /redfish/v1/Systems. */
    systemId: z.string().min(1).regex(/^[A-Za-z0-9._-]+$/, 'expected a ComputerSystem Id (letters, digits, . _ -)').optional(),
    user: z.string().min(1),
    /** A file holding the password on its first line; the password never goes into the spec or a log. */
    passwordFile: z.string().min(1),
    /** session: a Redfish session (X-Auth-Token), deleted after each action; basic: HTTP Basic on every request (DSP0266 §"Authentication"). */
    auth: z.enum(['session', 'basic']).default('session'),
    /** PEM file: a CA that signed the BMC's certificate, or the BMC's own self-signed certificate. */
    caFile: z.string().min(1).optional(),
    /** SHA-256 fingerprint of the BMC's certificate (hex, colons optional): that certificate and no other is accepted. */
    certSha256: z
      .string()
      .transform((v) => v.replace(/[:\s]/g, '').toUpperCase())
      .refine((v) => /^[0-9A-F]{64}$/.test(v), 'expected 64 hex digits (openssl x509 -noout -fingerprint -sha256)')
      .optional(),
    /** Accept any certificate (a self-signed BMC nobody pinned): off unless asked for. */
    insecure: z.union([z.boolean(), z.enum(['true', 'false']).transform((v) => v === 'true')]).default(false),
    /** uefi / bios: the network boot is asked for as BootSourceOverrideMode UEFI / Legacy when the BMC offers it; unset, the mode is left as it is. */
    firmware: z.enum(['bios', 'uefi']).optional(),
  }),
  z.object({
    kind: z.literal('ssh'),
    /** The node's own address or name: its sshd runs the reboot command (no BMC involved). */
    host: z.string().min(1).regex(/^[A-Za-z0-9.:_-]+$/, 'expected a host name or an IP address').refine((h) => !h.startsWith('-'), 'expected a host name or an IP address'),
    port: portField.default(22),
    user: z.string().min(1).max(32).regex(/^[A-Za-z_][A-Za-z0-9_.-]*$/, 'expected a user name').default('root'),
    /** The private key's path; ssh reads it (-i), the key itself is never in the spec, a command line or a log. */
    keyFile: z.string().min(1),
    /** known_hosts file holding the node's host key: checked strictly (ssh_config(5) StrictHostKeyChecking=yes). */
    knownHostsFile: z.string().min(1),
    /** Add an unknown host's key to knownHostsFile on first contact (StrictHostKeyChecking=accept-new); a changed key is refused all the same. */
    trustOnFirstUse: z.union([z.boolean(), z.enum(['true', 'false']).transform((v) => v === 'true')]).default(false),
    /** Run by the node's login shell to reboot it; `reboot` exists on illumos (reboot(8)) and Linux. */
    command: z.string().min(1).default('reboot'),
    poweroffCommand: z.string().min(1).default('poweroff'),
    /** How long the node may take to stop answering ssh after the command. */
    downTimeoutMs: z.coerce.number().int().min(1000).max(3_600_000).default(120_000),
  }),
  z.object({
    kind: z.literal('manual'),
    /** Shown to the operator with the node's identity: where the machine is, which switch. */
    instructions: z.string().min(1).max(1000).optional(),
    /** How long `fleetboot node power` waits for the node's check-in after telling the operator. */
    checkinTimeoutMs: z.coerce.number().int().min(1000).max(86_400_000).default(1_800_000),
  }),
]);
export type PowerSpec = z.infer<typeof powerSpecSchema>;
