// Everything a read-only, root-confined TFTP server must refuse: each attempt gets ERROR 2,
// a `tftp_refused` log line with the reason, and a counter; nothing outside the root leaks.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { execa } from 'execa';
import { tempDir } from './fixtures.ts';
import { requires } from './requires.ts';
import { RawClient, request, startTftp } from './tftp-rawclient.ts';

async function ask(port: number, packet: Buffer): Promise<{ code: number; message: string }> {
  const c = await RawClient.open();
  try {
    await c.send(packet, port);
    const { msg } = await c.next();
    assert.equal(msg.readUInt16BE(0), 5, `expected ERROR, got opcode ${msg.readUInt16BE(0)}`);
    return { code: msg.readUInt16BE(2), message: msg.subarray(4, msg.indexOf(0, 4)).toString() };
  } finally {
    c.close();
  }
}

test('traversal, absolute paths, NUL bytes, symlinks out of the root, writes and unknown modes get ERROR 2, logged and counted', { skip: requires({ commands: ['curl'] }) }, async (t) => {
  const outside = tempDir(t, 'fleetboot-outside-');
  writeFileSync(join(outside, 'secret'), 'do not serve');
  const dir = tempDir(t);
  mkdirSync(join(dir, 'sub'));
  writeFileSync(join(dir, 'sub', 'ok.bin'), 'fine');
  symlinkSync(join(outside, 'secret'), join(dir, 'link-out'));
  symlinkSync(outside, join(dir, 'dir-out'));
  symlinkSync(join(dir, 'sub', 'ok.bin'), join(dir, 'link-in'));
  const { port, server, logs } = await startTftp(t, dir);

  const attempts: Array<[string, Buffer, string]> = [
    ['dotdot', request('../' + outside.split('/').pop() + '/secret'), 'dotdot'],
    ['dotdot inside', request('sub/../../etc/passwd'), 'dotdot'],
    ['absolute', request(join(outside, 'secret')), 'absolute'],
    ['absolute etc', request('/etc/passwd'), 'absolute'],
    ['backslash', request('..\\..\\etc\\passwd'), 'backslash'],
    ['symlink file', request('link-out'), 'outside-root'],
    ['symlink dir', request('dir-out/secret'), 'outside-root'],
    // A NUL inside the filename ends it early; the rest becomes the "mode" and is refused.
    ['nul', request(Buffer.from('sub/ok.bin\0../../etc/passwd')), 'mode'],
    ['write', request('new-file', 'octet', {}, 2), 'write'],
    ['write traversal', request('../evil', 'octet', {}, 2), 'write'],
    ['mode mail', request('sub/ok.bin', 'mail'), 'mode'],
    ['mode unknown', request('sub/ok.bin', 'binary'), 'mode'],
    ['control', request('sub/ok\x01.bin'), 'control'],
    ['unterminated', Buffer.from('\0\x01sub/ok.bin\0octet'), 'malformed'],
  ];
  for (const [label, packet, reason] of attempts) {
    const e = await ask(port, packet);
    assert.equal(e.code, 2, `${label}: ${e.message}`);
    assert.ok(
      logs.some((l) => l.event === 'tftp_refused' && l.reason === reason),
      `${label}: no tftp_refused line with reason ${reason}`,
    );
  }
  const counted = Object.values(server.stats.refused).reduce((a, b) => a + b, 0);
  assert.equal(counted, attempts.length);
  assert.equal(server.stats.refused.dotdot, 2);
  assert.equal(server.stats.refused['outside-root'], 2);
  assert.equal(server.stats.served, 0);
  assert.ok(!existsSync(join(dir, 'new-file')));

  // A symlink that stays inside the root is fine.
  const out = join(tempDir(t), 'in');
  await execa('curl', ['-sS', '--fail', '--max-time', '20', '-o', out, `tftp://127.0.0.1:${port}/link-in`]);
  assert.equal(readFileSync(out, 'utf8'), 'fine');
});

test('an upload with a real client (tftp-hpa put) is refused and writes nothing', { skip: requires({ commands: ['tftp'] }) }, async (t) => {
  const dir = tempDir(t);
  const src = join(tempDir(t), 'upload.txt');
  writeFileSync(src, 'payload');
  const { port, server } = await startTftp(t, dir);
  const r = await execa('tftp', ['127.0.0.1', String(port), '-m', 'binary', '-c', 'put', src, 'upload.txt'], { reject: false, timeout: 20_000 });
  assert.match(`${r.stdout}${r.stderr}`, /Error code 2/);
  assert.equal(server.stats.refused.write, 1);
  assert.ok(!existsSync(join(dir, 'upload.txt')));
});

test('a missing file is ERROR 1 and a bad blksize is ERROR 8', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'f'), 'x');
  const { port, server } = await startTftp(t, dir);
  assert.equal((await ask(port, request('nope'))).code, 1);
  assert.equal((await ask(port, request('f', 'octet', { blksize: '4' }))).code, 8);
  assert.equal(server.stats.notFound, 1);
});
