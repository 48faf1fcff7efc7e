// Binds a dgram socket to one network device with SO_BINDTODEVICE through the small N-API
// addon in native/bind_device.c (built by node-gyp at `npm ci` from the root binding.gyp).
import type { Socket } from 'node:dgram';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { installDir } from '../config/load.ts';

interface BindDeviceAddon {
  bindToDevice(fd: number, ifname: string): void;
  boundDevice(fd: number): string;
}

let addon: BindDeviceAddon | null = null;

function loadAddon(): BindDeviceAddon {
  if (addon) return addon;
  const file = join(installDir, 'build', 'Release', 'bind_device.node');
  try {
    addon = createRequire(import.meta.url)(file) as BindDeviceAddon;
  } catch (err) {
    throw new Error(`cannot load ${file} (${(err as Error).message}); run \`npm ci\` or \`npm run install\` to build it (needs make, g++, python3)`);
  }
  return addon;
}

/**
 * The socket's file descriptor. Node has no public API for it: this reads the dgram
 * socket's private state (`socket[Symbol('state symbol')].handle.fd`, stable across Node
 * 12-22). Valid only once the socket is bound (libuv creates the fd lazily).
 */
export function socketFd(socket: Socket): number {
  const sym = Object.getOwnPropertySymbols(socket).find((s) => s.description === 'state symbol');
  const state = sym ? (socket as unknown as Record<symbol, { handle?: { fd?: unknown } } | undefined>)[sym] : undefined;
  const fd = state?.handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new Error('cannot read the dgram socket file descriptor (Node internals changed?)');
  return fd;
}

export function bindSocketToDevice(socket: Socket, ifname: string): void {
  loadAddon().bindToDevice(socketFd(socket), ifname);
}

export function socketDevice(socket: Socket): string {
  return loadAddon().boundDevice(socketFd(socket));
}
