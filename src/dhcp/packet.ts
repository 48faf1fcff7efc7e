// DHCPv4 packet codec (RFC 2131 §2 message format, RFC 2132 options).
//
// Why our own codec and not npm's `dhcp` package: it was measured unfit
// for PXE (docs/netboot-notes.md): it never replies to relays, drops options 77, 82,
// 93, 94, 97 and 175 as unknown, leaves the BOOTP `file` field empty and allocates in
// O(n²). This codec is small, typed at the edge (docs/style.md "parse, don't validate") and
// keeps every option it does not know as raw bytes, so nothing a client sent is lost.
//
// decodePacket never throws: a malformed packet comes back as `{ ok: false, reason }` so
// the socket loop can count it and move on.

import { ipv4ToInt } from '../config/schema.ts';

export const MAGIC_COOKIE = 0x63825363; // RFC 2131 §3: 99.130.83.99
const FIXED_LEN = 236; // op..file, RFC 2131 §2 figure 1
const MIN_BOOTP_LEN = 300; // RFC 1542 §2.1: relays may drop BOOTP messages shorter than 300 bytes

export const BootOp = { request: 1, reply: 2 } as const;

/** RFC 2132 §9.6 option 53 values. */
export const MessageType = {
  discover: 1,
  offer: 2,
  request: 3,
  decline: 4,
  ack: 5,
  nak: 6,
  release: 7,
  inform: 8,
} as const;
export type MessageTypeName = keyof typeof MessageType;
const messageTypeNames = new Map<number, MessageTypeName>(
  (Object.entries(MessageType) as [MessageTypeName, number][]).map(([k, v]) => [v, k]),
);

/** Option codes this codec types (the rest travel as bytes in `other`). */
export const Opt = {
  pad: 0,
  subnetMask: 1,
  routers: 3,
  domainServers: 6,
  hostname: 12,
  domainName: 15,
  interfaceMtu: 26,
  broadcastAddress: 28,
  ntpServers: 42,
  vendorSpecific: 43,
  requestedAddress: 50,
  leaseSeconds: 51,
  overload: 52,
  messageType: 53,
  serverId: 54,
  parameterRequestList: 55,
  message: 56,
  maxMessageSize: 57,
  renewalSeconds: 58,
  rebindingSeconds: 59,
  vendorClassId: 60,
  clientId: 61,
  tftpServerName: 66,
  bootfileName: 67,
  userClass: 77,
  relayAgentInfo: 82,
  clientArch: 93,
  clientNdi: 94,
  clientUuid: 97,
  ipxeEncap: 175,
  end: 255,
} as const;

/** RFC 3046 §2.0: option 82 as received; `raw` is echoed back verbatim (§2.2). */
export interface RelayAgentInfo {
  circuitId: Buffer | null;
  remoteId: Buffer | null;
  raw: Buffer;
}

/** RFC 4578 §2.2 option 94: UNDI version of the client's network interface. */
export interface ClientNdi {
  type: number;
  major: number;
  minor: number;
}

export interface DhcpOptions {
  subnetMask?: string;
  routers?: string[];
  domainServers?: string[];
  hostname?: string;
  domainName?: string;
  interfaceMtu?: number;
  broadcastAddress?: string;
  ntpServers?: string[];
  /** Option 43 content; for PXE it holds PXE sub-options (PXE spec §2.4). */
  vendorSpecific?: Buffer;
  requestedAddress?: string;
  leaseSeconds?: number;
  messageType?: MessageTypeName;
  serverId?: string;
  parameterRequestList?: number[];
  message?: string;
  maxMessageSize?: number;
  renewalSeconds?: number;
  rebindingSeconds?: number;
  vendorClassId?: string;
  clientId?: Buffer;
  tftpServerName?: string;
  bootfileName?: string;
  /** Option 77. iPXE sends the raw string `iPXE`, not RFC 3004's length-prefixed list (docs/netboot-notes.md). */
  userClass?: Buffer;
  relayAgentInfo?: RelayAgentInfo;
  /** RFC 4578 §2.1 option 93: a list of 16-bit architecture types. */
  clientArch?: number[];
  clientNdi?: ClientNdi;
  /** RFC 4578 §2.3 option 97: type 0 + 16-byte UUID, as a lowercase UUID string. */
  clientUuid?: string;
  /** Option 175: iPXE encapsulated options (features / settings), kept as bytes. */
  ipxeEncap?: Buffer;
  /** Every option not typed above, by code, content bytes as received. */
  other: Map<number, Buffer>;
}

