// TFTP wire format (RFC 1350 §5) with option extension (RFC 2347). Requests and errors are
// parsed into typed values here; the per-packet hot path (ACK in, DATA out) reads and
// writes the 4-byte header in place in transfer.ts and never comes through this module.

/** RFC 1350 §5 opcodes, plus OACK from RFC 2347 §2. */
export const Opcode = { RRQ: 1, WRQ: 2, DATA: 3, ACK: 4, ERROR: 5, OACK: 6 } as const;

/** RFC 1350 appendix "Error Codes", plus 8 from RFC 2347 §2. */
export const ErrorCode = {
  notDefined: 0,
  fileNotFound: 1,
  accessViolation: 2,
  diskFull: 3,
  illegalOperation: 4,
  unknownTid: 5,
  fileExists: 6,
  noSuchUser: 7,
  optionNegotiation: 8,
} as const;
export type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode];

export interface TftpRequest {
  kind: 'read' | 'write';
  /** The filename exactly as sent (decoded as UTF-8); path policy is root.ts's job. */
  filename: string;
  /** Lower-cased mode string; RFC 1350 §5 defines "netascii", "octet" and "mail". */
  mode: string;
  /** Option names lower-cased (RFC 2347 §2: case-insensitive), values as sent. */
  options: Map<string, string>;
}

export type ParsedRequest = { ok: true; request: TftpRequest } | { ok: false; reason: string };

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Parses an RRQ/WRQ: opcode, then NUL-terminated filename, mode and option/value pairs. */
export function parseRequest(msg: Buffer): ParsedRequest {
  if (msg.length < 4) return { ok: false, reason: 'short packet' };
  const op = msg.readUInt16BE(0);
  if (op !== Opcode.RRQ && op !== Opcode.WRQ) return { ok: false, reason: `opcode ${op} is not a request` };
  // RFC 2347 §2: the whole request must fit in 512 bytes; tolerate more (some firmware pads)
  // but bound it so a hostile packet cannot make us split megabytes.
  if (msg.length > 4096) return { ok: false, reason: 'request longer than 4096 bytes' };
  const fields: string[] = [];
  let start = 2;
  for (let i = 2; i < msg.length; i++) {
    if (msg[i] !== 0) continue;
    try {
      fields.push(utf8.decode(msg.subarray(start, i)));
    } catch {
      return { ok: false, reason: 'field is not valid UTF-8' };
    }
    start = i + 1;
  }
  // Bytes after the last NUL: a field that was never terminated (RFC 1350 §5 requires the NUL).
  if (start !== msg.length) return { ok: false, reason: 'unterminated field' };
  const [filename, mode, ...rest] = fields;
  if (filename === undefined || mode === undefined) return { ok: false, reason: 'missing filename or mode' };
  const options = new Map<string, string>();
  // Some clients pad the request with trailing NULs: an empty trailing name ends the list.
  for (let i = 0; i + 1 < rest.length; i += 2) {
    const name = rest[i]!.toLowerCase();
    if (name === '') break;
    if (!options.has(name)) options.set(name, rest[i + 1]!);
  }
  return {
    ok: true,
    request: { kind: op === Opcode.RRQ ? 'read' : 'write', filename, mode: mode.toLowerCase(), options },
  };
}

/** ERROR packet: opcode 5, code, message, NUL (RFC 1350 §5). */
export function encodeError(code: ErrorCodeValue, message: string): Buffer {
  const text = Buffer.from(message.slice(0, 200), 'utf8');
  const out = Buffer.alloc(4 + text.length + 1);
  out.writeUInt16BE(Opcode.ERROR, 0);
  out.writeUInt16BE(code, 2);
  text.copy(out, 4);
  return out;
}

/** OACK: opcode 6 then option/value pairs, each NUL-terminated (RFC 2347 §2). */
export function encodeOack(options: ReadonlyArray<readonly [string, string]>): Buffer {
  const parts: Buffer[] = [Buffer.from([0, Opcode.OACK])];
  for (const [name, value] of options) parts.push(Buffer.from(`${name}\0${value}\0`, 'ascii'));
  return Buffer.concat(parts);
}

export interface TftpErrorPacket {
  code: number;
  message: string;
}

/** Reads an ERROR packet (opcode already checked by the caller), tolerating a missing NUL. */
export function parseError(msg: Buffer): TftpErrorPacket {
  const code = msg.length >= 4 ? msg.readUInt16BE(2) : 0;
  let end = msg.indexOf(0, 4);
  if (end < 0) end = msg.length;
  return { code, message: msg.length > 4 ? msg.subarray(4, end).toString('utf8') : '' };
}

/** RFC 1350 §5 netascii: CR LF for every newline, CR NUL for a bare CR. */
export function toNetascii(data: Uint8Array): Buffer {
  let extra = 0;
  for (let i = 0; i < data.length; i++) if (data[i] === 0x0a || data[i] === 0x0d) extra++;
  const out = Buffer.allocUnsafe(data.length + extra);
  let j = 0;
  for (let i = 0; i < data.length; i++) {
    const c = data[i]!;
    if (c === 0x0a) {
      out[j++] = 0x0d;
      out[j++] = 0x0a;
    } else if (c === 0x0d) {
      out[j++] = 0x0d;
      out[j++] = 0x00;
    } else out[j++] = c;
  }
  return out;
}
