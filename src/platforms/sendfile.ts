// The zero-copy path for /os files: native/sendfile.c (built by `npm ci` through
// binding.gyp). When the addon is missing (no compiler on this machine), callers fall back
// to writing from the in-memory file cache.
import { once } from 'node:events';
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';

type NativeSendfile = (socketFd: number, fileFd: number, offset: number, length: number, done: (errno: number, sent: number) => void) => void;

function load(): NativeSendfile | null {
  try {
    const mod = createRequire(import.meta.url)('../../build/Release/fleetboot_sendfile.node') as { sendfile?: unknown };
    return typeof mod.sendfile === 'function' ? (mod.sendfile as NativeSendfile) : null;
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
  ) {
    super(message);
  }
}

// errno values from Linux <asm-generic/errno-base.h> / <errno.h> that mean "the client went away".
const clientGone: Record<number, string> = { 32: 'EPIPE', 104: 'ECONNRESET', 110: 'ETIMEDOUT' };

/**
 * Sends `length` bytes of `fileFd` from `offset` straight to `socket` once everything
 * already written to the socket (the response headers) has reached the kernel. Returns
 * false when zero-copy is not possible here (no addon, not a plain TCP socket).
 */
export async function sendfileToSocket(socket: Socket, fileFd: number, offset: number, length: number): Promise<boolean> {
  const fd = fdOf(socket);
  if (!native || fd === null) return false;
  // Bytes queued in the socket must go first, or the body would overtake the headers.
  while (socket.writableLength > 0) await once(socket, 'drain');
  const send = native;
  await new Promise<void>((resolve, reject) => {
    send(fd, fileFd, offset, length, (errno, sent) => {
      if (errno === 0) return resolve();
      const code = clientGone[errno] ?? `errno ${errno}`;
      reject(new SendfileError(clientGone[errno] ? 'ERR_STREAM_PREMATURE_CLOSE' : code, `sendfile stopped after ${sent} of ${length} bytes: ${code}`));
    });
  });
  return true;
}

export const zeroCopyAvailable = native !== null;
