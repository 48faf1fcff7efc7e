// A real DHCP client (busybox udhcpc) in its own network namespace, wired by veth pairs to
// a namespace running `fleetboot serve`. Proves: a lease, a renewal (SIGUSR1) and a release
// (SIGUSR2) over real broadcast/unicast; and interface binding: each admin interface
// answers with its own network, a non-admin interface gets no answer at all, and the
// namespace has no default route (docs/netboot-notes.md pitfalls 1 and 8). Also: a packet captured
// from a real udhcpc round-trips through the codec.
import assert from 'node:assert/strict';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { execa, type ResultPromise } from 'execa';
import { decodePacket, encodePacket } from '../src/dhcp/packet.ts';
import { Store } from '../src/store/store.ts';
import { cliPath, tempDir, testNamespace } from './fixtures.ts';
import { requires } from './requires.ts';

let seq = 0;
const nsName = (role: string): string => testNamespace(`dhcp${++seq}${role}`);
const needs = requires({ root: 'network namespaces and veth pairs', commands: ['ip', 'udhcpc'] });

/**
 * Cleanup for a test that starts processes in namespaces, however it ends: the processes first
 * (deleting a namespace does not end what runs in it), then the namespaces.
 */
function cleanup(t: { after: (fn: () => Promise<void>) => void }): { procs: ResultPromise[]; namespaces: string[] } {
  const held = { procs: [] as ResultPromise[], namespaces: [] as string[] };
  t.after(async () => {
    for (const p of held.procs) p.kill('SIGTERM');
    await Promise.allSettled(held.procs);
    for (const ns of held.namespaces) await execa('ip', ['netns', 'del', ns], { reject: false });
  });
  return held;
}

async function ip(...args: string[]): Promise<void> {
  await execa('ip', args);
}

