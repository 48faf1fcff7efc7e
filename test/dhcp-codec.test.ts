// The DHCPv4 codec against packets shaped like the real clients in docs/netboot-notes.md's table
// (built byte by byte in dhcp-fixtures.ts), round trips, and malformed input.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bootAnswerFor, classifyClient, ipxeNoPxeDhcp, type BootSettings } from '../src/dhcp/boot.ts';
import { decodePacket, encodePacket, type DhcpPacket } from '../src/dhcp/packet.ts';
import { clientPacket, type ClientModel } from './dhcp-fixtures.ts';

const decode = (b: Buffer): DhcpPacket => {
  const d = decodePacket(b);
  assert.ok(d.ok, d.ok ? '' : d.reason);
  return d.packet;
};

const uuid = '4c4c4544005a3510804bb4c04f565631';

test('decodes each client model of the docs/netboot-notes.md table into typed options', () => {
  const bios = decode(clientPacket({ type: 1, mac: '52:54:00:12:34:56', model: 'ipxe-bios', uuid, xid: 0xdeadbeef }));
  assert.equal(bios.xid, 0xdeadbeef);
  assert.equal(bios.chaddr.toString('hex'), '525400123456');
  assert.equal(bios.options.messageType, 'discover');
  assert.equal(bios.options.vendorClassId, 'PXEClient:Arch:00000:UNDI:002001');
  assert.equal(bios.options.userClass?.toString(), 'iPXE');
  assert.deepEqual(bios.options.clientArch, [0]);
  assert.deepEqual(bios.options.clientNdi, { type: 1, major: 2, minor: 1 });
  assert.equal(bios.options.clientUuid, '4c4c4544-005a-3510-804b-b4c04f565631');
  assert.equal(bios.options.maxMessageSize, 1472);
  assert.ok(bios.options.ipxeEncap && bios.options.ipxeEncap.length === 18);

  const uefi = decode(clientPacket({ type: 1, mac: '52:54:00:00:00:02', model: 'ipxe-uefi' }));
  assert.deepEqual(uefi.options.clientArch, [7]);
  assert.equal(uefi.options.clientUuid, '00000000-0000-0000-0000-000000000000');

  const ovmf = decode(clientPacket({ type: 1, mac: '52:54:00:00:00:03', model: 'ovmf-pxe', flags: 0x8000 }));
  assert.equal(ovmf.flags, 0x8000);
  assert.equal(ovmf.options.userClass, undefined);
  assert.equal(ovmf.options.parameterRequestList?.length, 35);

  const http = decode(clientPacket({ type: 1, mac: '52:54:00:00:00:04', model: 'ovmf-http' }));
  assert.deepEqual(http.options.clientArch, [16]);
  assert.equal(http.options.vendorClassId, 'HTTPClient:Arch:00016:UNDI:003000');

  const udhcpc = decode(
    clientPacket({ type: 3, mac: '02:00:00:00:00:05', requested: '10.0.0.9', serverId: '10.0.0.1', hostname: 'n5', clientId: Buffer.from('01020000000005', 'hex') }),
  );
  assert.equal(udhcpc.options.messageType, 'request');
  assert.equal(udhcpc.options.requestedAddress, '10.0.0.9');
  assert.equal(udhcpc.options.serverId, '10.0.0.1');
  assert.equal(udhcpc.options.hostname, 'n5');
  assert.equal(udhcpc.options.clientId?.toString('hex'), '01020000000005');
});

test('encode(decode(x)) keeps every field and option, unknown ones included', () => {
  const models: ClientModel[] = ['ipxe-bios', 'ipxe-uefi', 'ovmf-pxe', 'ovmf-http', 'udhcpc'];
  for (const model of models) {
    const raw = clientPacket({
      type: 3,
      mac: '52:54:00:aa:bb:cc',
      model,
      uuid,
      giaddr: '10.1.2.1',
      relayInfo: Buffer.from('0104000100020206aabbccddeeff', 'hex'),
      extra: [
        [81, Buffer.from('000000', 'hex')],
        [250, Buffer.from('private')],
      ],
    });
    const first = decode(raw);
    const again = decode(encodePacket(first));
    assert.deepEqual(again, first, model);
    assert.equal(first.giaddr, '10.1.2.1');
    assert.equal(first.options.other.get(250)?.toString(), 'private');
    assert.equal(first.options.relayAgentInfo?.circuitId?.toString('hex'), '00010002');
    assert.equal(first.options.relayAgentInfo?.remoteId?.toString('hex'), 'aabbccddeeff');
  }
});

test('long options are split and joined per RFC 3396; replies are at least 300 bytes', () => {
  const p = decode(clientPacket({ type: 1, mac: '52:54:00:00:00:01' }));
  p.options.other.set(224, Buffer.alloc(600, 7));
  const bytes = encodePacket(p);
  assert.ok(bytes.length >= 300);
  assert.equal(decode(bytes).options.other.get(224)?.length, 600);
  const small = decode(clientPacket({ type: 1, mac: '52:54:00:00:00:01' }));
  small.options = { other: new Map(), messageType: 'offer' };
  assert.equal(encodePacket(small).length, 300); // RFC 1542 §2.1 minimum
});

