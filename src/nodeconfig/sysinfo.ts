// What a node reports when it checks in (POST /api/v1/nodes/checkin): the agent's view of
// the hardware (SmartOS `sysinfo`, or /sys and /proc on Linux), parsed at the edge.
import { isIPv4 } from 'node:net';
import { z } from 'zod';
import { parseMac, type Mac } from '../mac.ts';
import { meaningfulUuid } from '../uuid.ts';
import { diskSchema } from './zpool.ts';

const macSchema = z.string().transform((s, ctx): Mac => {
  const mac = parseMac(s);
  if (!mac) {
    ctx.addIssue({ code: 'custom', message: `expected a MAC address, got ${JSON.stringify(s)}` });
    return z.NEVER;
  }
  return mac;
});

/**
 * How many of each list one check-in may hold. A discovery check-in needs no token, so
 * without bounds one request could register a node with thousands of MACs. The bounds sit
 * well above a large server: SmartOS sysinfo lists physical NICs (a 4-port card in each of
 * 8 slots is 32) and one disk per LUN after MPxIO (two 84-bay JBODs are 168).
 */
export const checkinBounds = { nics: 64, disks: 256, modules: 64 } as const;

/**
 * An array of at most `max` items, its length checked before any item is parsed: a list far
 * over the bound is refused with one issue naming the field, not one issue per item.
 */
function boundedList<T extends z.ZodType>(item: T, max: number, what: string) {
  return z
    .array(z.unknown())
    .max(max, `at most ${max} ${what} (see docs/hardening.md, "Check-in bounds")`)
    .pipe(z.array(item));
}

export const checkinSchema = z.strictObject({
  /** SMBIOS UUID; all-zero UUIDs (firmware without one) count as none. */
  uuid: z
    .string()
    .regex(/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/, 'expected a UUID')
    .nullable()
    .transform((u) => meaningfulUuid(u)),
  hostname: z.string().max(253).nullable().default(null),
  nics: boundedList(
    z.strictObject({
      mac: macSchema,
      name: z.string().max(64).nullable().default(null),
      ip: z.string().refine((s) => isIPv4(s), 'expected an IPv4 address').nullable().default(null),
    }),
    checkinBounds.nics,
    'NICs',
  ).refine((nics) => nics.length >= 1, 'at least one NIC is needed'),
  cpu: z.strictObject({ model: z.string().max(256), count: z.number().int().min(1).max(4096) }),
  ramBytes: z.number().int().min(0),
  disks: boundedList(diskSchema, checkinBounds.disks, 'disks').default([]),
  /** The platform stamp (or Linux platform name) the node is running. */
  platform: z.string().max(128).nullable(),
  /** Boot time, seconds since the epoch (/proc/stat btime, SmartOS `Boot Time`). */
  bootTime: z.number().int().min(0).max(2 ** 40),
  /** SHA-1 hex of each config module the node found at boot (/networking.json, /system/boot/*). */
  modules: z
    .record(z.string(), z.unknown())
    .refine((m) => Object.keys(m).length <= checkinBounds.modules, `at most ${checkinBounds.modules} modules (see docs/hardening.md, "Check-in bounds")`)
    .pipe(z.record(z.string().regex(/^[\w.-]{1,64}$/, 'expected a module name'), z.string().regex(/^[0-9a-f]{40}$/, 'expected SHA-1 hex')))
    .default({}),
  /** The node id fleetboot gave in `fleetboot_node=`, when it booted with one. */
  node: z.string().max(64).nullable().default(null),
  agent: z.string().max(64).nullable().default(null),
});
export type Checkin = z.infer<typeof checkinSchema>;

/** What is kept in nodes.sysinfo: the report minus the routing fields. */
export interface StoredSysinfo {
  uuid: string | null;
  hostname: string | null;
  nics: { mac: Mac; name: string | null; ip: string | null }[];
  cpu: { model: string; count: number };
  ramBytes: number;
  disks: z.infer<typeof diskSchema>[];
  platform: string | null;
  bootTime: number;
  modules: Record<string, string>;
  agent: string | null;
  reportedAt: number;
}

export const storedSysinfoSchema = z.object({
  disks: z.array(diskSchema).default([]),
  cpu: z.object({ model: z.string(), count: z.number() }).optional(),
  ramBytes: z.number().optional(),
  modules: z.record(z.string(), z.string()).default({}),
});

/** The disks a node last reported, or [] when it never checked in. */
export function reportedDisks(sysinfo: unknown): z.infer<typeof diskSchema>[] {
  const r = storedSysinfoSchema.safeParse(sysinfo);
  return r.success ? r.data.disks : [];
}
