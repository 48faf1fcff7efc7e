// Relayed requests (RFC 2131 §4.3.1, RFC 3046): giaddr picks the network, the reply goes
// unicast to the relay, option 82 is stored with the lease and echoed back unchanged.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ConfigInput } from '../src/config/schema.ts';
import { clientPacket, RelayAgent } from './dhcp-fixtures.ts';
import { startHeadNode, tempDir } from './fixtures.ts';

test('giaddr selects the network (relayAddresses or subnet); option 82 is stored and echoed', async (t) => {
  const relayA = await RelayAgent.open(t, '127.0.0.1');
  // Both relays receive on the one relay-reply port: B binds A's port number on 127.0.0.2.
  const relayB = await RelayAgent.open(t, '127.0.0.2', relayA.port);
  const cfg: ConfigInput = {
    dhcp: { mode: 'full', listen: '127.0.0.1', port: 0, relayReplyPort: relayA.port },
    networks: [
      { name: 'rack-a', subnet: '10.30.0.0/24', serverAddress: '10.99.0.1', range: { start: '10.30.0.10', end: '10.30.0.20' }, relayAddresses: ['127.0.0.1'] },
      { name: 'rack-b', subnet: '127.0.0.0/24', serverAddress: '127.0.0.1', range: { start: '127.0.0.200', end: '127.0.0.210' } },
    ],
  };
  const { head } = await startHeadNode(t, tempDir(t), cfg);
  const port = head.dhcp!.ports().dhcp;
  const relayInfo = Buffer.from('0106' + '657468302f37' + '0208' + '0011223344556677', 'hex'); // circuit "eth0/7", remote-id
  const offer = await relayA.exchange(clientPacket({ type: 1, mac: '52:54:00:00:10:01', giaddr: '127.0.0.1', relayInfo, xid: 1 }), port);
  assert.equal(offer.yiaddr, '10.30.0.10');
  assert.equal(offer.options.serverId, '10.99.0.1'); // the head node's address, on another subnet
  assert.equal(offer.options.relayAgentInfo?.raw.toString('hex'), relayInfo.toString('hex'));
  const ack = await relayA.exchange(
    clientPacket({ type: 3, mac: '52:54:00:00:10:01', giaddr: '127.0.0.1', relayInfo, requested: offer.yiaddr, serverId: '10.99.0.1', xid: 2 }),
    port,
  );
  assert.equal(ack.options.messageType, 'ack');
  assert.equal(ack.options.relayAgentInfo?.circuitId?.toString(), 'eth0/7');
  assert.equal(head.store.leases.get('10.30.0.10')?.relayInfo?.toString('hex'), relayInfo.toString('hex'));
  assert.equal(head.store.leases.get('10.30.0.10')?.network, 'rack-a');

  // A NAK through a relay asks the relay to broadcast it (RFC 2131 §4.1).
  const nak = await relayA.exchange(clientPacket({ type: 3, mac: '52:54:00:00:10:02', giaddr: '127.0.0.1', requested: '10.99.0.5', xid: 3 }), port);
  assert.equal(nak.options.messageType, 'nak');
  assert.equal(nak.flags & 0x8000, 0x8000);

  // Relay B's giaddr has no relayAddresses entry but lies inside rack-b's subnet.
  const bOffer = await relayB.exchange(clientPacket({ type: 1, mac: '52:54:00:00:10:03', giaddr: '127.0.0.2', xid: 4 }), port);
  assert.equal(bOffer.yiaddr, '127.0.0.200');
  assert.equal(bOffer.options.serverId, '127.0.0.1');
  assert.equal(head.dhcp!.lease('127.0.0.200')?.network, 'rack-b');

  // A giaddr that belongs to no network is ignored.
  const before = head.dhcp!.stats.ignored;
  relayA.send(clientPacket({ type: 1, mac: '52:54:00:00:10:04', giaddr: '192.0.2.1', xid: 5 }), port);
  await relayA.exchange(clientPacket({ type: 1, mac: '52:54:00:00:10:05', giaddr: '127.0.0.1', xid: 6 }), port);
  assert.equal(head.dhcp!.stats.ignored, before + 1);
});
