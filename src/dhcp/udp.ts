// The DHCP server's UDP sockets, through the addon in native/dhcp_io.c: packets arrive in
// batches (recvmmsg, one JavaScript call per batch instead of one per packet) and replies
// leave in batches (sendmmsg). Node's dgram costs a 64 KiB allocation and a callback per
// packet received and a syscall per reply, a third of the server's CPU at boot-storm rates
// (bench/dhcp). The socket is also bound to its device here (SO_BINDTODEVICE), which dgram
// cannot do at all (docs/netboot-notes.md pitfall 8).
import { loadNativeAddon } from '../native.ts';
import type { RemoteInfo } from 'node:dgram';
import { ipv4ToInt } from '../config/schema.ts';

interface DhcpIoAddon {
  SLOTS: number;
  SLOT: number;
  META: number;
  open(address: string, port: number, device: string, rcvbuf: number, slab: Buffer, meta: Uint32Array, onBatch: (count: number) => void): number;
  send(id: number, packets: readonly Buffer[], addresses: Uint32Array, ports: Uint32Array, from: number, count: number): number;
  lastError(): string;
  lastErrno(): number;
  screenBootRequests(id: number): void;
  drops(id: number): number;
  localPort(id: number): number;
  close(id: number): void;
}

const loadAddon = (): DhcpIoAddon => loadNativeAddon<DhcpIoAddon>('fleetboot_dhcp_io');

export interface DhcpSocketOptions {
  address: string;
  port: number;
  /** The network device to bind to (SO_BINDTODEVICE, needs root), or null for any. */
  device: string | null;
  /** Receive buffer in bytes (capped by net.core.rmem_max). */
  receiveBuffer: number;
  onMessage: (msg: Buffer, rinfo: RemoteInfo) => void;
  /** A datagram longer than a receive slot (4 KiB): never a DHCP packet worth reading. */
  onTruncated: (rinfo: RemoteInfo) => void;
  /**
   * When set, datagrams that cannot be a BOOTREQUEST (shorter than the 236-byte header and
   * the magic cookie, op not 1, or another cookie: RFC 2131 §2-3) are counted here, once per
   * batch, and never copied or decoded: a flood of garbage costs a few byte compares each.
   */
  onScreened?: (count: number) => void;
  /** After each batch of datagrams read (to refresh counters). */
  onBatchDone?: () => void;
}

/** RFC 2131 §3: the options field starts with the magic cookie 99.130.83.99 at offset 236. */
const MAGIC_COOKIE = 0x63825363;
const BOOTP_MIN = 240;
const BOOTREQUEST = 1;

export interface SendFailure {
  index: number;
  error: string;
  /** The send buffer or the device queue was full (EAGAIN, ENOBUFS): the same send may work a moment later. */
  retryable: boolean;
}

/** What the DHCP server needs of a socket (DhcpSocket; tests pass their own). */
export interface ReplySocket {
  readonly port: number;
  sendAll(packets: readonly Buffer[], addresses: readonly string[], ports: readonly number[]): SendFailure[];
  close(): void;
  /** Datagrams the kernel dropped for this socket (socket filter, full buffer); 0 if unknown. */
  kernelDrops?(): number;
}

// Linux <asm-generic/errno-base.h>, <asm-generic/errno.h>.
const EAGAIN = 11;
const ENOBUFS = 105;

export class DhcpSocket implements ReplySocket {
  readonly port: number;
  private readonly id: number;
  private closed = false;
  private addrs = new Uint32Array(64);
  private ports = new Uint32Array(64);

  constructor(opts: DhcpSocketOptions) {
    const io = loadAddon();
    const slab = Buffer.alloc(io.SLOTS * io.SLOT);
    const meta = new Uint32Array(io.SLOTS * io.META);
    const screen = opts.onScreened;
    const onBatch = (count: number): void => {
      let screened = 0;
      for (let i = 0; i < count; i++) {
        const m = i * io.META;
        const len = meta[m]!;
        const at = i * io.SLOT;
        if (screen && !meta[m + 3] && (len < BOOTP_MIN || slab[at] !== BOOTREQUEST || slab.readUInt32BE(at + 236) !== MAGIC_COOKIE)) {
          screened++;
          continue;
        }
        const a = meta[m + 1]!;
        const address = `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`;
        const rinfo: RemoteInfo = { address, family: 'IPv4', port: meta[m + 2]!, size: len };
        if (meta[m + 3]) {
          opts.onTruncated(rinfo);
          continue;
        }
        // A copy: the slab is refilled by the next batch, and decoded options keep slices.
        const msg = Buffer.allocUnsafe(len);
        slab.copy(msg, 0, i * io.SLOT, i * io.SLOT + len);
        opts.onMessage(msg, rinfo);
      }
      if (screened > 0) screen?.(screened);
      opts.onBatchDone?.();
    };
    const device = opts.device ?? '';
    try {
      this.id = io.open(opts.address, opts.port, device, opts.receiveBuffer, slab, meta, onBatch);
    } catch (err) {
      const where = device ? `DHCP on ${device}` : `DHCP socket ${opts.address}:${opts.port}`;
      throw new Error(`${where}: ${(err as Error).message}`);
    }
    this.port = io.localPort(this.id);
    // The same screen in the kernel, before the receive buffer (native/dhcp_io.c).
    if (screen) io.screenBootRequests(this.id);
  }

  kernelDrops(): number {
    return this.closed ? 0 : loadAddon().drops(this.id);
  }

  /**
   * Sends packets[i] to addresses[i]:ports[i], all in as few syscalls as the kernel takes;
   * returns the ones that failed and why (a full send buffer, an unreachable network).
   */
  sendAll(packets: readonly Buffer[], addresses: readonly string[], ports: readonly number[]): SendFailure[] {
    if (this.closed) return packets.map((_, index) => ({ index, error: 'socket closed', retryable: false }));
    const io = loadAddon();
    const n = packets.length;
    if (this.addrs.length < n) {
      this.addrs = new Uint32Array(n * 2);
      this.ports = new Uint32Array(n * 2);
    }
    for (let i = 0; i < n; i++) {
      this.addrs[i] = ipv4ToInt(addresses[i]!);
      this.ports[i] = ports[i]!;
    }
    const failed: SendFailure[] = [];
    let i = 0;
    while (i < n) {
      const k = io.send(this.id, packets, this.addrs, this.ports, i, n - i);
      i += k;
      if (i < n && k === 0) {
        const errno = io.lastErrno();
        failed.push({ index: i++, error: io.lastError(), retryable: errno === EAGAIN || errno === ENOBUFS });
      }
    }
    return failed;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    loadAddon().close(this.id);
  }
}
