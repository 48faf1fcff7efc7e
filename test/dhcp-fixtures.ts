// DHCP test fixtures: client packets assembled byte by byte per RFC 2131 §2 (independently
// of the codec under test), shaped like the clients in docs/netboot-notes.md's table, and a
// loopback "relay agent" socket that sends them and waits for the server's answers.
import dgram, { type Socket } from 'node:dgram';
import { once } from 'node:events';
import { decodePacket, type DhcpPacket } from '../src/dhcp/packet.ts';

export type ClientModel = 'ipxe-bios' | 'ipxe-uefi' | 'ovmf-pxe' | 'ovmf-http' | 'udhcpc';

export interface PacketSpec {
  type: number; // option 53
  mac: string;
  xid?: number;
  model?: ClientModel;
  giaddr?: string;
  ciaddr?: string;
  flags?: number;
  requested?: string; // option 50
  serverId?: string; // option 54
  uuid?: string; // option 97 (hex, 32 digits)
  clientId?: Buffer; // option 61
  relayInfo?: Buffer; // option 82 content
  hostname?: string;
  extra?: [number, Buffer][];
}

const ip = (s: string): number[] => s.split('.').map(Number);
const opt = (code: number, bytes: Buffer | number[] | string): Buffer => {
  const v = typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : Buffer.from(bytes);
  return Buffer.concat([Buffer.from([code, v.length]), v]);
};

/** The options each client model sends, per docs/netboot-notes.md "What clients send". */
function modelOptions(model: ClientModel, uuid: string | undefined): Buffer[] {
  const u = Buffer.concat([Buffer.from([0]), Buffer.from(uuid ?? '00'.repeat(16), 'hex')]);
  switch (model) {
    case 'ipxe-bios':
      return [
        opt(57, [0x05, 0xc0]),
        opt(93, [0, 0]),
        opt(94, [1, 2, 1]),
        opt(60, 'PXEClient:Arch:00000:UNDI:002001'),
        opt(77, 'iPXE'),
        opt(55, [1, 3, 6, 7, 12, 15, 17, 26, 43, 60, 66, 67, 119, 128, 129, 130, 131, 132, 133, 134, 135, 175, 203]),
        opt(175, [0xb1, 0x05, 0x01, 0x80, 0x86, 0x10, 0x0e, 0xeb, 0x03, 0x01, 0x00, 0x00, 0x17, 0x01, 0x01, 0x13, 0x01, 0x01]),
        opt(97, u),
      ];
    case 'ipxe-uefi':
      return [
        opt(57, [0x05, 0xc0]),
        opt(93, [0, 7]),
        opt(94, [1, 3, 10]),
        opt(60, 'PXEClient:Arch:00007:UNDI:003010'),
        opt(77, 'iPXE'),
        opt(55, [1, 3, 6, 7, 12, 15, 17, 26, 43, 60, 66, 67, 119, 128, 129, 130, 131, 132, 133, 134, 135, 175, 203]),
        opt(175, [0x13, 0x01, 0x01, 0x24, 0x01, 0x01]),
        opt(97, u),
      ];
    case 'ovmf-pxe':
      return [
        opt(57, [0x05, 0xc0]),
        opt(55, [1, 2, 3, 4, 5, 6, 12, 13, 15, 17, 18, 22, 23, 28, 40, 41, 42, 43, 50, 51, 54, 58, 59, 60, 66, 67, 97, 128, 129, 130, 131, 132, 133, 134, 135]),
        opt(97, u),
        opt(94, [1, 3, 0]),
        opt(93, [0, 7]),
        opt(60, 'PXEClient:Arch:00007:UNDI:003000'),
      ];
    case 'ovmf-http':
      return [
        opt(57, [0x05, 0xc0]),
        opt(55, [1, 3, 6, 15, 43, 60, 66, 67, 97]),
        opt(97, u),
        opt(94, [1, 3, 0]),
        opt(93, [0, 16]),
        opt(60, 'HTTPClient:Arch:00016:UNDI:003000'),
      ];
    case 'udhcpc':
      return [opt(57, [0x05, 0xdc]), opt(60, 'udhcp 1.35.0'), opt(55, [1, 3, 6, 12, 15, 28, 42])];
  }
}