/** Resolves with the first line of `proc`'s stdout that matches, rejects when it exits first. */
function lines(proc: ResultPromise): { next: (re: RegExp, ms?: number) => Promise<RegExpExecArray>; all: string[] } {
  const all: string[] = [];
  const waiters: { re: RegExp; resolve: (m: RegExpExecArray) => void }[] = [];
  let seen = 0;
  createInterface({ input: proc.stdout! }).on('line', (line) => {
    all.push(line);
    for (const w of [...waiters]) {
      const m = w.re.exec(line);
      if (m) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  });
  return {
    all,
    next: (re, ms = 20_000) =>
      new Promise((resolve, reject) => {
        for (; seen < all.length; seen++) {
          const m = re.exec(all[seen]!);
          if (m) {
            seen++;
            resolve(m);
            return;
          }
        }
        const timer = setTimeout(() => reject(new Error(`no line matching ${re} within ${ms} ms; got:\n${all.join('\n')}`)), ms);
        waiters.push({
          re,
          resolve: (m) => {
            clearTimeout(timer);
            seen = all.length;
            resolve(m);
          },
        });
      }),
  };
}

test('udhcpc in a namespace gets a lease, renews and releases it; only admin interfaces answer', { timeout: 90_000, skip: needs }, async (t) => {
  const { procs, namespaces: created } = cleanup(t); // before tempDir: after-hooks run in order
  const dir = tempDir(t);
  const server = nsName('s');
  const clients = { a: nsName('a'), b: nsName('b'), x: nsName('x') };
  const tag = `${process.pid % 100000}`;
  for (const ns of [server, clients.a, clients.b, clients.x]) {
    await ip('netns', 'add', ns);
    created.push(ns);
    await ip('-n', ns, 'link', 'set', 'lo', 'up');
  }
  // Server side: sa <-> a0 (admin network A), sb <-> b0 (admin network B), sx <-> x0 (not admin).
  const wires: [string, string, string, string | null][] = [
    [`sa${tag}`, clients.a, 'a0', '10.77.0.1/24'],
    [`sb${tag}`, clients.b, 'b0', '10.78.0.1/24'],
    [`sx${tag}`, clients.x, 'x0', '10.79.0.1/24'],
  ];
  for (const [sif, cns, cif, addr] of wires) {
    await ip('link', 'add', sif, 'netns', server, 'type', 'veth', 'peer', 'name', cif, 'netns', cns);
    await ip('-n', server, 'addr', 'add', addr!, 'dev', sif);
    await ip('-n', server, 'link', 'set', sif, 'up');
    await ip('-n', cns, 'link', 'set', cif, 'up');
  }
  const config = {
    dataDir: join(dir, 'var'),
    apiTokenFile: join(dir, 'var', 'api-token'),
    http: { listen: '127.0.0.1', port: 0 },
    log: { level: 'debug' },
    dhcp: { mode: 'full' },
    networks: [
      { name: 'rack-a', interface: `sa${tag}`, subnet: '10.77.0.0/24', serverAddress: '10.77.0.1', range: { start: '10.77.0.100', end: '10.77.0.110' }, leaseSeconds: 120 },
      { name: 'rack-b', interface: `sb${tag}`, subnet: '10.78.0.0/24', serverAddress: '10.78.0.1', range: { start: '10.78.0.100', end: '10.78.0.110' }, leaseSeconds: 120 },
    ],
  };
  writeFileSync(join(dir, 'fleetboot.json'), JSON.stringify(config));
  const head = execa('ip', ['netns', 'exec', server, process.execPath, cliPath, '--config', join(dir, 'fleetboot.json'), 'serve'], {
    cwd: dir,
    reject: false,
    buffer: false,
  });
  procs.push(head);
  const headLog = lines(head);
  await headLog.next(/"event":"dhcp_started"/);

  const script = join(dir, 'udhcpc.script');
  writeFileSync(
    script,
    `#!/bin/sh
case "$1" in
  deconfig) ip addr flush dev "$interface" ;;
  bound|renew) ip addr flush dev "$interface"; ip addr add "$ip/$mask" dev "$interface" ;;
esac
echo "EVENT $1 \${ip:-none} \${lease:-none} \${serverid:-none}"
`,
  );
  chmodSync(script, 0o755);
  const udhcpc = (ns: string, iface: string, extra: string[]): ResultPromise => {
    const p = execa('ip', ['netns', 'exec', ns, 'udhcpc', '-f', '-i', iface, '-s', script, '-T', '1', '-t', '4', ...extra], { reject: false, buffer: false });
    procs.push(p);
    return p;
  };

  // The non-admin interface: udhcpc gives up (-n) after its four DISCOVERs go unanswered.
  const stranger = udhcpc(clients.x, 'x0', ['-n', '-q', '-A', '1']);
  const a = udhcpc(clients.a, 'a0', []);
  const b = udhcpc(clients.b, 'b0', ['-n', '-q']);
  const aOut = lines(a);
  const bOut = lines(b);
  const bound = await aOut.next(/^EVENT bound (\S+) (\d+) (\S+)/);
  assert.equal(bound[1], '10.77.0.100');
  assert.equal(bound[2], '120');
  assert.equal(bound[3], '10.77.0.1');
  const bBound = await bOut.next(/^EVENT bound (\S+) (\d+) (\S+)/);
  assert.equal(bBound[1], '10.78.0.100'); // the network of the interface it came in on
  assert.equal(bBound[3], '10.78.0.1');

  // Renew (RFC 2131 §4.4.5 RENEWING: unicast REQUEST with ciaddr).
  a.kill('SIGUSR1');
  const renewed = await aOut.next(/^EVENT renew (\S+) (\d+)/);
  assert.equal(renewed[1], '10.77.0.100');
  await headLog.next(/"event":"dhcp_ack".*"ip":"10\.77\.0\.100"/);

  // Release.
  a.kill('SIGUSR2');
  await aOut.next(/^EVENT deconfig/);
  await headLog.next(/"event":"dhcp_release".*"ip":"10\.77\.0\.100"/);

  const strangerResult = await stranger;
  assert.notEqual(strangerResult.exitCode, 0, 'udhcpc on the non-admin interface must not get a lease');
  await b;

  // The leases are on disk, in the server's registry.
  head.kill('SIGTERM');
  await head;
  const store = Store.open(Store.fileIn(config.dataDir));
  try {
    const leases = store.leases.list();
    const la = leases.find((l) => l.ip === '10.77.0.100');
    assert.equal(la?.state, 'released');
    assert.equal(la?.network, 'rack-a');
    assert.equal(leases.find((l) => l.ip === '10.78.0.100')?.network, 'rack-b');
    assert.equal(leases.some((l) => l.ip.startsWith('10.79.')), false);
    const kinds = store.events.timeline(store.nodes.findByAddress('10.78.0.100')?.node.id ?? -1).map((e) => e.event);
    assert.deepEqual(kinds.slice(0, 3), ['dhcp_discover', 'dhcp_request', 'dhcp_ack']);
  } finally {
    store.close();
  }
});

test('a DISCOVER captured from a real udhcpc decodes and round-trips through the codec', { timeout: 30_000, skip: needs }, async (t) => {
  const { procs, namespaces } = cleanup(t);
  const dir = tempDir(t);
  const listener = nsName('l');
  const client = nsName('c');
  for (const ns of [listener, client]) {
    await ip('netns', 'add', ns);
    namespaces.push(ns);
    await ip('-n', ns, 'link', 'set', 'lo', 'up');
  }
  await ip('link', 'add', 'l0', 'netns', listener, 'type', 'veth', 'peer', 'name', 'c0', 'netns', client);
  await ip('-n', client, 'link', 'set', 'c0', 'address', '52:54:00:c0:ff:ee');
  for (const [ns, dev] of [[listener, 'l0'], [client, 'c0']] as const) await ip('-n', ns, 'link', 'set', dev, 'up');
  // A capture socket on :67 in the listener namespace prints the first datagram as hex.
  writeFileSync(
    join(dir, 'capture.mjs'),
    `import dgram from 'node:dgram';
const s = dgram.createSocket('udp4');
s.on('message', (m) => { console.log(m.toString('hex')); s.close(); });
s.bind(67, () => console.log('listening'));
setTimeout(() => s.close(), 15000).unref();
`,
  );
  const capture = execa('ip', ['netns', 'exec', listener, process.execPath, join(dir, 'capture.mjs')], { reject: false, buffer: false });
  procs.push(capture);
  const out = lines(capture);
  await out.next(/^listening$/);
  const udhcpc = execa('ip', ['netns', 'exec', client, 'udhcpc', '-f', '-n', '-q', '-i', 'c0', '-s', '/bin/true', '-t', '2', '-T', '1', '-x', 'hostname:fbnode'], {
    reject: false,
  });
  procs.push(udhcpc);
  const [hex] = await out.next(/^[0-9a-f]{480,}$/);
  await Promise.all([capture, udhcpc]);
  const raw = Buffer.from(hex, 'hex');
  const first = decodePacket(raw);
  assert.ok(first.ok, first.ok ? '' : first.reason);
  const p = first.packet;
  assert.equal(p.options.messageType, 'discover');
  assert.equal(p.chaddr.toString('hex'), '525400c0ffee');
  assert.match(p.options.vendorClassId ?? '', /^udhcp /);
  assert.equal(p.options.hostname, 'fbnode');
  assert.equal(p.options.clientId?.toString('hex'), '01525400c0ffee'); // RFC 2132 §9.14: type 1 + MAC
  const again = decodePacket(encodePacket(p));
  assert.ok(again.ok);
  assert.deepEqual(again.packet, p);
});
