// The head-node config file: one JSON document, validated by zod at load time so that
// everything past the loader trusts its types (docs/style.md: parse, don't validate).
import { isIPv4 } from 'node:net';
import { z } from 'zod';

/** tftp.busyPollMicros when unset; also what a TftpServer built without config uses. */
export const TFTP_BUSY_POLL_MICROS = 50;

const ipv4 = z.string().refine((s) => isIPv4(s), { message: 'expected an IPv4 address like 10.0.0.1' });

/** `10.0.0.0/24`: an IPv4 network in CIDR notation. */
export const cidrSchema = z.string().refine(
  (s) => {
    const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d{1,2})$/.exec(s);
    return m !== null && isIPv4(m[1] ?? '') && Number(m[2]) <= 32;
  },
  { message: 'expected a CIDR subnet like 10.0.0.0/24' },
);

export const ipRangeSchema = z
  .object({ start: ipv4, end: ipv4 })
  .refine((r) => ipv4ToInt(r.start) <= ipv4ToInt(r.end), { message: 'range start is after its end' });

export const networkSchema = z
  .object({
    /** A name operators use in node configs (`admin`, `rack-b-admin`). */
    name: z.string().regex(/^[a-z][a-z0-9_-]{0,30}$/, 'expected a lowercase name like "admin"'),
    /** Local interface this network is served on; absent for networks reached only through relays. */
    interface: z.string().min(1).optional(),
    subnet: cidrSchema,
    /** The head node's own address on this network: what nodes are told to fetch from. */
    serverAddress: ipv4.optional(),
    gateway: ipv4.optional(),
    range: ipRangeSchema.optional(),
    resolvers: z.array(ipv4).default([]),
    dnsDomain: z.string().optional(),
    ntpServers: z.array(ipv4).default([]),
    /** Relay agent addresses (giaddr) whose requests belong to this network (RFC 2131 §4.3.1). */
    relayAddresses: z.array(ipv4).default([]),
    leaseSeconds: z.number().int().min(60).max(31_536_000).default(3600),
    mtu: z.number().int().min(576).max(9216).optional(),
  })
  .superRefine((n, ctx) => {
    const within = (ip: string): boolean => ipInSubnet(ip, n.subnet);
    for (const [field, ip] of [
      ['gateway', n.gateway],
      // A network reached only through relays has the head node's address on another subnet.
      ['serverAddress', n.interface === undefined && n.relayAddresses.length > 0 ? undefined : n.serverAddress],
      ['range.start', n.range?.start],
      ['range.end', n.range?.end],
    ] as const) {
      if (ip !== undefined && cidrSchema.safeParse(n.subnet).success && !within(ip)) {
        ctx.addIssue({ code: 'custom', path: field.split('.'), message: `${ip} is outside subnet ${n.subnet}` });
      }
    }
  });

