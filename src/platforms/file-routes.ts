// GET/HEAD /os/<stamp>/<path>: the files of imported platforms, and nothing else (a path is
// served only when the registry row lists it). Bytes go by sendfile(2) (sendfile.ts, the
// native addon) or, without it, from an in-memory cache of imported files (file-cache.ts)
// or, for files over its budget, a stream with 1 MiB reads:
// express.static's 64 KiB default tops out near 666 MB/s here, 1 MiB reaches the loopback
// ceiling (docs/netboot-notes.md "Anchors"). Range and conditional requests follow RFC 9110 §13-14.
// Each GET is one boot event (kernel, initrd, module, file), appended when the body is done or
// the client went away, dated at the request's arrival, with `ms` and `complete` (docs/timeline.md).
import type { BootSlots } from '../boot/boot-slots.ts';
import { createReadStream, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Router, type Request, type Response } from 'express';
import type { Logger } from '../log.ts';
import { parseMac, type Mac } from '../mac.ts';
import type { BootEventKind } from '../store/events.ts';
import type { PlatformFile } from '../store/platforms.ts';
import type { Store } from '../store/store.ts';
import { PlatformFileCache } from './file-cache.ts';
import { SendfileError, sendfileToSocket, zeroCopyAvailable } from './sendfile.ts';
import { platformsRoot } from './layout.ts';
import { sourceAddress } from '../http/auth.ts';
import { msSince } from '../http/step-timing.ts';

const eventOfRole: Record<PlatformFile['role'], BootEventKind> = {
  kernel: 'kernel',
  initrd: 'initrd',
  boot_archive: 'module',
  boot_archive_hash: 'module',
  other: 'file',
};

export type ByteRange = { start: number; end: number };

/**
 * Parses a Range header against a representation of `size` bytes (RFC 9110 §14.1.2).
 * Returns the one range to send, 'unsatisfiable' (416), or null to send the whole file:
 * the header is absent, malformed, not in bytes, or asks for several ranges (§14.2 lets a
 * server ignore Range, and boot clients never ask for multipart/byteranges).
 */
