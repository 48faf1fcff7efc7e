// The simulated nodes of the boot storm: every node of the plan walks the whole boot a real
// machine makes (docs/storm.md), all at once, from one process in the nodes' network namespace:
//   1. PXE firmware DHCP (DISCOVER/OFFER/REQUEST/ACK) with its own MAC (chaddr) and UUID;
//   2. the offered iPXE binary over TFTP, lock-step, the blksize the firmware asks;
//   3. iPXE's own DHCP (option 77 "iPXE", option 175), which names the boot script URL;
//   4. the script chain over HTTP, then every kernel / initrd / module URL in it;
//   5. the booted OS's check-in (POST /api/v1/nodes/checkin, as the agent sends it).
// One UDP socket on port 68 carries every node's DHCP (replies are broadcast: RFC 2131 §4.1 with
// the broadcast flag set, so the servers need no ARP entry per chaddr); after its lease a node
// uses its own address for TFTP and HTTP (every address of the pool is on the namespace's link,
// run.ts adds them before the storm). Run by run.ts:
//   ip netns exec NS node --import tsx bench/storm/nodes.ts storm PLAN.json
//   ip netns exec NS node --import tsx bench/storm/nodes.ts probe HOST PORT STREAMS SECONDS
//   ip netns exec NS node --import tsx bench/storm/nodes.ts render BASE_URL OUT_DIR PLAN.json
// Prints one JSON document on stdout (StormResult, or ProbeResult).
import { createHash, randomInt } from 'node:crypto';
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent, request, type IncomingMessage } from 'node:http';
import { connect } from 'node:net';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { decodePacket, type DhcpPacket } from '../../src/dhcp/packet.ts';

export type Firmware = 'bios' | 'uefi';
export type Step = 'dhcp-pxe' | 'tftp' | 'dhcp-ipxe' | 'script' | 'images' | 'checkin';
export const steps: readonly Step[] = ['dhcp-pxe', 'tftp', 'dhcp-ipxe', 'script', 'images', 'checkin'];

export interface PlanNode {
  mac: string;
  uuid: string;
  firmware: Firmware;
}

export interface StormPlan {
  nodes: PlanNode[];
  /** Every node gives up when the storm has run this long. */
  timeoutS: number;
  /** SHA-1 of each iPXE binary by name, to check the TFTP copy. */
  binaries: Record<string, string>;
  /** Platform stamp the check-in reports. */
  platform: string;
}

export interface NodeResult {
  mac: string;
  firmware: Firmware;
  ok: boolean;
  /** The step that failed, and why. */
  failed?: { step: Step; reason: string };
  /** ms since the storm began at which each finished step ended. */
  at: Partial<Record<Step, number>>;
  startMs: number;
  totalMs?: number;
  bytes: number;
  /** DHCP packets sent (firmware and iPXE together); more than 4 means retransmissions. */
  dhcpSent: number;
  tftpRetries: number;
  httpRequests: number;
  /** Wait scripts followed (`sleep` then `chain` again: fleetboot's admission), and their seconds. */
  scriptWaits: number;
  waitedMs: number;
}

export interface StormResult {
  nodes: NodeResult[];
  wallMs: number;
  /** Datagrams the kernel dropped on the nodes' DHCP socket (/proc/net/udp "drops"). */
  dhcpSocketDrops: number;
  /** CPU the simulated nodes' process used (user + system), seconds: it shares the machine with the head node. */
  clientCpuS: number;
}

export interface ProbeResult {
  bytes: number;
  seconds: number;
  mbPerS: number;
}

