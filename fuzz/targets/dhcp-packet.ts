// DHCP codec (src/dhcp/packet.ts): decodePacket never throws and either refuses with a reason
// or gives a packet that encodePacket writes and decodePacket reads back to the same value,
// and whose encoding is stable from then on (encode . decode . encode = encode).
import { isDeepStrictEqual } from 'node:util';
import { decodePacket, encodePacket } from '../../src/dhcp/packet.ts';
import { check, type FuzzTarget } from '../target.ts';

export const dhcpPacket: FuzzTarget = {
  name: 'dhcp-packet',
  about: 'decodePacket refuses with a reason or round-trips through encodePacket',
  coverage: ['/src/dhcp/packet.ts', '/src/ipv4.ts'],
  // RFC 2131 §3 magic cookie, RFC 2132 option codes with lengths, PXE and iPXE strings.
  dictionary: ['\x63\x82\x53\x63', '\x35\x01\x01', '\x35\x01\x03', '\x34\x01\x03', '\xff', '\x37\x04\x01\x03\x06\x2b', '\x39\x02\x05\xdc', '\x3d\x07\x01', '\x52\x06\x01\x04', '\x5d\x02\x00\x07', '\x5e\x03\x01\x02\x01', '\x61\x11\x00', 'PXEClient:Arch:00007:UNDI:003016', 'iPXE', '\xaf\x04', '\x2b\x04', '\x0c\x04', '\x01\x04\xff\xff\xff\x00'],
  format: 'bytes',
  maxLen: 1500,
  run(data) {
    const first = decodePacket(data);
    if (!first.ok) {
      check(typeof first.reason === 'string' && first.reason.length > 0, () => 'a refusal without a reason');
      return;
    }
    const wire = encodePacket(first.packet);
    const second = decodePacket(wire);
    check(second.ok, () => `decodePacket refuses what encodePacket wrote: ${second.ok ? '' : second.reason}`);
    if (!second.ok) return;
    check(isDeepStrictEqual(second.packet, first.packet), () => `round trip changed the packet: ${describeDiff(first.packet, second.packet)}`);
    const again = encodePacket(second.packet);
    check(again.equals(wire), () => 'encodePacket is not stable across a round trip');
  },
};

/** The top-level fields (or option names) that differ, for the finding's message. */
function describeDiff(a: object, b: object): string {
  const out: string[] = [];
  const ra = a as Record<string, unknown>;
  const rb = b as Record<string, unknown>;
  for (const k of Object.keys(ra)) {
    if (k === 'options') {
      const oa = ra[k] as Record<string, unknown>;
      const ob = rb[k] as Record<string, unknown>;
      for (const ok of Object.keys(oa)) if (!isDeepStrictEqual(oa[ok], ob[ok])) out.push(`options.${ok}`);
    } else if (!isDeepStrictEqual(ra[k], rb[k])) out.push(`${k}: ${JSON.stringify(ra[k])} -> ${JSON.stringify(rb[k])}`);
  }
  return out.join(', ') || '(no field named)';
}