test('option overload (52) reads options from the file and sname fields', () => {
  const raw = clientPacket({ type: 1, mac: '52:54:00:00:00:01' });
  const b = Buffer.from(raw);
  // Put option 52 = 1 (file holds options) before the end, and option 12 inside `file`.
  const end = b.indexOf(255, 240);
  Buffer.from([52, 1, 1, 255]).copy(b, end);
  Buffer.from([12, 4, ...Buffer.from('node'), 255]).copy(b, 108);
  const p = decode(b);
  assert.equal(p.options.hostname, 'node');
  assert.equal(p.file, '');
});

test('malformed packets come back as reasons, never exceptions', () => {
  const good = clientPacket({ type: 1, mac: '52:54:00:00:00:01', model: 'ipxe-bios' });
  const cases: [string, Buffer][] = [
    ['truncated', good.subarray(0, 200)],
    ['empty', Buffer.alloc(0)],
    ['wrong cookie', Buffer.concat([good.subarray(0, 236), Buffer.from([1, 2, 3, 4]), good.subarray(240)])],
    ['zero hlen', Buffer.concat([good.subarray(0, 2), Buffer.from([0]), good.subarray(3)])],
    ['huge hlen', Buffer.concat([good.subarray(0, 2), Buffer.from([200]), good.subarray(3)])],
    ['option past the end', Buffer.concat([good.subarray(0, 240), Buffer.from([53, 1, 1, 12, 200, 65])])],
    ['no end option', Buffer.concat([good.subarray(0, 240), Buffer.from([53, 1, 1])])],
    ['bad overload', Buffer.concat([good.subarray(0, 240), Buffer.from([53, 1, 1, 52, 1, 9, 255])])],
    ['overload area past end', (() => {
      const b = Buffer.concat([good.subarray(0, 240), Buffer.from([53, 1, 1, 52, 1, 2, 255])]);
      Buffer.from([12, 90]).copy(b, 44);
      return b;
    })()],
    ['bad message type', Buffer.concat([good.subarray(0, 240), Buffer.from([53, 1, 99, 255])])],
    ['bad option 54 length', Buffer.concat([good.subarray(0, 240), Buffer.from([53, 1, 1, 54, 3, 1, 2, 3, 255])])],
    ['bad option 93 length', Buffer.concat([good.subarray(0, 240), Buffer.from([53, 1, 1, 93, 3, 0, 0, 7, 255])])],
  ];
  // The decoder keeps its scan state between packets (packet.ts): each bad packet is followed
  // by the good one, which must decode exactly as on its own, with nothing left over.
  const alone = decode(good);
  for (const [name, bytes] of cases) {
    const d = decodePacket(bytes);
    assert.equal(d.ok, false, name);
    if (!d.ok) assert.ok(d.reason.length > 0, name);
    assert.deepEqual(decode(good), alone, `good packet after ${name}`);
  }
  // Decoded values are copies: reusing the receive buffer does not change them.
  const buf = Buffer.from(good);
  const kept = decode(buf);
  buf.fill(0xff, 240);
  assert.deepEqual(kept, alone);
});

test('boot decision follows the client table', () => {
  const s: BootSettings = { httpBase: 'http://10.0.0.1:8080', serverAddress: '10.0.0.1', bios: 'undionly.kpxe', efiX64: 'snponly.efi', efiArm64: undefined };
  const answer = (model: ClientModel) => bootAnswerFor(classifyClient(decode(clientPacket({ type: 1, mac: '52:54:00:00:00:01', model })).options), s);
  assert.deepEqual(answer('ipxe-bios'), { bootfile: 'http://10.0.0.1:8080/boot/stage1.ipxe', tftp: false, vendorClass: null, reason: 'ipxe stage1' });
  assert.equal(answer('ipxe-uefi')?.bootfile, 'http://10.0.0.1:8080/boot/stage1.ipxe');
  assert.deepEqual(answer('ovmf-pxe'), { bootfile: 'snponly.efi', tftp: true, vendorClass: null, reason: 'pxe efi-x64' });
  assert.deepEqual(answer('ovmf-http'), { bootfile: 'http://10.0.0.1:8080/ipxe/snponly.efi', tftp: false, vendorClass: 'HTTPClient', reason: 'uefi http boot (efi-x64-http)' });
  assert.equal(answer('udhcpc'), null);
  const bios = decode(clientPacket({ type: 1, mac: '52:54:00:00:00:01', model: 'ovmf-pxe' }));
  bios.options.clientArch = [0];
  assert.equal(bootAnswerFor(classifyClient(bios.options), s)?.bootfile, 'undionly.kpxe');
  bios.options.clientArch = [11];
  assert.equal(bootAnswerFor(classifyClient(bios.options), s), null); // arm64 only when configured
  assert.equal(bootAnswerFor(classifyClient(bios.options), { ...s, efiArm64: 'snp-arm64.efi' })?.bootfile, 'snp-arm64.efi');
  assert.equal(ipxeNoPxeDhcp.toString('hex'), 'b00101'); // on the wire: af 03 b0 01 01
});