class StepError extends Error {
  constructor(
    readonly step: Step,
    message: string,
  ) {
    super(message);
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---- DHCP --------------------------------------------------------------------------------

const opt = (code: number, bytes: Buffer | number[] | string): Buffer => {
  const v = typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : Buffer.from(bytes);
  return Buffer.concat([Buffer.from([code, v.length]), v]);
};
const ipBytes = (s: string): number[] => s.split('.').map(Number);

/**
 * A client packet, byte by byte (RFC 2131 §2, RFC 2132), with the options each client sends
 * per docs/netboot-notes.md "What clients send": the firmware's PXE ROM, or iPXE after it.
 */
function dhcpPacket(node: PlanNode, xid: number, type: 1 | 3, ipxe: boolean, request?: { ip: string; server: string }): Buffer {
  const head = Buffer.alloc(240);
  head[0] = 1; // BOOTREQUEST
  head[1] = 1; // Ethernet
  head[2] = 6;
  head.writeUInt32BE(xid, 4);
  head.writeUInt16BE(0x8000, 10); // broadcast flag (RFC 2131 §4.1): PXE ROMs set it
  Buffer.from(node.mac.split(':').map((h) => parseInt(h, 16))).copy(head, 28);
  head.writeUInt32BE(0x63825363, 236);
  const arch = node.firmware === 'bios' ? 0 : 7;
  const uuid = Buffer.concat([Buffer.from([0]), Buffer.from(node.uuid.replace(/-/g, ''), 'hex')]);
  const options: Buffer[] = [opt(53, [type])];
  if (request) options.push(opt(50, ipBytes(request.ip)), opt(54, ipBytes(request.server)));
  options.push(
    opt(57, [0x05, 0xc0]),
    opt(93, [0, arch]), // RFC 4578 §2.1
    opt(94, node.firmware === 'bios' ? [1, 2, 1] : [1, 3, 10]),
    opt(97, uuid), // RFC 4578 §2.3: type 0 + 16 bytes
  );
  if (ipxe) {
    options.push(
      opt(60, `PXEClient:Arch:0000${arch}:UNDI:${node.firmware === 'bios' ? '002001' : '003010'}`),
      opt(77, 'iPXE'),
      opt(55, [1, 3, 6, 7, 12, 15, 17, 26, 43, 60, 66, 67, 119, 128, 129, 130, 131, 132, 133, 134, 135, 175, 203]),
      // iPXE feature flags (175): HTTP (0x13), PXE ext (0x10), bzImage (0x18), EFI (0x24).
      opt(175, node.firmware === 'bios' ? [0x13, 0x01, 0x01, 0x10, 0x01, 0x02, 0x18, 0x01, 0x01] : [0x13, 0x01, 0x01, 0x24, 0x01, 0x01]),
      opt(61, [1, ...node.mac.split(':').map((h) => parseInt(h, 16))]),
    );
  } else {
    options.push(
      opt(60, `PXEClient:Arch:0000${arch}:UNDI:${node.firmware === 'bios' ? '002001' : '003000'}`),
      opt(55, [1, 2, 3, 4, 5, 6, 12, 13, 15, 17, 18, 22, 23, 28, 40, 41, 42, 43, 50, 51, 54, 58, 59, 60, 66, 67, 97, 128, 129, 130, 131, 132, 133, 134, 135]),
    );
  }
  return Buffer.concat([head, ...options, Buffer.from([255])]);
}

type Waiter = (p: DhcpPacket) => void;

/** The nodes' one DHCP socket (port 68, every reply broadcast): replies go to the waiter of their xid. */
class DhcpPort {
  private readonly waiters = new Map<number, Waiter>();
  readonly socket: Socket = createSocket({ type: 'udp4', reuseAddr: true });

  async open(): Promise<void> {
    await new Promise<void>((res, rej) => {
      this.socket.once('error', rej);
      this.socket.bind(68, '0.0.0.0', () => res());
    });
    this.socket.setBroadcast(true);
    try {
      this.socket.setRecvBufferSize(8 * 1024 * 1024);
    } catch {
      // capped by net.core.rmem_max: the drops count below shows what that cost
    }
    this.socket.on('message', (msg: Buffer, _r: RemoteInfo) => {
      const d = decodePacket(msg);
      if (!d.ok || d.packet.op !== 2) return;
      this.waiters.get(d.packet.xid)?.(d.packet);
    });
  }

  send(b: Buffer): void {
    this.socket.send(b, 67, '255.255.255.255');
  }

  /**
   * Sends `packet` and resends it on each timeout of `schedule` (ms) until a reply of `want`
   * arrives (or a NAK). Returns the reply and how many packets were sent.
   */
  async exchange(xid: number, packet: Buffer, want: string, schedule: readonly number[], deadline: number): Promise<{ reply: DhcpPacket | null; sent: number }> {
    let sent = 0;
    let timer: NodeJS.Timeout | undefined;
    try {
      return await new Promise((resolve) => {
        this.waiters.set(xid, (p) => {
          const t = p.options.messageType;
          if (t === want || t === 'nak') resolve({ reply: p, sent });
        });
        const attempt = (i: number): void => {
          if (i >= schedule.length || performance.now() > deadline) return resolve({ reply: null, sent });
          this.send(packet);
          sent++;
          timer = setTimeout(() => attempt(i + 1), Math.min(schedule[i]!, Math.max(1, deadline - performance.now())));
        };
        attempt(0);
      });
    } finally {
      if (timer) clearTimeout(timer);
      this.waiters.delete(xid);
    }
  }
}

// PXE spec 2.1 §2.2.1: DISCOVER retransmitted with timeouts of 4, 8, 16 and 32 s.
const pxeSchedule = [4000, 8000, 16000, 32000];
// iPXE src/net/udp/dhcp.c: DHCP_DISC_START_TIMEOUT_SEC 1 doubling to DHCP_DISC_END_TIMEOUT_SEC 10.
const ipxeSchedule = [1000, 2000, 4000, 8000, 10000, 10000];

interface Lease {
  ip: string;
  server: string;
  nextServer: string;
  file: string;
}

async function dora(port: DhcpPort, node: PlanNode, ipxe: boolean, deadline: number, r: NodeResult): Promise<Lease> {
  const step: Step = ipxe ? 'dhcp-ipxe' : 'dhcp-pxe';
  const schedule = ipxe ? ipxeSchedule : pxeSchedule;
  for (let round = 0; round < 3; round++) {
    const xid = randomInt(1, 2 ** 31);
    const offer = await port.exchange(xid, dhcpPacket(node, xid, 1, ipxe), 'offer', schedule, deadline);
    r.dhcpSent += offer.sent;
    if (!offer.reply) throw new StepError(step, `no OFFER after ${offer.sent} DISCOVERs`);
    if (offer.reply.options.messageType === 'nak') continue;
    const server = offer.reply.options.serverId ?? offer.reply.siaddr;
    const ack = await port.exchange(xid, dhcpPacket(node, xid, 3, ipxe, { ip: offer.reply.yiaddr, server }), 'ack', schedule, deadline);
    r.dhcpSent += ack.sent;
    if (!ack.reply) throw new StepError(step, `no ACK after ${ack.sent} REQUESTs`);
    if (ack.reply.options.messageType === 'nak') continue; // RFC 2131 §4.4.1: NAK -> back to INIT
    const a = ack.reply;
    const file = a.options.bootfileName ?? a.file ?? offer.reply.options.bootfileName ?? offer.reply.file;
    if (!file) throw new StepError(step, 'the ACK names no boot file');
    const nextServer = a.siaddr !== '0.0.0.0' ? a.siaddr : (a.options.tftpServerName ?? server);
    return { ip: a.yiaddr, server, nextServer, file };
  }
  throw new StepError(step, 'NAK three times');
}

// ---- TFTP --------------------------------------------------------------------------------

/**
 * One lock-step RRQ (RFC 1350, blksize RFC 2348, tsize RFC 2349) from the node's own address,
 * resent after 1 s of silence, 6 tries per packet (PXE ROMs' TFTP retries are of this order).
 */
function tftpGet(localIp: string, server: string, file: string, blksize: number, deadline: number, r: NodeResult): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = createSocket('udp4');
    const parts: Buffer[] = [];
    let expected = 1;
    let tid = 0;
    let tries = 0;
    let last: Buffer = Buffer.concat([Buffer.from([0, 1]), Buffer.from([file, 'octet', 'tsize', '0', 'blksize', String(blksize), ''].join('\0'), 'latin1')]);
    let timer: NodeJS.Timeout | undefined;
    let done = false;
    const finish = (err?: Error): void => {
      if (done) return;
      done = true;
      if (timer) clearTimeout(timer);
      socket.close();
      if (err) reject(new StepError('tftp', err.message));
      else resolve(Buffer.concat(parts));
    };
    const ack = (n: number): Buffer => Buffer.from([0, 4, (n >> 8) & 0xff, n & 0xff]);
    const send = (): void => {
      socket.send(last, tid || 69, server);
      if (timer) clearTimeout(timer);
      timer = setTimeout(() => {
        if (++tries >= 6 || performance.now() > deadline) return finish(new Error(`timeout at block ${expected} (${tries} tries)`));
        r.tftpRetries++;
        send();
      }, 1000);
    };
    socket.on('error', (e) => finish(e));
    socket.on('message', (msg, rinfo) => {
      if (tid === 0) tid = rinfo.port;
      if (rinfo.port !== tid || msg.length < 4) return;
      const op = msg.readUInt16BE(0);
      if (op === 5) return finish(new Error(`TFTP ERROR ${msg.readUInt16BE(2)} ${msg.subarray(4, -1).toString('latin1')}`));
      if (op === 6) {
        last = ack(0);
        tries = 0;
        return send();
      }
      if (op !== 3) return;
      const block = msg.readUInt16BE(2);
      if (block !== (expected & 0xffff)) return send(); // duplicate: re-ACK (lock-step)
      const payload = msg.subarray(4);
      parts.push(Buffer.from(payload));
      last = ack(block);
      expected++;
      tries = 0;
      if (payload.length < blksize) {
        socket.send(last, tid, server, () => finish());
        return;
      }
      send();
    });
    socket.bind(0, localIp, () => send());
  });
}