export function parseRange(header: string | undefined, size: number): ByteRange | 'unsatisfiable' | null {
  if (!header) return null;
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m) return null;
  const [, first = '', last = ''] = m;
  if (first === '' && last === '') return null;
  if (first === '') {
    // suffix-byte-range-spec: the last N bytes (§14.1.2).
    const n = Number(last);
    if (n === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(first);
  if (last !== '' && Number(last) < start) return null; // invalid spec: ignore the header
  if (start >= size) return 'unsatisfiable';
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
  return { start, end };
}

/** If-None-Match uses the weak comparison (RFC 9110 §13.1.2). */
function noneMatch(header: string, etag: string): boolean {
  if (header.trim() === '*') return true;
  const bare = etag.replace(/^W\//, '');
  return header.split(',').some((t) => t.trim().replace(/^W\//, '') === bare);
}

/**
 * Headers through the response, the body by sendfile(2) on the connection's socket, then
 * an empty end() so keep-alive goes on. False when zero-copy is unavailable (nothing sent).
 */
async function sendZeroCopy(res: Response, path: string, start: number, length: number, idleMs: number): Promise<boolean> {
  if (!zeroCopyAvailable || !res.socket) return false;
  const handle = await open(path, 'r');
  try {
    res.flushHeaders();
    const sent = await sendfileToSocket(res.socket, handle.fd, start, length, idleMs);
    if (!sent) throw new Error('the connection has no socket fd after its headers were sent');
    const socket = res.socket;
    await new Promise<void>((resolve) => res.end(() => resolve()));
    // The client may have had every byte (and the server been told to stop) before this
    // thread-completion callback ran; a keep-alive connection that goes idle after
    // server.close() started would then hold the shutdown until its grace period.
    const server = (socket as Socket & { server?: Server }).server;
    if (server && !server.listening) socket.end();
    return true;
  } finally {
    await handle.close();
  }
}

/** Writes bytes start..end (inclusive) of a shared buffer, 4 MiB at a time, honouring backpressure. */
function sendSlices(res: Response, buf: Buffer, start: number, end: number): Promise<void> {
  const slice = 4 << 20;
  let pos = start;
  return new Promise<void>((resolve, reject) => {
    const onClose = (): void => {
      res.off('drain', pump);
      if (pos <= end) reject(Object.assign(new Error('client closed the connection'), { code: 'ERR_STREAM_PREMATURE_CLOSE' }));
    };
    function pump(): void {
      while (pos <= end) {
        const next = Math.min(end + 1, pos + slice);
        const more = res.write(buf.subarray(pos, next));
        pos = next;
        if (!more && pos <= end) {
          res.once('drain', pump);
          return;
        }
      }
      res.off('close', onClose);
      res.end(() => resolve());
    }
    res.once('close', onClose);
    pump();
  });
}

/**
 * Runs a body write through the response (cache slices or a file stream) and drops the
 * connection when no byte has left for `idleMs`: a client that stops reading stops our writes
 * (backpressure), so net.Socket#bytesWritten stops growing. Not the socket's own inactivity
 * timer: node:http sets that for keep-alive once the response ends, and it must stay.
 */
async function withIdleTimeout(res: Response, idleMs: number, send: () => Promise<void>): Promise<void> {
  const socket = res.socket;
  if (!socket) return send();
  let stalled = false;
  let written = socket.bytesWritten;
  let lastProgress = performance.now();
  const watch = setInterval(() => {
    const now = performance.now();
    if (socket.bytesWritten !== written) {
      written = socket.bytesWritten;
      lastProgress = now;
    } else if (now - lastProgress >= idleMs) {
      stalled = true;
      res.destroy();
    }
  }, Math.max(50, Math.min(1000, idleMs / 4)));
  try {
    await send();
  } catch (err) {
    if (stalled) throw Object.assign(new Error(`no progress for ${idleMs} ms`), { code: 'stalled' });
    throw err;
  } finally {
    clearInterval(watch);
  }
}

/** http.downloadIdleSeconds when the config does not say. */
const DOWNLOAD_IDLE_MS = 30_000;

export interface PlatformFileDeps {
  config: { platformImagesDir: string; http?: { downloadIdleSeconds?: number } };
  store: Store;
  log: Logger;
  fileCache?: PlatformFileCache;
  /** false: never use sendfile(2), write from the file cache (tests of that path). */
  zeroCopy?: boolean;
  /** Bytes of whole responses sent, by platform stamp (GET /metrics reads it, http/metrics.ts). */
  sentBytes?: Map<string, number>;
  /** Under ProxyDHCP: the MAC the proxy exchange saw claim an address (dhcp/proxy-addresses.ts). */
  proxyMacOf?: (ip: string) => Mac | undefined;
  /** Boot storm admission: told when a node has fetched a file its boot script names. */
  bootSlots?: BootSlots;
}

export function platformFileRoutes(deps: PlatformFileDeps): Router {
  const r = Router();
  const cache = deps.fileCache ?? new PlatformFileCache();
  const root = platformsRoot(deps.config.platformImagesDir);
  const idleMs = (deps.config.http?.downloadIdleSeconds ?? DOWNLOAD_IDLE_MS / 1000) * 1000;

  const serve = async (req: Request, res: Response): Promise<void> => {
    const arrivedAt = deps.store.now();
    const t0 = performance.now();
    // Read now: once the connection has closed, the socket no longer knows its peer.
    const address = sourceAddress(req);
    const notFound = (): void => {
      res.status(404).type('text/plain').send('not found\n');
    };
    // req.path is still percent-encoded; a stamp and a file path never need decoding to match,
    // but a client may encode characters that need none.
    let segments: string[];
    try {
      segments = req.path.split('/').filter((s) => s !== '').map(decodeURIComponent);
    } catch {
      return notFound();
    }
    const [, stamp, ...rest] = segments; // segments[0] is "os"
    if (!stamp || rest.length === 0) return notFound();
    const platform = deps.store.platforms.get(stamp);
    const wanted = rest.join('/');
    const file = platform?.files.find((f) => f.path === wanted);
    if (!platform || !file) return notFound();

    const full = join(root, platform.folder, ...file.path.split('/'));
    let size: number;
    try {
      const st = statSync(full);
      if (!st.isFile()) throw new Error('not a regular file');
      size = st.size;
    } catch (err) {
      deps.log.error({ event: 'platform_file_missing', stamp, path: file.path, err }, 'imported platform file is missing on disk');
      return notFound();
    }
    const etag = `"${file.sha256.slice(0, 32)}-${size.toString(16)}"`;
    res.setHeader('ETag', etag);
    res.setHeader('Accept-Ranges', 'bytes');
    res.setHeader('Content-Type', 'application/octet-stream');
    res.setHeader('Last-Modified', new Date(platform.importedAt).toUTCString());

    const inm = req.get('if-none-match');
    if (inm !== undefined && noneMatch(inm, etag)) {
      res.status(304).end();
      return;
    }
    // If-Range with a validator that no longer matches: send the whole file (§13.1.5).
    const ifRange = req.get('if-range');
    let range = ifRange !== undefined && ifRange.trim() !== etag ? null : parseRange(req.get('range'), size);
    if (range === 'unsatisfiable') {
      res.status(416).setHeader('Content-Range', `bytes */${size}`);
      res.end();
      return;
    }
    if (size === 0) range = null;
    const start = range?.start ?? 0;
    const end = range?.end ?? size - 1;
    const length = size === 0 ? 0 : end - start + 1;
    if (range) {
      res.status(206);
      res.setHeader('Content-Range', `bytes ${start}-${end}/${size}`);
    } else {
      res.status(200);
    }
    res.setHeader('Content-Length', String(length));

    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    const step = { stamp, file, start, length, arrivedAt, address };
    if (length === 0) {
      res.end();
      recordFetch(deps, req, step, { ms: msSince(t0), complete: true, sent: 0 });
      return;
    }
    // Body bytes handed to the connection, for a download cut short: sendfile(2) reports its
    // own count; a write through the response is what the socket took past the headers.
    let sent = 0;
    let complete = false;
    try {
      const zeroCopied = deps.zeroCopy !== false && (await sendZeroCopy(res, full, start, length, idleMs));
      if (!zeroCopied) {
        res.flushHeaders();
        const socket = res.socket;
        const headerEnd = socket?.bytesWritten ?? 0;
        const cached = cache.get(full, file.sha256, size);
        try {
          await withIdleTimeout(res, idleMs, async () => {
            if (cached) await sendSlices(res, await cached, start, end);
            else await pipeline(createReadStream(full, { start, end, highWaterMark: 1 << 20 }), res);
          });
        } finally {
          // net.Socket#bytesWritten counts bytes still queued in the socket too (Node net docs).
          if (socket) sent = Math.min(length, Math.max(0, (socket.bytesWritten ?? headerEnd) - socket.writableLength - headerEnd));
        }
      }
      sent = length;
      complete = true;
      deps.sentBytes?.set(stamp, (deps.sentBytes.get(stamp) ?? 0) + length);
    } catch (err) {
      if (err instanceof SendfileError) sent = Math.min(length, err.sent);
      // A client that hangs up mid-download is normal (iPXE retries, firmware resets).
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'stalled') {
        deps.log.warn({ event: 'platform_download_stalled', stamp, path: file.path, address, idleMs }, 'platform download dropped: the client stopped reading');
      } else if (code !== 'ERR_STREAM_PREMATURE_CLOSE' && code !== 'ECONNRESET' && code !== 'EPIPE') {
        deps.log.error({ event: 'platform_file_error', stamp, path: file.path, err }, 'platform file stream failed');
      }
      res.destroy();
    }
    recordFetch(deps, req, step, { ms: msSince(t0), complete, sent });
  };

  r.get('/os/{*rest}', (req, res, next) => {
    serve(req, res).catch(next);
  });
  r.head('/os/{*rest}', (req, res, next) => {
    serve(req, res).catch(next);
  });
  r.all('/os/{*rest}', (_req, res) => {
    res.status(404).type('text/plain').send('not found\n');
  });
  return r;
}

/**
 * Puts the fetch on the node's boot timeline: by the `mac` the script put in the URL, else by
 * the client's address (a static address or lease, then under ProxyDHCP the MAC the proxy
 * exchange saw claim it). Called once the body is done or cut short; a failure to record is
 * logged, never the download's error.
 */
function recordFetch(
  deps: { store: Store; log: Logger; proxyMacOf?: (ip: string) => Mac | undefined; bootSlots?: BootSlots },
  req: Request,
  f: { stamp: string; file: PlatformFile; start: number; length: number; arrivedAt: number; address: string },
  outcome: { ms: number; complete: boolean; sent: number },
): void {
  const event = eventOfRole[f.file.role];
  try {
    const macParam = typeof req.query['mac'] === 'string' ? parseMac(req.query['mac']) : null;
    const address = f.address;
    let nodeId: number | null = null;
    let mac = macParam;
    if (!mac && address) {
      const who = deps.store.nodes.requesterAt(address, deps.proxyMacOf);
      nodeId = who?.node?.id ?? null;
      mac = who?.mac ?? null;
    }
    // `bytes` is what the request asked for; `sent` only when the client went away first.
    const detail = {
      stamp: f.stamp,
      path: f.file.path,
      offset: f.start,
      bytes: f.length,
      address,
      ms: outcome.ms,
      complete: outcome.complete,
      ...(outcome.complete ? {} : { sent: outcome.sent }),
    };
    deps.store.events.record({ event, nodeId, mac, detail, at: f.arrivedAt });
    // The last byte of the file reached the node (a whole GET, or the range that ends it).
    if (mac) deps.bootSlots?.fetched(mac, `/os/${f.stamp}/${f.file.path}`, outcome.complete && f.start + f.length === f.file.size);
    deps.log.info({ event, mac, node: nodeId, ...detail }, outcome.complete ? 'platform file fetched' : 'platform file fetch cut short');
  } catch (err) {
    deps.log.error({ event, stamp: f.stamp, path: f.file.path, err }, 'could not record the platform file fetch');
  }
}
