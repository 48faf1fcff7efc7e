// The HTTP steps of a boot (the script, kernel, initrd, config modules) on the node's boot
// timeline: under ProxyDHCP they land on the node from the address the proxy exchange saw it
// claim, and each records how long its response took, so the waterfall needs no estimate.
// Over loopback: Linux routes all of 127/8 to lo, so each client binds its own 127.0.0.x.
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { request, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import express from 'express';
import { waterfalls } from '../src/boot/waterfall.ts';
import { waterfallSection } from '../src/http/dashboard/waterfall-view.ts';
import { silentLogger } from '../src/log.ts';
import { parseMac, type Mac } from '../src/mac.ts';
import { setupNode } from '../src/nodeconfig/lifecycle.ts';
import { nodeKeysIn } from '../src/nodeconfig/secrets.ts';
import { platformFileRoutes } from '../src/platforms/file-routes.ts';
import { importLinuxPlatform, readLinuxManifest } from '../src/platforms/import.ts';
import type { BootEvent } from '../src/store/events.ts';
import { Store } from '../src/store/store.ts';
import { clientPacket } from './dhcp-fixtures.ts';
import { startHeadNode, tempDir } from './fixtures.ts';
import { writeLinuxPlatform } from './platform-fixtures.ts';

const D = { discover: 1, request: 3 } as const;

async function until(what: string, ok: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function sendDhcp(port: number, packet: Buffer): Promise<void> {
  const s = createSocket('udp4');
  s.bind(0, '127.0.0.1');
  await once(s, 'listening');
  await new Promise<void>((resolve, reject) => s.send(packet, port, '127.0.0.1', (err) => (err ? reject(err) : resolve())));
  s.close();
}

interface Fetched {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** Body bytes received (also when the client hung up early). */
  received: number;
  startedAt: number;
  firstByteAt: number;
  ms: number;
}

/**
 * GET `path` from source address `from`. `pauseMs`: stop reading for that long after the first
 * body chunk (the server's socket buffers fill and its writes wait). `hangUpAfter`: drop the
 * connection once that many body bytes arrived.
 */
function get(port: number, from: string, path: string, o: { headers?: Record<string, string>; pauseMs?: number; hangUpAfter?: number } = {}): Promise<Fetched> {
  const startedAt = Date.now();
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, localAddress: from, agent: false, headers: o.headers ?? {} }, (res) => {
      const chunks: Buffer[] = [];
      let received = 0;
      let firstByteAt = 0;
      const done = (): void =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), received, startedAt, firstByteAt, ms: performance.now() - t0 });
      res.on('data', (chunk: Buffer) => {
        if (received === 0) {
          firstByteAt = Date.now();
          if (o.pauseMs !== undefined) {
            res.pause();
            setTimeout(() => res.resume(), o.pauseMs);
          }
        }
        received += chunk.length;
        if (received <= 1 << 20) chunks.push(chunk);
        if (o.hangUpAfter !== undefined && received >= o.hangUpAfter) {
          req.destroy();
          done();
        }
      });
      res.on('end', done);
      res.on('error', (err: NodeJS.ErrnoException) => (o.hangUpAfter !== undefined ? done() : reject(err)));
    });
    req.on('error', (err) => (o.hangUpAfter !== undefined ? undefined : reject(err)));
    req.end();
  });
}

const network = (mac: Mac, ip: string) => ({ hostname: `cn-${ip.split('.').at(-1)}`, nics: [{ mac, tags: ['admin'] }], interfaces: [{ tag: 'admin', ip, netmask: '255.255.255.0' }] });

const httpSteps = new Set(['script', 'kernel', 'initrd', 'module']);