// ---- HTTP --------------------------------------------------------------------------------

interface Fetched {
  status: number;
  body?: string;
  bytes: number;
}

/** One GET or POST from the node's address on its keep-alive connection (iPXE keeps one open). */
function http(agent: Agent, localIp: string, url: string, deadline: number, opts: { method?: string; body?: string; keep?: boolean } = {}): Promise<Fetched> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = request(
      {
        host: u.hostname,
        port: u.port || 80,
        path: `${u.pathname}${u.search}`,
        method: opts.method ?? 'GET',
        agent,
        localAddress: localIp,
        headers: { 'user-agent': 'iPXE/1.21.1', ...(opts.body ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(opts.body) } : {}) },
      },
      (res: IncomingMessage) => {
        let bytes = 0;
        const chunks: Buffer[] = [];
        const began = performance.now();
        // A connection the server closed mid-body: how far it got says whether it stalled.
        res.on('aborted', () => reject(new Error(`${u.pathname}: closed by the server after ${bytes} of ${res.headers['content-length'] ?? '?'} bytes, ${((performance.now() - began) / 1000).toFixed(0)} s`)));
        res.on('data', (c: Buffer) => {
          bytes += c.length;
          if (opts.keep) chunks.push(c);
        });
        res.on('end', () => {
          const want = Number(res.headers['content-length'] ?? bytes);
          if (res.complete === false || bytes !== want) return reject(new Error(`${u.pathname}: ${bytes} of ${want} bytes`));
          resolve({ status: res.statusCode ?? 0, bytes, ...(opts.keep ? { body: Buffer.concat(chunks).toString('utf8') } : {}) });
        });
        res.on('error', reject);
      },
    );
    // iPXE drops a connection that moves nothing for a while; so does every boot loader.
    req.setTimeout(Math.max(1000, Math.min(60_000, deadline - performance.now())), () => req.destroy(new Error(`${u.pathname}: no progress for 60 s`)));
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** iPXE's `${name}` settings the stage-1 script uses (iPXE docs, "settings"). */
function expand(text: string, vars: Record<string, string>): string {
  return text.replace(/\$\{([^}]+)\}/g, (_, name: string) => vars[name] ?? vars[name.split(':')[0]!] ?? '');
}

