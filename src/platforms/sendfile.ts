// The zero-copy path for /os files: native/sendfile.c (built by `npm ci` through
// binding.gyp). When the addon is missing (no compiler on this machine), callers fall back
// to writing from the in-memory file cache.
import { once } from 'node:events';
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';

interface NativeSendfile {
  /** Returns a handle for cancel(); `done` runs once, after which the handle is dead. */
  sendfile(socketFd: number, fileFd: number, offset: number, length: number, idleMs: number, done: (errno: number, sent: number) => void): object;
  cancel(handle: object): void;
  /** Transfers the worker threads hold now. */
  active(): number;
}

function load(): NativeSendfile | null {
  try {
    const mod = createRequire(import.meta.url)('../../build/Release/fleetboot_sendfile.node') as Partial<NativeSendfile>;
    return typeof mod.sendfile === 'function' && typeof mod.cancel === 'function' && typeof mod.active === 'function' ? (mod as NativeSendfile) : null;
  } catch {
    return null;
  }
}

const native = load();

/** The OS file descriptor behind a TCP socket (libuv's TCP handle exposes it on Unix). */
function fdOf(socket: Socket): number | null {
  const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : null;
}

export class SendfileError extends Error {
  override readonly name = 'SendfileError';
  constructor(
    readonly code: string,
    message: string,
    /** Bytes of the body that went to the socket before the transfer stopped. */
    readonly sent = 0,
  ) {
    super(message);
  }
}

// errno values from Linux <asm-generic/errno-base.h> / <errno.h> that mean "the client went away".
const clientGone: Record<number, string> = { 32: 'EPIPE', 104: 'ECONNRESET' };
/** native/sendfile.c: no byte moved for idleMs (ETIMEDOUT), or cancel() (ECANCELED). */
const ETIMEDOUT = 110;
const ECANCELED = 125;

/**
 * Sends `length` bytes of `fileFd` from `offset` straight to `socket` once everything
 * already written to the socket (the response headers) has reached the kernel. Returns
 * false when zero-copy is not possible here (no addon, not a plain TCP socket). Rejects
 * with code ERR_STREAM_PREMATURE_CLOSE when the client went away or the socket was closed
 * (server stopping), and `stalled` when no byte moved for `idleMs`.
 */
export async function sendfileToSocket(socket: Socket, fileFd: number, offset: number, length: number, idleMs: number): Promise<boolean> {
  const fd = fdOf(socket);
  if (!native || fd === null) return false;
  // Bytes queued in the socket must go first, or the body would overtake the headers.
  while (socket.writableLength > 0) await once(socket, 'drain');
  if (socket.destroyed) throw new SendfileError('ERR_STREAM_PREMATURE_CLOSE', 'the connection closed before the body was sent');
  const addon = native;
  await new Promise<void>((resolve, reject) => {
    let handle: object | undefined;
    // The worker writes through its own dup of the fd, so closing the socket alone (the
    // server stopping, closeAllConnections) would not end the transfer: cancel it too.
    const onClose = (): void => {
      if (handle) addon.cancel(handle);
    };
    handle = addon.sendfile(fd, fileFd, offset, length, idleMs, (errno, sent) => {
      handle = undefined;
      socket.off('close', onClose);
      if (errno === 0) return resolve();
      if (errno === ETIMEDOUT) return reject(new SendfileError('stalled', `no progress for ${idleMs} ms after ${sent} of ${length} bytes`, sent));
      const gone = errno === ECANCELED ? 'ECANCELED' : clientGone[errno];
      const code = gone ?? `errno ${errno}`;
      reject(new SendfileError(gone ? 'ERR_STREAM_PREMATURE_CLOSE' : code, `sendfile stopped after ${sent} of ${length} bytes: ${code}`, sent));
    });
    socket.once('close', onClose);
  });
  return true;
}

export const zeroCopyAvailable = native !== null;

/** Zero-copy transfers in flight (0 without the addon): what a stalled client would hold. */
export function zeroCopyTransfers(): number {
  return native?.active() ?? 0;
}
