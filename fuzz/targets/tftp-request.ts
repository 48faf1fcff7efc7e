// TFTP requests (src/tftp/packet.ts, src/tftp/options.ts): parseRequest never throws; a parsed
// request written back (RFC 1350 §5 layout, RFC 2347 §2 options) parses to the same request;
// negotiate answers within RFC 2348 §2 / RFC 2349 / RFC 7440 §3 bounds and the server's
// limits, with an OACK of options the client asked for, and an OACK that splits back into them.
import { isDeepStrictEqual } from 'node:util';
import { encodeOack, parseRequest, type TftpRequest } from '../../src/tftp/packet.ts';
import { negotiate } from '../../src/tftp/options.ts';
import { check, type FuzzTarget } from '../target.ts';

// The server's defaults (src/config/schema.ts); maxTimeoutSeconds for servers that bound `timeout`.
const limits = { maxWindowsize: 64, maxWindowBytes: 1 << 20, defaultTimeoutMs: 1000, maxTimeoutSeconds: 60 };
const decimal = /^\d+$/;

function encodeRequest(r: TftpRequest): Buffer {
  const parts = [Buffer.from([0, r.kind === 'read' ? 1 : 2]), Buffer.from(`${r.filename}\0${r.mode}\0`, 'utf8')];
  for (const [k, v] of r.options) parts.push(Buffer.from(`${k}\0${v}\0`, 'utf8'));
  return Buffer.concat(parts);
}

export const tftpRequest: FuzzTarget = {
  name: 'tftp-request',
  about: 'parseRequest refuses with a reason or round-trips; negotiate stays within the RFC bounds',
  coverage: ['/src/tftp/packet.ts', '/src/tftp/options.ts'],
  dictionary: ['\x00\x01', '\x00\x02', 'octet\x00', 'netascii\x00', 'OCTET', 'blksize\x00', 'tsize\x00', 'timeout\x00', 'windowsize\x00', '1468\x00', '65464\x00', '65465\x00', '0\x00', '7\x00', '256\x00', '9999999999\x00', 'pxelinux.0\x00', 'undionly.kpxe\x00', '\xc3\xa9', '\xff\xfe'],
  format: 'bytes',
  maxLen: 4200,
  run(data) {
    const parsed = parseRequest(data);
    if (!parsed.ok) {
      check(parsed.reason.length > 0, () => 'a refusal without a reason');
      return;
    }
    const req = parsed.request;
    check(req.mode === req.mode.toLowerCase(), () => `mode ${JSON.stringify(req.mode)} is not lower-cased`);
    for (const k of req.options.keys()) check(k !== '' && k === k.toLowerCase(), () => `option name ${JSON.stringify(k)} is empty or not lower-cased`);
    const wire = encodeRequest(req);
    // Lower-casing can lengthen UTF-8 (U+0130 -> i + U+0307); past 4096 bytes a refusal is right.
    if (wire.length <= 4096) {
      const again = parseRequest(wire);
      check(again.ok && isDeepStrictEqual(again.request, req), () => `the request written back parses differently: ${again.ok ? JSON.stringify([...again.request.options]) : again.reason}`);
    }
    const size = data.length * 1_000_003;
    const n = negotiate(req.options, size, limits);
    if (!n.ok) {
      check(n.message.includes('blksize'), () => `negotiation refused without naming blksize: ${n.message}`);
      return;
    }
    const p = n.params;
    check(Number.isInteger(p.blksize) && p.blksize >= 8 && p.blksize <= 65464, () => `blksize ${p.blksize} outside 8..65464`);
    check(Number.isInteger(p.windowsize) && p.windowsize >= 1 && p.windowsize <= limits.maxWindowsize, () => `windowsize ${p.windowsize} outside 1..${limits.maxWindowsize}`);
    check(p.windowsize === 1 || p.windowsize * p.blksize <= limits.maxWindowBytes, () => `window ${p.windowsize} x ${p.blksize} over ${limits.maxWindowBytes} bytes`);
    check(p.clientTimeout ? p.timeoutMs >= 1000 && p.timeoutMs <= 255_000 : p.timeoutMs === limits.defaultTimeoutMs, () => `timeout ${p.timeoutMs} ms`);
    const names = new Set<string>();
    for (const [name, value] of n.oack) {
      check(req.options.has(name) && !names.has(name), () => `OACK option ${name} was not asked for, or twice`);
      check(decimal.test(value), () => `OACK ${name}=${JSON.stringify(value)} is not a decimal`);
      names.add(name);
    }
    // RFC 2347 §2: opcode 6, then NUL-terminated name/value pairs.
    const oack = encodeOack(n.oack);
    check(oack.readUInt16BE(0) === 6, () => 'OACK opcode');
    const fields = oack.subarray(2).toString('ascii').split('\0');
    check(fields.pop() === '' && isDeepStrictEqual(fields, n.oack.flat()), () => 'OACK bytes do not split back into its options');
  },
};