/** What an iPXE script asks to fetch: the `chain` target, or the `kernel` / `initrd` / `module` URLs. */
export function scriptImages(script: string, vars: Record<string, string>, base: string): { chain?: string; sleepS: number; images: { kind: string; url: string; args: string }[] } {
  const images: { kind: string; url: string; args: string }[] = [];
  let chain: string | undefined;
  let sleepS = 0;
  for (const raw of script.split('\n')) {
    const line = raw.trim();
    // A `sleep` before the chain is a wait the script asks for (fleetboot's wait.ipxe under
    // admission); one after it is on the chain's failure path (stage 1's retry).
    const nap = /^sleep\s+(\d+)/.exec(line);
    if (nap && chain === undefined) sleepS += Number(nap[1]);
    const set = /^set\s+(\S+?)(?::\w+)?\s+(.*)$/.exec(line);
    if (set) {
      vars[set[1]!] = expand(set[2]!, vars);
      continue;
    }
    const m = /^(chain|kernel|initrd|module|imgfetch)\s+(.*)$/.exec(line);
    if (!m) continue;
    // The first word that is not an --option is the URL (iPXE's image commands).
    const words = expand(m[2]!.replace(/\s(&&|\|\|).*$/, ''), vars).split(/\s+/);
    let i = 0;
    while (i < words.length && words[i]!.startsWith('-')) i += words[i] === '--name' || words[i] === '-n' ? 2 : 1;
    const url = new URL(words[i]!, base).toString();
    if (m[1] === 'chain') chain ??= url;
    else images.push({ kind: m[1]!, url, args: words.slice(i + 1).join(' ') });
  }
  return chain ? { chain, sleepS, images } : { sleepS, images };
}

