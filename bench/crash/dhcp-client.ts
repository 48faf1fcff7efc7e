// A burst of DHCP clients behind one relay agent (giaddr 127.0.0.1, RFC 2131 §4.1: replies
// come back unicast to the relay's port), run inside the crash harness's network namespace.
// Every MAC goes DISCOVER -> OFFER -> REQUEST -> ACK; each ACK received is printed at once as
// `ACK <mac> <ip>` (stdout on a pipe is written synchronously on Linux, so a line printed is a
// line the harness reads even if this process is killed next). `DONE` follows the last ACK.
// A request with no answer is sent again every 300 ms, so the burst starts before the head
// node listens and waits through its start.
import dgram from 'node:dgram';
import { once } from 'node:events';
import { parseArgs } from 'node:util';
import { decodePacket } from '../../src/dhcp/packet.ts';
import { clientPacket } from '../../test/dhcp-fixtures.ts';

const { values } = parseArgs({
  options: {
    'server-port': { type: 'string' },
    'reply-port': { type: 'string' },
    clients: { type: 'string', default: '1000' },
    window: { type: 'string', default: '64' },
  },
});
const serverPort = Number(values['server-port']);
const replyPort = Number(values['reply-port']);
const total = Number(values.clients);
const window = Number(values.window);
if (!Number.isInteger(serverPort) || !Number.isInteger(replyPort) || !Number.isInteger(total) || !Number.isInteger(window)) {
  process.stderr.write('dhcp-client: --server-port, --reply-port, --clients and --window take integers\n');
  process.exit(2);
}

const DISCOVER = 1;
const REQUEST = 3;

interface Client {
  mac: string;
  xid: number;
  /** The offered address once an OFFER came, with the server that made it (option 54). */
  offer: { ip: string; serverId: string } | null;
  sentAt: number;
}

const macOf = (i: number): string => `02:fb:${[(i >> 24) & 255, (i >> 16) & 255, (i >> 8) & 255, i & 255].map((b) => b.toString(16).padStart(2, '0')).join(':')}`;

const socket = dgram.createSocket('udp4');
socket.bind(replyPort, '127.0.0.1');
await once(socket, 'listening');

const flying = new Map<number, Client>();
let next = 0;
let acked = 0;

function send(c: Client): void {
  c.sentAt = Date.now();
  const bytes = c.offer
    ? clientPacket({ type: REQUEST, mac: c.mac, xid: c.xid, giaddr: '127.0.0.1', requested: c.offer.ip, serverId: c.offer.serverId })
    : clientPacket({ type: DISCOVER, mac: c.mac, xid: c.xid, giaddr: '127.0.0.1' });
  socket.send(bytes, serverPort, '127.0.0.1');
}

function fill(): void {
  while (flying.size < window && next < total) {
    const c: Client = { mac: macOf(next), xid: (0x10000000 + next) >>> 0, offer: null, sentAt: 0 };
    next++;
    flying.set(c.xid, c);
    send(c);
  }
}

socket.on('message', (msg) => {
  const d = decodePacket(msg);
  if (!d.ok) return;
  const c = flying.get(d.packet.xid);
  if (!c) return;
  const type = d.packet.options.messageType;
  if (type === 'offer' && !c.offer) {
    c.offer = { ip: d.packet.yiaddr, serverId: d.packet.options.serverId ?? '' };
    send(c);
  } else if (type === 'ack' && c.offer) {
    process.stdout.write(`ACK ${c.mac} ${d.packet.yiaddr}\n`);
    flying.delete(c.xid);
    acked++;
    if (acked === total) {
      process.stdout.write('DONE\n');
      process.exit(0);
    }
    fill();
  } else if (type === 'nak') {
    c.offer = null;
    send(c);
  }
});

setInterval(() => {
  const now = Date.now();
  for (const c of flying.values()) if (now - c.sentAt >= 300) send(c);
}, 100);
fill();