test('under ProxyDHCP, a node known only from the proxy exchange gets its script, platform files and config modules on its own timeline, each with its duration', { timeout: 60_000 }, async (t) => {
  const dir = tempDir(t);
  const h = await startHeadNode(t, dir, {
    tftp: { enabled: false },
    dhcp: { mode: 'proxy', listen: '127.0.0.1', port: 0, proxyPort: 0 },
    networks: [{ name: 'lo', subnet: '127.0.0.0/8', serverAddress: '127.0.0.1' }],
  });
  const { store } = h.head;
  const stamp = 'lab-6.1';
  const m = readLinuxManifest(writeLinuxPlatform(dir, { stamp }));
  await importLinuxPlatform(m.manifest, m.dir, { store, platformImagesDir: h.head.config.platformImagesDir });
  const keys = nodeKeysIn(h.head.config.dataDir);
  const macA = parseMac('52:54:00:a7:00:01')!;
  const macB = parseMac('52:54:00:b7:00:02')!;
  // Set up nodes whose static addresses are on another network: 127.0.0.77 is nobody's lease or NIC.
  const a = setupNode(store, keys, store.nodes.discover({ mac: macA }).node, { network: network(macA, '10.99.0.28') });
  const b = setupNode(store, keys, store.nodes.discover({ mac: macB }).node, { network: network(macB, '10.99.0.29') });
  const port = Number(new URL(h.url).port);
  const dhcp = h.head.dhcp!;

  // A's PXE firmware: DISCOVER (the boot starts), then the REQUEST confirming the other server's
  // offer of 127.0.0.77 (option 50, RFC 2131 §4.3.2), which fleetboot remembers.
  await sendDhcp(dhcp.ports().dhcp, clientPacket({ type: D.discover, mac: macA, model: 'ipxe-bios', xid: 0x7001 }));
  await sendDhcp(dhcp.ports().dhcp, clientPacket({ type: D.request, mac: macA, model: 'ipxe-bios', requested: '127.0.0.77', serverId: '127.0.0.2', xid: 0x7002 }));
  await until('the proxy to learn 127.0.0.77', () => dhcp.proxyAddresses.macOf('127.0.0.77') === macA);
  await until('the DISCOVER on the timeline', () => store.events.timeline(a.id).some((e) => e.event === 'dhcp_discover'));

  const script = await get(port, '127.0.0.77', `/boot/node.ipxe?mac=${macA}&uuid=&serial=&arch=x86_64`);
  assert.equal(script.status, 200);
  const text = script.body.toString();
  assert.match(text, /fleetboot_token=[\w-]{20,}/, 'the node asked from its own address: its script carries its token');
  // Firmware menus and older stage1 scripts name the files bare: no ?mac=, no ?token=. The
  // source address alone must then say whose fetch it is.
  const bare = (url: string) => new URL(url).pathname;
  const kernel = bare(/^kernel (\S+)/m.exec(text)![1]!);
  const initrd = bare(/^initrd --name \S+ (\S+)/m.exec(text)![1]!);
  assert.equal(kernel, `/os/${stamp}/vmlinuz`);
  assert.equal(initrd, `/os/${stamp}/initrd.img`);
  for (const path of [kernel, initrd]) assert.equal((await get(port, '127.0.0.77', path)).status, 200, path);
  const modules = [`/nodes/${macA}/networking.json`, `/nodes/${macA}/node.json`];
  for (const path of modules) {
    const res = await get(port, '127.0.0.77', path);
    assert.equal(res.status, 200, `${path}: ${res.body.toString()}`);
  }
  assert.equal(JSON.parse((await get(port, '127.0.0.77', `/nodes/${macA}/node.json`)).body.toString()).node.hostname, 'cn-28');

  // The proxy's memory opens only the MAC it saw claim the address.
  assert.equal((await get(port, '127.0.0.77', `/nodes/${macB}/networking.json`)).status, 403, "A's address does not open B's modules");
  assert.equal((await get(port, '127.0.0.79', `/nodes/${macA}/networking.json`)).status, 403, 'an address nobody claimed opens nothing');
  const asB = await get(port, '127.0.0.77', `/boot/node.ipxe?mac=${macB}&uuid=&serial=&arch=x86_64`);
  assert.equal(asB.status, 200);
  assert.match(asB.body.toString(), new RegExp(`fleetboot_node=${b.id}\\b`));
  assert.doesNotMatch(asB.body.toString(), /token/, "B's script asked for from A's address carries no secret");

  // 1 script + 2 files + 3 modules from A (and a 4th module read above), B's script on B.
  const stepsOfA = () => store.events.timeline(a.id).filter((e) => httpSteps.has(e.event));
  await until('every HTTP step of A on its timeline', () => stepsOfA().length >= 6).catch((err: Error) => {
    throw new Error(`${err.message}: ${JSON.stringify(stepsOfA().map((e) => [e.event, e.detail]))} ALL ${JSON.stringify(store.events.after(0, 100))}`);
  });
  // The journal holds steps in the order their responses ended, and one response's 'finish' may
  // come after the next request on another connection was served. The timeline's order is the
  // requests' arrival (`at`), which is what the waterfall sorts by; the requests above went one
  // after another, so their stamps never go backwards.
  const steps = stepsOfA();
  const named = (e: BootEvent): string => `${e.event} ${String(e.detail.path ?? e.detail.name ?? '')}`.trim();
  const requestOrder = ['script', 'kernel vmlinuz', 'initrd initrd.img', 'module networking.json', 'module node.json'];
  assert.deepEqual(steps.map(named).sort(), [...requestOrder, 'module node.json'].sort());
  const arrival = (name: string): number => Math.min(...steps.filter((e) => named(e) === name).map((e) => e.at));
  for (let i = 1; i < requestOrder.length; i++) {
    assert.ok(arrival(requestOrder[i - 1]!) <= arrival(requestOrder[i]!), `${requestOrder[i - 1]!} is dated no later than ${requestOrder[i]!}`);
  }
  for (const e of steps) {
    assert.equal(e.nodeId, a.id, `${e.event} on node A`);
    assert.equal(e.mac, macA, `${e.event} carries A's MAC`);
    assert.equal(e.detail.complete, true, `${e.event} complete`);
    assert.ok(typeof e.detail.ms === 'number' && e.detail.ms >= 0, `${e.event} ms: ${String(e.detail.ms)}`);
  }
  for (const e of steps.filter((x) => x.event === 'module')) assert.equal(e.detail.auth, 'proxy_address');
  assert.ok(store.events.timeline(b.id).every((e) => e.event !== 'module'), 'nothing of B was served');

  // The waterfall draws every HTTP step with its own duration: no step is an estimate.
  const boot = waterfalls(store.events.timeline(a.id)).at(-1)!;
  const drawn = boot.segments.filter((s) => httpSteps.has(s.step));
  assert.equal(drawn.length, 6);
  for (const s of drawn) assert.equal(s.measured, true, `${s.step} ${s.label} measured`);
  assert.doesNotMatch(String(waterfallSection([boot], Date.now())), /≈/);
});