/** A script's comment and echo lines, for a failure's reason. */
const summary = (script: string): string =>
  script
    .split('\n')
    .filter((l) => /^(#\s|echo )/.test(l))
    .slice(0, 3)
    .join(' / ')
    .slice(0, 200);

// ---- one node ----------------------------------------------------------------------------

async function bootNode(port: DhcpPort, node: PlanNode, plan: StormPlan, t0: number, deadline: number): Promise<NodeResult> {
  const startMs = randomInt(0, 1000); // power-on spread within a second
  const r: NodeResult = { mac: node.mac, firmware: node.firmware, ok: false, at: {}, startMs, bytes: 0, dhcpSent: 0, tftpRetries: 0, httpRequests: 0, scriptWaits: 0, waitedMs: 0 };
  await sleep(startMs);
  const mark = (s: Step): void => {
    r.at[s] = Math.round(performance.now() - t0);
  };
  let agent: Agent | undefined;
  try {
    const pxe = await dora(port, node, false, deadline, r);
    mark('dhcp-pxe');
    // Firmware asks the blksize its MTU allows: edk2 1468 (docs/netboot-notes.md), BIOS PXE ROMs 1456.
    const binary = await tftpGet(pxe.ip, pxe.nextServer, pxe.file, node.firmware === 'uefi' ? 1468 : 1456, deadline, r);
    r.bytes += binary.length;
    const want = plan.binaries[pxe.file];
    if (want && createHash('sha1').update(binary).digest('hex') !== want) throw new StepError('tftp', `${pxe.file}: copy differs`);
    mark('tftp');
    const ipxe = await dora(port, node, true, deadline, r);
    mark('dhcp-ipxe');
    if (!/^https?:\/\//.test(ipxe.file)) throw new StepError('dhcp-ipxe', `iPXE was offered ${JSON.stringify(ipxe.file)}, not a script URL`);
    agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const vars: Record<string, string> = {
      'net0/mac': node.mac,
      mac: node.mac,
      uuid: node.uuid,
      serial: '',
      buildarch: node.firmware === 'bios' ? 'i386' : 'x86_64',
      platform: node.firmware === 'bios' ? 'pcbios' : 'efi',
    };
    let url = ipxe.file;
    let images: { kind: string; url: string; args: string }[] = [];
    let lastScript = '';
    // Bounded: a chain of scripts (stage 1, node script) or a wait loop, until the deadline.
    for (let hop = 0; hop < 500 && performance.now() < deadline; hop++) {
      let got: Fetched | undefined;
      // fleetboot's stage 1 retries its chain 5 times, 5 s apart (boot-routes.ts): the same here.
      for (let attempt = 0; attempt < 5 && !got; attempt++) {
        r.httpRequests++;
        try {
          const f = await http(agent, ipxe.ip, url, deadline, { keep: true });
          if (f.status === 200) got = f;
          else if (attempt === 4) throw new StepError('script', `${new URL(url).pathname}: HTTP ${f.status}`);
        } catch (e) {
          if (e instanceof StepError || attempt === 4 || performance.now() > deadline) throw e instanceof StepError ? e : new StepError('script', (e as Error).message);
        }
        if (!got) await sleep(5000);
      }
      const parsed = scriptImages(got!.body!, vars, url);
      lastScript = got!.body!;
      r.bytes += got!.bytes;
      if (parsed.images.length) {
        images = parsed.images;
        break;
      }
      if (!parsed.chain) throw new StepError('script', `${new URL(url).pathname} boots nothing (no kernel, no chain): ${summary(got!.body!)}`);
      if (parsed.sleepS > 0) {
        r.scriptWaits++;
        r.waitedMs += parsed.sleepS * 1000;
        await sleep(Math.min(parsed.sleepS * 1000, Math.max(0, deadline - performance.now())));
      }
      url = parsed.chain;
    }
    if (!images.some((i) => i.kind === 'kernel')) throw new StepError('script', `${new URL(url).pathname} names no kernel: ${summary(lastScript)}`);
    mark('script');
    for (const img of images) {
      r.httpRequests++;
      let f: Fetched;
      try {
        f = await http(agent, ipxe.ip, img.url, deadline);
      } catch (e) {
        throw new StepError('images', (e as Error).message);
      }
      if (f.status !== 200) throw new StepError('images', `${new URL(img.url).pathname}: HTTP ${f.status}`);
      r.bytes += f.bytes;
    }
    mark('images');
    // The booted OS checks in as the agent does (boot-templates/agent.sh.hbs): fleetboot_url,
    // fleetboot_node and fleetboot_token from the kernel's arguments.
    const kernel = images.find((i) => i.kind === 'kernel')!;
    const arg = (k: string): string | undefined => new RegExp(`(?:^|[\\s,])${k}=([^,\\s"]+)`).exec(kernel.args)?.[1];
    const base = arg('fleetboot_url') ?? new URL(ipxe.file).origin;
    const token = arg('fleetboot_token');
    const body = JSON.stringify({
      uuid: node.uuid,
      hostname: null,
      nics: [{ mac: node.mac, name: 'eth0', ip: ipxe.ip }],
      cpu: { model: 'Simulated CPU', count: 32 },
      ramBytes: 256 * 2 ** 30,
      disks: [{ name: 'sda', sizeBytes: 960 * 10 ** 9, ssd: true, removable: false }],
      platform: plan.platform,
      bootTime: Math.floor(Date.now() / 1000),
      modules: {},
      node: arg('fleetboot_node') ?? null,
      agent: 'bench-storm',
    });
    r.httpRequests++;
    let c: Fetched;
    try {
      c = await http(agent, ipxe.ip, `${base}/api/v1/nodes/checkin${token ? `?token=${token}` : ''}`, deadline, { method: 'POST', body });
    } catch (e) {
      throw new StepError('checkin', (e as Error).message);
    }
    if (c.status < 200 || c.status > 299) throw new StepError('checkin', `HTTP ${c.status}`);
    mark('checkin');
    r.ok = true;
    r.totalMs = Math.round(performance.now() - t0) - startMs;
  } catch (e) {
    const step = e instanceof StepError ? e.step : (steps.find((s) => r.at[s] === undefined) ?? 'checkin');
    const reason = performance.now() > deadline ? `storm timeout (${(e as Error).message})` : (e as Error).message;
    r.failed = { step, reason };
  } finally {
    agent?.destroy();
  }
  return r;
}

/** Drops the kernel counted on sockets bound to port 68 in this namespace (proc(5) /proc/net/udp, last column). */
function dhcpDrops(): number {
  let n = 0;
  for (const line of readFileSync('/proc/net/udp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[1]?.endsWith(':0044')) n += Number(f.at(-1));
  }
  return n;
}

async function storm(planFile: string): Promise<StormResult> {
  const plan = JSON.parse(readFileSync(planFile, 'utf8')) as StormPlan;
  const port = new DhcpPort();
  await port.open();
  const t0 = performance.now();
  const deadline = t0 + plan.timeoutS * 1000;
  const nodes = await Promise.all(plan.nodes.map((n) => bootNode(port, n, plan, t0, deadline)));
  const wallMs = Math.round(performance.now() - t0);
  const drops = dhcpDrops();
  port.socket.close();
  const cpu = process.cpuUsage();
  return { nodes, wallMs, dhcpSocketDrops: drops, clientCpuS: (cpu.user + cpu.system) / 1e6 };
}

/** STREAMS parallel TCP connections reading for SECONDS what the probe server sends: the path's bound. */
async function probe(host: string, port: number, streams: number, seconds: number): Promise<ProbeResult> {
  const t0 = performance.now();
  const counts = await Promise.all(
    Array.from(
      { length: streams },
      () =>
        new Promise<number>((resolve, reject) => {
          let n = 0;
          const s = connect({ host, port }, () => undefined);
          s.on('data', (c: Buffer) => {
            n += c.length;
          });
          s.setTimeout(seconds * 1000 + 10_000, () => s.destroy(new Error('probe stalled')));
          setTimeout(() => {
            s.destroy();
            resolve(n);
          }, seconds * 1000);
          s.on('error', reject);
        }),
    ),
  );
  const sec = (performance.now() - t0) / 1000;
  const bytes = counts.reduce((a, b) => a + b, 0);
  return { bytes, seconds: sec, mbPerS: bytes / 1e6 / sec };
}

/**
 * Fetches the classic stack's static scripts ahead of its storm: stage 1 and, for every node of
 * the plan, the script fleetboot renders for it (what an operator would put on nginx instead).
 */
async function render(base: string, outDir: string, planFile: string): Promise<{ scripts: number }> {
  const plan = JSON.parse(readFileSync(planFile, 'utf8')) as StormPlan;
  mkdirSync(join(outDir, 'nodes'), { recursive: true });
  const get = async (path: string): Promise<string> => {
    const res = await fetch(`${base}${path}`);
    if (res.status !== 200) throw new Error(`${path}: HTTP ${res.status} ${await res.text()}`);
    return res.text();
  };
  writeFileSync(join(outDir, 'stage1.ipxe'), await get('/boot/stage1.ipxe'));
  for (const n of plan.nodes) {
    const q = new URLSearchParams({ mac: n.mac, uuid: n.uuid, serial: '', arch: n.firmware === 'bios' ? 'i386' : 'x86_64', platform: n.firmware === 'bios' ? 'pcbios' : 'efi' });
    writeFileSync(join(outDir, 'nodes', `${n.mac}.ipxe`), await get(`/boot/node.ipxe?${q.toString()}`));
  }
  return { scripts: plan.nodes.length };
}

const [mode, ...rest] = process.argv[1] && resolve(process.argv[1]) === import.meta.filename ? process.argv.slice(2) : [];
if (mode !== undefined) {
  const out =
    mode === 'render'
      ? await render(rest[0]!, rest[1]!, rest[2]!)
      : mode === 'storm'
        ? await storm(rest[0]!)
        : mode === 'probe'
          ? await probe(rest[0]!, Number(rest[1]), Number(rest[2]), Number(rest[3]))
          : null;
  if (out === null) {
    process.stderr.write(`nodes.ts: unknown mode ${JSON.stringify(mode)} (storm PLAN.json | probe HOST PORT STREAMS SECONDS | render BASE_URL OUT_DIR PLAN.json)\n`);
    process.exit(2);
  }
  // Exit once written: a socket the kernel still holds open must not keep the storm waiting.
  process.stdout.write(`${JSON.stringify(out)}\n`, () => process.exit(0));
}
