// MAC addresses travel as lowercase colon-separated hex everywhere inside fleetboot; every
// edge (DHCP chaddr, iPXE ${net0/mac}, CLI, API) converts through here.

export type Mac = string & { readonly __mac: unique symbol };

/** Accepts `52:54:00:12:34:56`, `52-54-00-12-34-56`, `525400123456`; null when it is not a MAC. */
export function parseMac(text: string): Mac | null {
  const hex = text.trim().toLowerCase().replace(/[:.-]/g, '');
  if (!/^[0-9a-f]{12}$/.test(hex)) return null;
  return hex.match(/../g)!.join(':') as Mac;
}

const hexByte = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, '0'));

export function macFromBytes(bytes: Uint8Array): Mac {
  // Called for every DHCP packet: a table lookup per byte, no intermediate array.
  let s = '';
  const n = Math.min(6, bytes.length);
  for (let i = 0; i < n; i++) s += i === 0 ? hexByte[bytes[i]!]! : `:${hexByte[bytes[i]!]!}`;
  return s as Mac;
}

export function macToBytes(mac: Mac): Buffer {
  return Buffer.from(mac.replace(/:/g, ''), 'hex');
}