export interface DhcpPacket {
  op: number;
  htype: number;
  hlen: number;
  hops: number;
  xid: number;
  secs: number;
  flags: number;
  ciaddr: string;
  yiaddr: string;
  siaddr: string;
  giaddr: string;
  /** Client hardware address, `hlen` bytes. */
  chaddr: Buffer;
  sname: string;
  file: string;
  options: DhcpOptions;
}

export const BROADCAST_FLAG = 0x8000; // RFC 2131 §2 figure 2

export type DecodeResult = { ok: true; packet: DhcpPacket } | { ok: false; reason: string };

class Malformed extends Error {}

const ipAt = (b: Buffer, o: number): string => `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`;

// The typed readers take the option's bytes as (buffer, offset, length), so an option that
// appears once (nearly all of them) is read in place from the packet, with no Buffer view.
function ipList(code: number, b: Buffer, o: number, len: number): string[] {
  if (len === 0 || len % 4 !== 0) throw new Malformed(`option ${code}: length ${len} is not a multiple of 4`);
  const out: string[] = [];
  for (let i = 0; i < len; i += 4) out.push(ipAt(b, o + i));
  return out;
}

function oneIp(code: number, b: Buffer, o: number, len: number): string {
  if (len !== 4) throw new Malformed(`option ${code}: length ${len}, expected 4`);
  return ipAt(b, o);
}

function u32(code: number, b: Buffer, o: number, len: number): number {
  if (len !== 4) throw new Malformed(`option ${code}: length ${len}, expected 4`);
  return b.readUInt32BE(o);
}

function u16(code: number, b: Buffer, o: number, len: number): number {
  if (len !== 2) throw new Malformed(`option ${code}: length ${len}, expected 2`);
  return b.readUInt16BE(o);
}

function text(b: Buffer, o = 0, len = b.length - o): string {
  // RFC 2132 §2: strings are not NUL-terminated, but some clients add one anyway.
  let end = o + len;
  while (end > o && b[end - 1] === 0) end--;
  return b.toString('latin1', o, end);
}

/** A copy of len bytes at o: decoded Buffers must not share the caller's receive buffer. */
function copyOf(b: Buffer, o: number, len: number): Buffer {
  const out = Buffer.allocUnsafe(len);
  b.copy(out, 0, o, o + len);
  return out;
}

/** Sub-options in RFC 2132 §8.4 / RFC 3046 §2.0 form: code, length, data. */
export function parseSubOptions(v: Buffer): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  let i = 0;
  while (i < v.length) {
    const code = v[i]!;
    if (code === 0) {
      i++;
      continue;
    }
    if (code === 255) break;
    if (i + 1 >= v.length) throw new Malformed('sub-option header past the end');
    const len = v[i + 1]!;
    if (i + 2 + len > v.length) throw new Malformed(`sub-option ${code} runs past the end`);
    out.set(code, v.subarray(i + 2, i + 2 + len));
    i += 2 + len;
  }
  return out;
}

/** Builds code/length/value sub-options (used for option 43 and 175 content). */
export function encodeSubOptions(subs: [number, Buffer][]): Buffer {
  return Buffer.concat(subs.flatMap(([code, v]) => [Buffer.from([code, v.length]), v]));
}