/** A platform whose kernel is `kernelBytes` long, imported into `images`; the files routes on a loopback port. */
async function bigKernelServer(t: Parameters<typeof tempDir>[0], zeroCopy: boolean, kernelBytes: number) {
  const dir = tempDir(t);
  const store = Store.open(join(dir, 'fleetboot.db'));
  t.after(() => store.close());
  const images = join(dir, 'platform-images');
  const folder = writeLinuxPlatform(dir, { stamp: 'big-6.1' });
  const kernel = Buffer.alloc(kernelBytes);
  for (let i = 0; i < kernel.length; i += 4096) kernel.writeUInt32BE(i, i);
  writeFileSync(join(folder, 'vmlinuz'), kernel);
  const m = readLinuxManifest(folder);
  await importLinuxPlatform(m.manifest, m.dir, { store, platformImagesDir: images });
  const app = express();
  app.use(platformFileRoutes({ config: { platformImagesDir: images }, store, log: silentLogger, zeroCopy }));
  const server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  return { store, port: (server.address() as AddressInfo).port, kernel };
}

// Larger than what loopback buffers can hold (tcp_rmem's 32 MiB ceiling, tcp_wmem's 4 MiB, Node's
// own write buffers): the server cannot finish until the client has read most of it.
const BIG = 64 << 20;
const PAUSE_MS = 300;

for (const zeroCopy of [true, false]) {
  test(`a kernel download's event (${zeroCopy ? 'sendfile' : 'write'} path) spans its transfer, dated at the request; a range is the same step; a download cut short is incomplete`, { timeout: 60_000 }, async (t) => {
    const { store, port, kernel } = await bigKernelServer(t, zeroCopy, BIG);
    const mac = parseMac('52:54:00:c7:00:03')!;
    const { node } = store.nodes.discover({ mac });
    store.events.record({ event: 'dhcp_discover', nodeId: node.id, mac, detail: {} });
    const path = `/os/big-6.1/vmlinuz?mac=${mac}`;
    const kernels = (): BootEvent[] => store.events.timeline(node.id).filter((e) => e.event === 'kernel');

    // A slow reader: nothing read for PAUSE_MS after the first chunk.
    const slow = await get(port, '127.0.0.1', path, { pauseMs: PAUSE_MS });
    assert.equal(slow.status, 200);
    assert.equal(slow.received, BIG);
    await until('the slow download event', () => kernels().length === 1);
    const [whole] = kernels();
    const ms = whole!.detail.ms as number;
    assert.equal(whole!.detail.complete, true);
    assert.equal(whole!.detail.bytes, BIG);
    assert.ok(ms >= PAUSE_MS, `the transfer waited on the reader: ${ms} ms >= ${PAUSE_MS} ms`);
    assert.ok(ms <= slow.ms + 250, `no longer than the client saw: ${ms} ms vs ${slow.ms.toFixed(1)} ms`);
    assert.ok(whole!.at >= slow.startedAt && whole!.at <= slow.firstByteAt, 'the event is dated at the request, not at its end');

    // A range request (RFC 9110 §14.2) is the same step, with its offset.
    const part = await get(port, '127.0.0.1', path, { headers: { range: 'bytes=1048576-2097151' } });
    assert.equal(part.status, 206);
    assert.ok(part.body.equals(kernel.subarray(1 << 20, 2 << 20)));
    await until('the range event', () => kernels().length === 2);
    const ranged = kernels()[1]!;
    assert.deepEqual([ranged.detail.offset, ranged.detail.bytes, ranged.detail.complete], [1 << 20, 1 << 20, true]);
    assert.equal(typeof ranged.detail.ms, 'number');

    // The client hangs up after 1 MiB: recorded, incomplete, with what left the server.
    const cut = await get(port, '127.0.0.1', path, { hangUpAfter: 1 << 20 });
    await until('the cut-short event', () => kernels().length === 3, 20_000);
    const partial = kernels()[2]!;
    assert.equal(partial.detail.complete, false);
    const sent = partial.detail.sent as number;
    assert.ok(sent >= cut.received && sent < BIG, `sent ${sent}: at least the ${cut.received} bytes received, less than the file`);

    const boot = waterfalls(store.events.timeline(node.id)).at(-1)!;
    const bars = boot.segments.filter((s) => s.step === 'kernel');
    assert.equal(bars.length, 3);
    for (const s of bars) assert.equal(s.measured, true);
    assert.equal(bars[0]!.endMs - bars[0]!.startMs, ms);
    assert.doesNotMatch(String(waterfallSection([boot], Date.now())), /≈/);
  });
}
