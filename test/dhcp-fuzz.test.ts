// 10,000 random and mutated packets: none crashes the server, bad ones are counted, and it
// still answers afterwards (docs/style.md: a bad packet is dropped and counted, never thrown).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { seededRandom as prng } from '../fuzz/mutate.ts';
import { clientPacket, RelayAgent, type ClientModel } from './dhcp-fixtures.ts';
import { startHeadNode, tempDir } from './fixtures.ts';

test('10,000 random and mutated packets: no crash, counted, and the server still answers', async (t) => {
  const agent = await RelayAgent.open(t);
  const { head, url, token } = await startHeadNode(t, tempDir(t), {
    // The mutants' random MACs register thousands of never-booted machines; the cap on those
    // (test/dhcp-exhaustion.test.ts) would then rightly refuse the new machine at the end.
    dhcp: { mode: 'full', listen: '127.0.0.1', port: 0, relayReplyPort: agent.port, maxUnbootedDiscovered: 1_000_000 },
    networks: [{ name: 'fuzz', subnet: '10.40.0.0/16', serverAddress: '10.40.0.1', range: { start: '10.40.1.0', end: '10.40.250.255' }, relayAddresses: ['127.0.0.1'] }],
  });
  const port = head.dhcp!.ports().dhcp;
  const rand = prng(0x5eed);
  const int = (n: number): number => Math.floor(rand() * n);
  const models: ClientModel[] = ['ipxe-bios', 'ipxe-uefi', 'ovmf-pxe', 'ovmf-http', 'udhcpc'];
  const mutants = (): Buffer => {
    const kind = int(4);
    if (kind === 0) return Buffer.from(Array.from({ length: int(600) }, () => int(256))); // noise
    const base = clientPacket({
      type: 1 + int(8),
      mac: Array.from({ length: 6 }, () => int(256).toString(16).padStart(2, '0')).join(':'),
      model: models[int(models.length)]!,
      xid: int(2 ** 32),
      requested: `10.40.${int(256)}.${int(256)}`,
    });
    const b = Buffer.from(base);
    if (kind === 1) for (let i = 0, n = 1 + int(8); i < n; i++) b[240 + int(b.length - 240)] = int(256); // options area
    if (kind === 2) for (let i = 0, n = 1 + int(8); i < n; i++) b[int(b.length)] = int(256); // anywhere
    const out = kind === 3 ? b.subarray(0, int(b.length)) : b;
    // Keep every reply on this machine: relayed via the test socket, never to ciaddr.
    if (out.length >= 28) {
      Buffer.from([127, 0, 0, 1]).copy(out, 24);
      Buffer.alloc(4).copy(out, 12);
    }
    return out;
  };
  const start = Date.now();
  let sent = 0;
  let probe = 0;
  while (sent < 10_000) {
    for (let i = 0; i < 50; i++, sent++) agent.send(mutants(), port);
    // An INFORM is always answered: once its answer is in, the batch before it was handled.
    const ack = await agent
      .exchange(clientPacket({ type: 8, mac: '52:54:00:ff:ff:ff', giaddr: '127.0.0.1', xid: 0xf0000000 + ++probe }), port, 10_000)
      .catch((err: Error) => assert.fail(`${err.message} after ${sent} packets; stats ${JSON.stringify(head.dhcp!.stats)}`));
    assert.equal(ack.options.messageType, 'ack');
  }
  const stats = head.dhcp!.stats;
  assert.ok(stats.received >= 9_000, `received ${stats.received}`);
  assert.ok(stats.malformed > 1_000, `malformed ${stats.malformed}`);
  // And a full exchange still works.
  const offer = await agent.exchange(clientPacket({ type: 1, mac: '52:54:00:ee:ee:ee', giaddr: '127.0.0.1', xid: 1 }), port);
  const ack = await agent.exchange(clientPacket({ type: 3, mac: '52:54:00:ee:ee:ee', giaddr: '127.0.0.1', requested: offer.yiaddr, serverId: '10.40.0.1', xid: 2 }), port);
  assert.equal(ack.options.messageType, 'ack');
  // An operator sees the same counts (admin API; `fleetboot status` prints them).
  const counters = (await (await fetch(`${url}/api/v1/counters`, { headers: { authorization: `Bearer ${token}` } })).json()) as { dhcp: typeof stats };
  assert.deepEqual(counters.dhcp, stats);
  t.diagnostic(`${sent} packets in ${Date.now() - start} ms; stats ${JSON.stringify(stats)}`);
});