export const configSchema = z
  .object({
    /** SQLite registry, API token and other state. */
    dataDir: z.string().min(1).default('./var'),
    platformImagesDir: z.string().min(1).default('./platform-images'),
    /** Where the iPXE binaries are (Debian package `ipxe`). */
    ipxeDir: z.string().min(1).default('/usr/lib/ipxe'),
    /** Defaults to the boot-templates/ folder shipped with fleetboot. */
    templatesDir: z.string().min(1).optional(),
    apiTokenFile: z.string().min(1).default('./var/api-token'),
    unknownNodePolicy: z.enum(['discover', 'ignore', 'allow-list']).default('discover'),
    http: z
      .object({
        listen: z.string().min(1).default('127.0.0.1'),
        port: z.number().int().min(0).max(65535).default(8080),
        /** Base URL nodes use to reach this head node; derived from the network's serverAddress when absent. */
        publicUrl: z.url().optional(),
        /**
         * Also serve HTTP on this unix socket (for a reverse proxy on the same host, or the
         * lab's dashboard forward from the host into its namespace); relative to the config.
         */
        unixSocket: z.string().min(1).max(100).optional(),
        /** A request's headers must arrive within this many seconds, or 408 (slowloris; docs/hardening.md "HTTP"). */
        headersTimeoutSeconds: z.number().int().min(1).max(600).default(10),
        /** A whole request (headers and body) must arrive within this many seconds, or 408. */
        requestTimeoutSeconds: z.number().int().min(1).max(3600).default(30),
        /** An /os download that moves no byte for this long is dropped and its descriptors closed. */
        downloadIdleSeconds: z.number().int().min(1).max(3600).default(30),
        /** stop() waits this long for requests in flight, then closes every connection. */
        stopGraceSeconds: z.number().int().min(0).max(600).default(3),
        /** Largest request head (request line and headers), in bytes: 431 past it. */
        maxHeaderBytes: z.number().int().min(1024).max(1024 * 1024).default(16 * 1024),
        /** Largest check-in body, in bytes (413 past it). */
        checkinBodyBytes: z.number().int().min(1024).max(16 * 1024 * 1024).default(256 * 1024),
        /**
         * Per source address token bucket over the boot-script and check-in routes: `burst`
         * requests at once, refilled at `perSecond`; past it, 429 with Retry-After. Sized for a
         * rack booting behind one relay or NAT (docs/hardening.md "HTTP"); perSecond 0 turns it off.
         */
        rateLimit: z
          .object({
            perSecond: z.number().min(0).max(100_000).default(50),
            burst: z.number().int().min(1).max(1_000_000).default(500),
          })
          .prefault({}),
      })
      // node:http refuses a headersTimeout longer than its requestTimeout at createServer.
      .refine((h) => h.headersTimeoutSeconds <= h.requestTimeoutSeconds, {
        path: ['headersTimeoutSeconds'],
        message: 'must not be longer than http.requestTimeoutSeconds (the headers are part of the request)',
      })
      .prefault({}),
    dhcp: z
      .object({
        mode: z.enum(['off', 'full', 'proxy']).default('off'),
        listen: z.string().min(1).default('0.0.0.0'),
        port: z.number().int().min(0).max(65535).default(67),
        /** PXE spec §2.2.3: ProxyDHCP also answers on 4011. */
        proxyPort: z.number().int().min(0).max(65535).default(4011),
        /** Port replies to relay agents go to (RFC 2131 §4.1 says 67; perfdhcp needs another). */
        relayReplyPort: z.number().int().min(1).max(65535).default(67),
        /** Port replies to clients go to (RFC 2131 §4.1: 68); tests move it. */
        clientPort: z.number().int().min(1).max(65535).default(68),
        /** How long an OFFERed address stays reserved for its client (RFC 2131 §4.3.1 leaves it to the server). */
        offerSeconds: z.number().int().min(5).max(3600).default(60),
        /** How long a DECLINEd address stays out of the pool (RFC 2131 §4.3.3: marked not available). */
        declineSeconds: z.number().int().min(60).max(31_536_000).default(3600),
        /** Name clients by option 61 (RFC 2131 §4.2) rather than by MAC; off because a PXE boot chain changes option 61 at each step. */
        matchClientId: z.boolean().default(false),
        /**
         * Most discovered-but-never-booted nodes DHCP registers under `unknownNodePolicy: discover`;
         * past it a new MAC gets no answer (docs/hardening.md "DHCP exhaustion"). Sized for a rack-up.
         */
        maxUnbootedDiscovered: z.number().int().min(0).max(1_000_000).default(1024),
      })
      .prefault({}),
    tftp: z
      .object({
        enabled: z.boolean().default(false),
        listen: z.string().min(1).default('0.0.0.0'),
        port: z.number().int().min(0).max(65535).default(69),
        /**
         * How long a transfer's thread polls for the client's ACK before sleeping for it
         * (microseconds; 0: never). See spin_recv in src/tftp/native/tftp_data.c.
         */
        busyPollMicros: z.number().int().min(0).max(1000).default(TFTP_BUSY_POLL_MICROS),
        /** Transfers one client address may hold at once (docs/hardening.md "TFTP"). */
        maxTransfersPerAddress: z.number().int().min(1).max(4096).default(32),
        /** Largest RFC 2349 `timeout` accepted (seconds); a larger one is left out of the OACK. */
        maxTimeoutSeconds: z.number().int().min(1).max(255).default(5),
        /** Longest one transfer may run, progress or not (seconds). */
        maxTransferSeconds: z.number().int().min(1).max(86_400).default(300),
      })
      .prefault({}),
    boot: z
      .object({
        /** iPXE binary for UEFI x64 firmware (option 93 = 7 or 9). */
        efiX64: z.string().min(1).default('snponly.efi'),
        /** iPXE binary for BIOS firmware (option 93 = 0). */
        bios: z.string().min(1).default('undionly.kpxe'),
        /** iPXE binary for UEFI arm64 (option 93 = 11); none by default. */
        efiArm64: z.string().min(1).optional(),
        /** Serial console nodes boot with: ttya = COM1 on SmartOS. */
        console: z.string().default('ttya'),
        consoleSpeed: z.number().int().positive().default(115200),
        /**
         * Boot storm admission (boot/boot-slots.ts, docs/admission.md): nodes fetching their platform
         * at once. Past it a node's iPXE waits and asks again, in the order nodes first asked.
         */
        admission: z
          .object({
            /** A number (0: no limit), or `auto`: the served interfaces' link speed / `perBootMbps`. */
            maxConcurrentBoots: z.union([z.literal('auto'), z.number().int().min(0)]).default('auto'),
            /** The share of the link one booting node should get, for `auto`. */
            perBootMbps: z.number().int().min(10).default(400),
            /** A slot whose node fetched nothing for this long is taken back. */
            holdSeconds: z.number().int().min(10).max(3600).default(300),
            /** A waiting node's wait is sized from the slots' turnover, within these bounds. */
            retryMinSeconds: z.number().int().min(1).max(600).default(1),
            retryMaxSeconds: z.number().int().min(1).max(600).default(20),
          })
          .refine((a) => a.retryMaxSeconds >= a.retryMinSeconds, { message: 'retryMaxSeconds must be at least retryMinSeconds', path: ['retryMaxSeconds'] })
          .prefault({}),
      })
      .prefault({}),
    nodes: z
      .object({
        /** A node not heard from for this long becomes `unknown`. */
        unknownAfterSeconds: z.number().int().positive().default(900),
      })
      .prefault({}),
    store: z
      .object({
        /** Boot events older than this many days are deleted by the store worker (docs/store.md "Retention"). */
        bootEventDays: z.number().int().min(1).max(3650).default(30),
        /** At most this many boot events are kept per node; the oldest go first. */
        bootEventsPerNode: z.number().int().min(100).max(10_000_000).default(10_000),
      })
      .prefault({}),
    networks: z.array(networkSchema).default([]),
    log: z
      .object({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') })
      .prefault({}),
  })
  .superRefine((c, ctx) => {
    const names = new Set<string>();
    c.networks.forEach((n, i) => {
      if (names.has(n.name)) ctx.addIssue({ code: 'custom', path: ['networks', i, 'name'], message: `duplicate network name "${n.name}"` });
      names.add(n.name);
    });
    if (c.dhcp.mode !== 'off' && c.networks.length === 0) {
      ctx.addIssue({ code: 'custom', path: ['dhcp', 'mode'], message: `"${c.dhcp.mode}" needs at least one entry in networks` });
    }
  });

export type FleetbootConfig = z.infer<typeof configSchema>;
export type NetworkConfig = z.infer<typeof networkSchema>;
export type ConfigInput = z.input<typeof configSchema>;

/**
 * A dotted quad as an unsigned 32-bit number; a missing or non-numeric part counts as 0.
 * A character loop, not split('.'): the DHCP server calls this for every packet, and an
 * array of strings per call showed up in its allocation profile.
 */
export function ipv4ToInt(ip: string): number {
  let n = 0;
  let parts = 0;
  let v = 0;
  let digits = true;
  for (let i = 0; i < ip.length && parts < 4; i++) {
    const c = ip.charCodeAt(i);
    if (c === 46) {
      n = n * 256 + (digits ? v & 255 : 0);
      parts++;
      v = 0;
      digits = true;
    } else if (c >= 48 && c <= 57) v = v * 10 + (c - 48);
    else digits = false;
  }
  if (parts < 4) {
    n = n * 256 + (digits ? v & 255 : 0);
    parts++;
  }
  for (; parts < 4; parts++) n *= 256;
  return n;
}

export function intToIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** Network address and prefix length of a CIDR string. */
export function parseCidr(cidr: string): { network: number; prefix: number; mask: number } {
  const [addr = '', len = '32'] = cidr.split('/');
  const prefix = Number(len);
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return { network: (ipv4ToInt(addr) & mask) >>> 0, prefix, mask };
}

export function ipInSubnet(ip: string, cidr: string): boolean {
  const { network, mask } = parseCidr(cidr);
  return ((ipv4ToInt(ip) & mask) >>> 0) === network;
}