function formatUuid(b: Buffer): string {
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

// Where each option of the packet being decoded lies, in arrays reused from packet to packet
// (decodePacket is synchronous, so one scan is never interleaved with another):
// `optCount[code]` is 0, 1 or 2 (seen more than once); the first occurrence is at
// `optAt[code]` for `optLen[code]` bytes; `optOrder` lists codes in first-seen order. Only a
// code that appears twice (RFC 3396 §6 splitting) gets its parts kept in a Map. This replaced
// a Map, an array and a Buffer view per option, a tenth of the server's allocation at
// boot-storm rates.
const optCount = new Uint8Array(256);
const optAt = new Int32Array(256);
const optLen = new Int32Array(256);
const optOrder = new Uint8Array(256);
let nOrder = 0;
let split: Map<number, Buffer[]> | null = null;

function resetScan(): void {
  for (let i = 0; i < nOrder; i++) optCount[optOrder[i]!] = 0;
  nOrder = 0;
  split = null;
}

/** Walks one options area, noting each option's place (RFC 3396 §6: the same code again concatenates). */
function scanOptions(b: Buffer, start: number, end: number): void {
  let i = start;
  while (i < end) {
    const code = b[i]!;
    if (code === Opt.pad) {
      i++;
      continue;
    }
    if (code === Opt.end) return;
    if (i + 1 >= end) throw new Malformed(`option ${code}: length byte past the end`);
    const n = b[i + 1]!;
    if (i + 2 + n > end) throw new Malformed(`option ${code}: length ${n} runs past the end`);
    const seen = optCount[code]!;
    if (seen === 0) {
      optAt[code] = i + 2;
      optLen[code] = n;
      optOrder[nOrder++] = code;
    } else {
      split ??= new Map();
      const parts = split.get(code);
      if (parts) parts.push(b.subarray(i + 2, i + 2 + n));
      else split.set(code, [b.subarray(optAt[code]!, optAt[code]! + optLen[code]!), b.subarray(i + 2, i + 2 + n)]);
    }
    optCount[code] = seen === 0 ? 1 : 2;
    i += 2 + n;
  }
  // RFC 2131 §3: the options field ends with option 255; running off the end without it is
  // tolerated in the sname/file overload areas but not in the main area (checked by caller).
}

function typeOptions(b: Buffer): DhcpOptions {
  const o = noOptions();
  for (let k = 0; k < nOrder; k++) {
    const code = optOrder[k]!;
    // The option's bytes: in place in the packet, or its parts joined when it was split.
    let buf = b;
    let off = optAt[code]!;
    let n = optLen[code]!;
    if (optCount[code]! > 1) {
      buf = Buffer.concat(split!.get(code)!);
      off = 0;
      n = buf.length;
    }
    switch (code) {
      case Opt.subnetMask: o.subnetMask = oneIp(code, buf, off, n); break;
      case Opt.routers: o.routers = ipList(code, buf, off, n); break;
      case Opt.domainServers: o.domainServers = ipList(code, buf, off, n); break;
      case Opt.hostname: o.hostname = text(buf, off, n); break;
      case Opt.domainName: o.domainName = text(buf, off, n); break;
      case Opt.interfaceMtu: o.interfaceMtu = u16(code, buf, off, n); break;
      case Opt.broadcastAddress: o.broadcastAddress = oneIp(code, buf, off, n); break;
      case Opt.ntpServers: o.ntpServers = ipList(code, buf, off, n); break;
      case Opt.vendorSpecific: o.vendorSpecific = copyOf(buf, off, n); break;
      case Opt.requestedAddress: o.requestedAddress = oneIp(code, buf, off, n); break;
      case Opt.leaseSeconds: o.leaseSeconds = u32(code, buf, off, n); break;
      case Opt.overload: break; // consumed by decodePacket
      case Opt.messageType: {
        const name = n === 1 ? messageTypeNames.get(buf[off]!) : undefined;
        if (!name) throw new Malformed(`option 53: unknown message type ${buf.toString('hex', off, off + n)}`);
        o.messageType = name;
        break;
      }
      case Opt.serverId: o.serverId = oneIp(code, buf, off, n); break;
      case Opt.parameterRequestList: {
        const prl: number[] = [];
        for (let i = 0; i < n; i++) prl.push(buf[off + i]!);
        o.parameterRequestList = prl;
        break;
      }
      case Opt.message: o.message = text(buf, off, n); break;
      case Opt.maxMessageSize: {
        const size = u16(code, buf, off, n);
        if (size < 576) throw new Malformed(`option 57: ${size} is below the 576-byte minimum (RFC 2132 §9.10)`);
        o.maxMessageSize = size;
        break;
      }
      case Opt.renewalSeconds: o.renewalSeconds = u32(code, buf, off, n); break;
      case Opt.rebindingSeconds: o.rebindingSeconds = u32(code, buf, off, n); break;
      case Opt.vendorClassId: o.vendorClassId = text(buf, off, n); break;
      case Opt.clientId:
        if (n < 2) throw new Malformed('option 61: shorter than 2 bytes (RFC 2132 §9.14)');
        o.clientId = copyOf(buf, off, n);
        break;
      case Opt.tftpServerName: o.tftpServerName = text(buf, off, n); break;
      case Opt.bootfileName: o.bootfileName = text(buf, off, n); break;
      case Opt.userClass: o.userClass = copyOf(buf, off, n); break;
      case Opt.relayAgentInfo: {
        const raw = copyOf(buf, off, n);
        const subs = parseSubOptions(raw);
        o.relayAgentInfo = { circuitId: subs.get(1) ?? null, remoteId: subs.get(2) ?? null, raw };
        break;
      }
      case Opt.clientArch: {
        if (n === 0 || n % 2 !== 0) throw new Malformed(`option 93: length ${n} is not a multiple of 2`);
        const archs: number[] = [];
        for (let i = 0; i < n; i += 2) archs.push(buf.readUInt16BE(off + i));
        o.clientArch = archs;
        break;
      }
      case Opt.clientNdi:
        if (n !== 3) throw new Malformed(`option 94: length ${n}, expected 3`);
        o.clientNdi = { type: buf[off]!, major: buf[off + 1]!, minor: buf[off + 2]! };
        break;
      case Opt.clientUuid:
        // RFC 4578 §2.3: type 0 then 16 bytes. Some firmware sends only the 16 bytes.
        if (n === 17) o.clientUuid = formatUuid(buf.subarray(off + 1, off + 17));
        else if (n === 16) o.clientUuid = formatUuid(buf.subarray(off, off + 16));
        else throw new Malformed(`option 97: length ${n}, expected 17`);
        break;
      case Opt.ipxeEncap: o.ipxeEncap = copyOf(buf, off, n); break;
      default: o.other.set(code, copyOf(buf, off, n));
    }
  }
  return o;
}

/** Parses one UDP payload; never throws. */
export function decodePacket(b: Buffer): DecodeResult {
  try {
    if (b.length < FIXED_LEN + 4) return { ok: false, reason: `truncated: ${b.length} bytes` };
    if (b.readUInt32BE(FIXED_LEN) !== MAGIC_COOKIE) return { ok: false, reason: 'wrong magic cookie' };
    const op = b[0]!;
    if (op !== BootOp.request && op !== BootOp.reply) return { ok: false, reason: `bad op ${op}` };
    const hlen = b[2]!;
    if (hlen === 0 || hlen > 16) return { ok: false, reason: `bad hlen ${hlen}` };
    resetScan();
    const optStart = FIXED_LEN + 4;
    // The main area must end with option 255 (RFC 2131 §4.1); find it while scanning.
    scanOptions(b, optStart, b.length);
    if (!hasEnd(b, optStart, b.length)) return { ok: false, reason: 'options area has no end option' };
    // RFC 2132 §9.3: option 52 says the file (1), sname (2) or both (3) fields hold options too.
    let fileUsed = false;
    let snameUsed = false;
    if (optCount[Opt.overload]! > 0) {
      const n = optLen[Opt.overload]!;
      const v = b[optAt[Opt.overload]!]!;
      if (n !== 1 || v < 1 || v > 3) return { ok: false, reason: 'option 52: bad overload value' };
      fileUsed = (v & 1) !== 0;
      snameUsed = (v & 2) !== 0;
      // RFC 2131 §4.1: file is read before sname.
      if (fileUsed) scanOptions(b, 108, 236);
      if (snameUsed) scanOptions(b, 44, 108);
    }
    const packet: DhcpPacket = {
      op,
      htype: b[1]!,
      hlen,
      hops: b[3]!,
      xid: b.readUInt32BE(4),
      secs: b.readUInt16BE(8),
      flags: b.readUInt16BE(10),
      ciaddr: ipAt(b, 12),
      yiaddr: ipAt(b, 16),
      siaddr: ipAt(b, 20),
      giaddr: ipAt(b, 24),
      chaddr: Buffer.from(b.subarray(28, 28 + hlen)),
      // RFC 2131 §2: sname and file are null-terminated, so they hold at most 63 and 127
      // characters; a field filled to its end is read as far as that, as encodePacket writes.
      sname: snameUsed ? '' : text(cstr(b, 44, 107)),
      file: fileUsed ? '' : text(cstr(b, 108, 235)),
      options: typeOptions(b),
    };
    return { ok: true, packet };
  } catch (err) {
    if (err instanceof Malformed) return { ok: false, reason: err.message };
    return { ok: false, reason: `undecodable: ${(err as Error).message}` };
  }
}

function hasEnd(b: Buffer, start: number, end: number): boolean {
  let i = start;
  while (i < end) {
    const code = b[i]!;
    if (code === Opt.end) return true;
    if (code === Opt.pad) i++;
    else i += 2 + b[i + 1]!;
  }
  return false;
}

function cstr(b: Buffer, start: number, end: number): Buffer {
  const nul = b.indexOf(0, start);
  return b.subarray(start, nul === -1 || nul > end ? end : nul);
}

// Encoding writes straight into one reused scratch buffer and copies the result out once:
// no Buffer per option on the reply path (every OFFER/ACK goes through here).
let scratch = Buffer.alloc(4096);
let at = 0;

function ensure(n: number): void {
  if (at + n <= scratch.length) return;
  const bigger = Buffer.alloc(Math.max(scratch.length * 2, at + n + 1024));
  scratch.copy(bigger, 0, 0, at);
  scratch = bigger;
}

/** Dotted quad into 4 bytes; a missing or non-numeric part is 0 (as `Number('')` was). */
function ipInto(b: Buffer, o: number, ip: string): void {
  b.writeUInt32BE(ipv4ToInt(ip), o);
}

/** One option from bytes; RFC 3396 §7: longer than 255 bytes is split into consecutive instances. */
function putBytes(code: number, v: Uint8Array): void {
  ensure(v.length + 2 * Math.ceil(v.length / 255) + 2);
  if (v.length === 0) {
    scratch[at++] = code;
    scratch[at++] = 0;
    return;
  }
  for (let i = 0; i < v.length; i += 255) {
    const n = Math.min(255, v.length - i);
    scratch[at++] = code;
    scratch[at++] = n;
    scratch.set(v.subarray(i, i + n), at);
    at += n;
  }
}

function putText(code: number, s: string): void {
  if (s.length > 255) return putBytes(code, Buffer.from(s, 'latin1'));
  ensure(s.length + 2);
  scratch[at++] = code;
  scratch[at++] = s.length;
  at += scratch.write(s, at, s.length, 'latin1');
}

function putIps(code: number, ips: readonly string[]): void {
  const n = ips.length * 4;
  if (n > 255) {
    const b = Buffer.alloc(n);
    ips.forEach((ip, i) => ipInto(b, i * 4, ip));
    return putBytes(code, b);
  }
  ensure(n + 2);
  scratch[at++] = code;
  scratch[at++] = n;
  for (const ip of ips) {
    ipInto(scratch, at, ip);
    at += 4;
  }
}

function putU32(code: number, n: number): void {
  ensure(6);
  scratch[at++] = code;
  scratch[at++] = 4;
  scratch.writeUInt32BE(n >>> 0, at);
  at += 4;
}

function putByte(code: number, n: number): void {
  ensure(3);
  scratch[at++] = code;
  scratch[at++] = 1;
  scratch[at++] = n;
}

function putU16(code: number, n: number): void {
  ensure(4);
  scratch[at++] = code;
  scratch[at++] = 2;
  scratch.writeUInt16BE(n, at);
  at += 2;
}

function uuidBytes(uuid: string): Buffer {
  return Buffer.concat([Buffer.from([0]), Buffer.from(uuid.replace(/-/g, ''), 'hex')]);
}

/** Writes the options in order: 53 and 54 first, as clients expect; 82 last (RFC 3046 §2.1). */
function writeOptions(o: DhcpOptions): void {
  if (o.messageType) putByte(Opt.messageType, MessageType[o.messageType]);
  if (o.serverId) putIps(Opt.serverId, [o.serverId]);
  if (o.leaseSeconds !== undefined) putU32(Opt.leaseSeconds, o.leaseSeconds);
  if (o.renewalSeconds !== undefined) putU32(Opt.renewalSeconds, o.renewalSeconds);
  if (o.rebindingSeconds !== undefined) putU32(Opt.rebindingSeconds, o.rebindingSeconds);
  if (o.subnetMask) putIps(Opt.subnetMask, [o.subnetMask]);
  if (o.routers?.length) putIps(Opt.routers, o.routers);
  if (o.domainServers?.length) putIps(Opt.domainServers, o.domainServers);
  if (o.hostname !== undefined) putText(Opt.hostname, o.hostname);
  if (o.domainName !== undefined) putText(Opt.domainName, o.domainName);
  if (o.interfaceMtu !== undefined) putU16(Opt.interfaceMtu, o.interfaceMtu);
  if (o.broadcastAddress) putIps(Opt.broadcastAddress, [o.broadcastAddress]);
  if (o.ntpServers?.length) putIps(Opt.ntpServers, o.ntpServers);
  if (o.requestedAddress) putIps(Opt.requestedAddress, [o.requestedAddress]);
  if (o.parameterRequestList) putBytes(Opt.parameterRequestList, Uint8Array.from(o.parameterRequestList));
  if (o.message !== undefined) putText(Opt.message, o.message);
  if (o.maxMessageSize !== undefined) putU16(Opt.maxMessageSize, o.maxMessageSize);
  if (o.vendorClassId !== undefined) putText(Opt.vendorClassId, o.vendorClassId);
  if (o.clientId) putBytes(Opt.clientId, o.clientId);
  if (o.vendorSpecific) putBytes(Opt.vendorSpecific, o.vendorSpecific);
  if (o.tftpServerName !== undefined) putText(Opt.tftpServerName, o.tftpServerName);
  if (o.bootfileName !== undefined) putText(Opt.bootfileName, o.bootfileName);
  if (o.userClass) putBytes(Opt.userClass, o.userClass);
  if (o.clientArch) {
    const b = Buffer.alloc(o.clientArch.length * 2);
    o.clientArch.forEach((a, i) => b.writeUInt16BE(a, i * 2));
    putBytes(Opt.clientArch, b);
  }
  if (o.clientNdi) putBytes(Opt.clientNdi, Uint8Array.of(o.clientNdi.type, o.clientNdi.major, o.clientNdi.minor));
  if (o.clientUuid) putBytes(Opt.clientUuid, uuidBytes(o.clientUuid));
  if (o.ipxeEncap) putBytes(Opt.ipxeEncap, o.ipxeEncap);
  for (const [code, v] of o.other) putBytes(code, v);
  // RFC 3046 §2.1: the relay agent option is the last option before end.
  if (o.relayAgentInfo) putBytes(Opt.relayAgentInfo, o.relayAgentInfo.raw);
}

/** Serialises a packet; pads to the 300-byte BOOTP minimum (RFC 1542 §2.1). */
export function encodePacket(p: DhcpPacket): Buffer {
  at = 0;
  ensure(FIXED_LEN + 4);
  const b = scratch;
  b.fill(0, 0, FIXED_LEN);
  b[0] = p.op;
  b[1] = p.htype;
  b[2] = p.hlen;
  b[3] = p.hops;
  b.writeUInt32BE(p.xid >>> 0, 4);
  b.writeUInt16BE(p.secs, 8);
  b.writeUInt16BE(p.flags, 10);
  writeIp(b, 12, p.ciaddr);
  writeIp(b, 16, p.yiaddr);
  writeIp(b, 20, p.siaddr);
  writeIp(b, 24, p.giaddr);
  p.chaddr.copy(b, 28, 0, Math.min(16, p.chaddr.length));
  if (p.sname) b.write(p.sname.slice(0, 63), 44, 'latin1');
  if (p.file) b.write(p.file.slice(0, 127), 108, 'latin1');
  b.writeUInt32BE(MAGIC_COOKIE, FIXED_LEN);
  at = FIXED_LEN + 4;
  writeOptions(p.options);
  ensure(1 + MIN_BOOTP_LEN);
  scratch[at++] = Opt.end;
  const len = Math.max(MIN_BOOTP_LEN, at);
  if (len > at) scratch.fill(0, at, len);
  const out = Buffer.allocUnsafe(len);
  scratch.copy(out, 0, 0, len);
  return out;
}

function writeIp(b: Buffer, at: number, ip: string): void {
  if (ip === '0.0.0.0') return; // already zero
  ipInto(b, at, ip);
}

/**
 * An options record with every field present (undefined until set) in one fixed order. All
 * records, decoded or built for a reply, then share one hidden class in V8, so the ~30 field
 * reads in writeOptions and the server's reads of decoded fields stay monomorphic. Records
 * grown field by field in each packet's own order made those reads megamorphic: inline-cache
 * misses were about a tenth of the DHCP server's CPU in the bench/dhcp profile.
 */
class OptionsRecord implements DhcpOptions {
  subnetMask: string | undefined = undefined;
  routers: string[] | undefined = undefined;
  domainServers: string[] | undefined = undefined;
  hostname: string | undefined = undefined;
  domainName: string | undefined = undefined;
  interfaceMtu: number | undefined = undefined;
  broadcastAddress: string | undefined = undefined;
  ntpServers: string[] | undefined = undefined;
  vendorSpecific: Buffer | undefined = undefined;
  requestedAddress: string | undefined = undefined;
  leaseSeconds: number | undefined = undefined;
  messageType: MessageTypeName | undefined = undefined;
  serverId: string | undefined = undefined;
  parameterRequestList: number[] | undefined = undefined;
  message: string | undefined = undefined;
  maxMessageSize: number | undefined = undefined;
  renewalSeconds: number | undefined = undefined;
  rebindingSeconds: number | undefined = undefined;
  vendorClassId: string | undefined = undefined;
  clientId: Buffer | undefined = undefined;
  tftpServerName: string | undefined = undefined;
  bootfileName: string | undefined = undefined;
  userClass: Buffer | undefined = undefined;
  relayAgentInfo: RelayAgentInfo | undefined = undefined;
  clientArch: number[] | undefined = undefined;
  clientNdi: ClientNdi | undefined = undefined;
  clientUuid: string | undefined = undefined;
  ipxeEncap: Buffer | undefined = undefined;
  other = new Map<number, Buffer>();
}

// A field added to DhcpOptions but not here would be added per packet again: tsc says so.
type FieldsMissing = Exclude<keyof DhcpOptions, keyof OptionsRecord>;
const everyField: [FieldsMissing] extends [never] ? true : FieldsMissing = true;
void everyField;

/** An empty options record: every field undefined, `other` empty. */
export const noOptions = (): DhcpOptions => new OptionsRecord();