/** A BOOTREQUEST as the named client would send it. */
export function clientPacket(s: PacketSpec): Buffer {
  const fixed = Buffer.alloc(236);
  fixed[0] = 1; // BOOTREQUEST
  fixed[1] = 1; // Ethernet
  fixed[2] = 6;
  fixed.writeUInt32BE((s.xid ?? 0x12345678) >>> 0, 4);
  fixed.writeUInt16BE(s.flags ?? 0, 10);
  Buffer.from(ip(s.ciaddr ?? '0.0.0.0')).copy(fixed, 12);
  Buffer.from(ip(s.giaddr ?? '0.0.0.0')).copy(fixed, 24);
  Buffer.from(s.mac.replace(/:/g, ''), 'hex').copy(fixed, 28);
  const opts: Buffer[] = [opt(53, [s.type])];
  if (s.clientId) opts.push(opt(61, s.clientId));
  if (s.requested) opts.push(opt(50, ip(s.requested)));
  if (s.serverId) opts.push(opt(54, ip(s.serverId)));
  if (s.hostname) opts.push(opt(12, s.hostname));
  opts.push(...modelOptions(s.model ?? 'udhcpc', s.uuid));
  for (const [code, v] of s.extra ?? []) opts.push(opt(code, v));
  if (s.relayInfo) opts.push(opt(82, s.relayInfo));
  opts.push(Buffer.from([255]));
  const b = Buffer.concat([fixed, Buffer.from([99, 130, 83, 99]), ...opts]);
  return b.length < 300 ? Buffer.concat([b, Buffer.alloc(300 - b.length)]) : b;
}

/** A loopback socket standing in for a relay agent (giaddr = its own address). */
export class RelayAgent {
  private readonly inbox: DhcpPacket[] = [];
  private waiters: (() => void)[] = [];

  private constructor(
    readonly socket: Socket,
    readonly address: string,
  ) {
    socket.on('message', (msg) => {
      const d = decodePacket(msg);
      if (d.ok) this.inbox.push(d.packet);
      for (const w of this.waiters.splice(0)) w();
    });
  }

  static async open(t: { after: (fn: () => Promise<void> | void) => void }, address = '127.0.0.1', port = 0): Promise<RelayAgent> {
    const socket = dgram.createSocket('udp4');
    socket.bind(port, address);
    await once(socket, 'listening');
    const agent = new RelayAgent(socket, address);
    t.after(() => new Promise<void>((r) => socket.close(() => r())));
    return agent;
  }

  get port(): number {
    return this.socket.address().port;
  }

  send(bytes: Buffer, port: number, host = '127.0.0.1'): void {
    this.socket.send(bytes, port, host);
  }

  /** The next reply with this xid; rejects after `ms`. */
  async reply(xid: number, ms = 3000): Promise<DhcpPacket> {
    const deadline = Date.now() + ms;
    for (;;) {
      const i = this.inbox.findIndex((p) => p.xid === xid);
      if (i >= 0) return this.inbox.splice(i, 1)[0]!;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no reply for xid ${xid.toString(16)} within ${ms} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Sends and waits for the answer. */
  async exchange(bytes: Buffer, port: number, ms = 3000): Promise<DhcpPacket> {
    const xid = bytes.readUInt32BE(4);
    this.send(bytes, port);
    return this.reply(xid, ms);
  }

  /**
   * True when the server stayed silent about `xid`: sends `probe` (which it answers); its
   * answer proves the server has handled the earlier packet. Offers leave at once, but a
   * reply that waits for a commit could still be pending: `settled` waits that out, and a
   * second probe answer proves anything sent before it has arrived (loopback keeps order),
   * so no fixed sleep is needed.
   */
  async silentAbout(xid: number, probe: Buffer, port: number, settled: () => Promise<void>): Promise<boolean> {
    await this.exchange(probe, port);
    await settled();
    await this.exchange(probe, port);
    return !this.inbox.some((p) => p.xid === xid);
  }
}
