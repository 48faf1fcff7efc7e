// FLEETBOOT_CAPTURE_DIR (src/capture.ts), how fuzz/corpus got its seeds from real clients:
// what reaches the TFTP server's request parser and the DHCP server's decoder is kept as
// <dir>/<target>/<sha1>, byte for byte. The variable is read when src/capture.ts loads, so it
// is set before the servers are imported (node --test runs each file in a process of its own).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

const sha1 = (b: Buffer): string => createHash('sha1').update(b).digest('hex');

async function until(what: string, ok: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) assert.fail(`${what} did not happen within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('with FLEETBOOT_CAPTURE_DIR set, a TFTP request and a DHCP packet are kept as seeds, byte for byte', async (t) => {
  // Not tempDir from fixtures.ts: importing it would load src/capture.ts before the variable is set.
  const capture = mkdtempSync(join(tmpdir(), 'fleetboot-capture-'));
  t.after(() => rmSync(capture, { recursive: true, force: true }));
  process.env['FLEETBOOT_CAPTURE_DIR'] = capture;
  const { RawClient, request, startTftp } = await import('./tftp-rawclient.ts');
  const { clientPacket, RelayAgent } = await import('./dhcp-fixtures.ts');
  const { startHeadNode, tempDir } = await import('./fixtures.ts');

  const dir = tempDir(t);
  writeFileSync(join(dir, 'undionly.kpxe'), 'ipxe');
  const { port } = await startTftp(t, dir);
  const rrq = request('undionly.kpxe', 'octet', { tsize: '0', blksize: '1468' });
  const client = await RawClient.open();
  t.after(() => client.close());
  await client.send(rrq, port);
  const kept = join(capture, 'tftp-request', sha1(rrq));
  await until('the RRQ capture', () => existsSync(kept));
  assert.deepEqual(readFileSync(kept), rrq);

  const agent = await RelayAgent.open(t);
  const { head } = await startHeadNode(t, tempDir(t), {
    dhcp: { mode: 'full', listen: '127.0.0.1', port: 0, relayReplyPort: agent.port },
    networks: [{ name: 'cap', subnet: '10.41.0.0/16', serverAddress: '10.41.0.1', range: { start: '10.41.1.0', end: '10.41.1.255' }, relayAddresses: ['127.0.0.1'] }],
  });
  const discover = clientPacket({ type: 1, mac: '52:54:00:41:00:01', model: 'ovmf-pxe', giaddr: '127.0.0.1', xid: 0x4100 });
  const offer = await agent.exchange(discover, head.dhcp!.ports().dhcp);
  assert.equal(offer.options.messageType, 'offer');
  assert.deepEqual(readFileSync(join(capture, 'dhcp-packet', sha1(discover))), discover);
});
