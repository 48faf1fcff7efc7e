import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { execa, type ResultPromise } from 'execa';
import { cliPath, runCli, tempDir } from './fixtures.ts';

interface Serving {
  child: ResultPromise<{ cwd: string; reject: false; buffer: true }>;
  port: number;
  lines: { event?: string; pid?: number; msg?: string }[];
}

/** `fleetboot serve` in `dir` as an operator runs it; resolves once HTTP listens. Killed when the test ends. */
async function serve(t: { after: (fn: () => void) => void }, dir: string): Promise<Serving> {
  const child = execa(process.execPath, [cliPath, 'serve'], { cwd: dir, reject: false, buffer: true });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const lines: Serving['lines'] = [];
  let rest = '';
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      rest += chunk.toString();
      const parts = rest.split('\n');
      rest = parts.pop() ?? '';
      for (const line of parts) {
        const l = JSON.parse(line) as Serving['lines'][number] & { port?: number };
        lines.push(l);
        if (l.event === 'http_listen') resolve(l.port!);
      }
    });
    void child.then((r) => reject(new Error(`serve exited early (${String(r.exitCode)}): ${String(r.stderr)}`)));
  });
  return { child, port, lines };
}

test('a second serve on the same data dir is refused naming the first one\'s PID; after kill -9 of the first, a new serve takes over', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'fleetboot.json'), JSON.stringify({ http: { listen: '127.0.0.1', port: 0 } }));
  const first = await serve(t, dir);
  const pid = first.child.pid!;

  const second = await runCli(['serve'], dir, {}, 30_000);
  assert.equal(second.exitCode, 1, String(second.stderr));
  assert.match(String(second.stderr), new RegExp(`^fleetboot: data dir .+ is in use by fleetboot serve PID ${pid} on `));
  // The refused serve touched nothing: the first still answers.
  assert.equal((await fetch(`http://127.0.0.1:${first.port}/healthz`)).status, 200);

  // Commands that read or write the registry in a transaction keep working beside it.
  const list = await runCli(['node', 'list', '--json'], dir);
  assert.equal(list.exitCode, 0, String(list.stderr));
  const status = await runCli(['status', '--json'], dir);
  assert.equal(status.exitCode, 0, String(status.stderr));

  first.child.kill('SIGKILL');
  await first.child;
  const third = await serve(t, dir);
  const takeover = third.lines.find((l) => l.event === 'datadir_lock_takeover');
  assert.ok(takeover, 'no datadir_lock_takeover warning');
  assert.equal(takeover.pid, pid);
  assert.equal((await fetch(`http://127.0.0.1:${third.port}/healthz`)).status, 200);

  // A clean stop releases the lock and its holder file: the next serve starts without a warning.
  third.child.kill('SIGTERM');
  assert.equal((await third.child).exitCode, 0);
  assert.equal(existsSync(join(dir, 'var', 'serve.holder')), false);
  const fourth = await serve(t, dir);
  assert.equal(fourth.lines.some((l) => l.event === 'datadir_lock_takeover'), false);
  fourth.child.kill('SIGTERM');
  await fourth.child;
});
