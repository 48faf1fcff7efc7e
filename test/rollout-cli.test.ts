// `fleetboot rollout ...` run as an operator runs it, against a registry in a temporary folder
// with no head node: the verbs plan from the registry and write only the journal.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseMac } from '../src/mac.ts';
import { setNodeFields, setupNode } from '../src/nodeconfig/lifecycle.ts';
import { nodeKeysIn } from '../src/nodeconfig/secrets.ts';
import { importLinuxPlatform, readLinuxManifest } from '../src/platforms/import.ts';
import { Store } from '../src/store/store.ts';
import { execa } from 'execa';
import { cliPath, runCli, tempDir } from './fixtures.ts';
import { writeLinuxPlatform } from './platform-fixtures.ts';

/** A test that hangs (a check-in that never lands) fails instead of holding up the suite; CLI runs are slow under load. */
const TIMEOUT = 300_000;

/** Four set-up nodes running lab-A, two per rack, and platforms lab-A and lab-B. */
async function seed(dir: string): Promise<void> {
  const store = Store.open(Store.fileIn(join(dir, 'var')));
  try {
    for (const stamp of ['lab-A', 'lab-B']) {
      const m = readLinuxManifest(writeLinuxPlatform(join(dir, 'src'), { stamp }));
      await importLinuxPlatform(m.manifest, m.dir, { store, platformImagesDir: join(dir, 'platform-images') });
    }
    const keys = nodeKeysIn(join(dir, 'var'));
    for (let i = 1; i <= 4; i++) {
      const mac = parseMac(`52:54:00:88:00:0${i}`)!;
      let node = store.nodes.discover({ mac }).node;
      node = setupNode(store, keys, node, { network: { hostname: `cn${i}`, nics: [{ mac, tags: ['admin'] }] } });
      node = setNodeFields(store, node, [`traits.rack=${i <= 2 ? 'b12' : 'b13'}`]);
      store.nodes.update(node.id, { bootPlatform: 'lab-A', currentPlatform: 'lab-A', state: 'running' });
    }
  } finally {
    store.close();
  }
}

function journal(dir: string): { rollouts: number; states: string[] } {
  const store = Store.open(Store.fileIn(join(dir, 'var')));
  try {
    const all = store.rollouts.list();
    return { rollouts: all.length, states: all.map((r) => r.state) };
  } finally {
    store.close();
  }
}

test('rollout plan prints the waves across failure domains and touches nothing; bad flags exit 2 naming the flag', { timeout: TIMEOUT }, async (t) => {
  const dir = tempDir(t);
  await seed(dir);
  const plan = await runCli(['rollout', 'plan', '--target', 'lab-B', '--canary', '1', '--max-in-flight', '50%', '--domain', 'rack', '--soak', '2m', '--deadline', '10m', '--auto'], dir);
  assert.equal(plan.exitCode, 0, String(plan.stderr));
  const text = String(plan.stdout);
  assert.match(text, /^rollout of lab-B: 4 nodes in 3 waves \(1 canary\)/);
  assert.match(text, /max in flight 2 \(50% of 4\), at most 1 per rack; soak 2 min; boot deadline 10 min; failure budget 0/);
  assert.match(text, /wave 1 canary  cn1 \(rack b12\)\n/);
  assert.match(text, /wave 2         cn3 \(rack b13\), cn2 \(rack b12\)\n/);
  assert.deepEqual(journal(dir), { rollouts: 0, states: [] });

  const json = JSON.parse(String((await runCli(['rollout', 'plan', '--target', 'lab-B', '--nodes', 'cn2,cn4', '--canary', '0', '--json'], dir)).stdout)) as {
    plan: { waves: { nodes: { label: string }[] }[] };
  };
  assert.deepEqual(json.plan.waves.map((w) => w.nodes.map((n) => n.label)), [['cn2'], ['cn4']]);

  for (const [args, message] of [
    [['--target', 'lab-Z'], /^fleetboot: --target: platform "lab-Z" is not imported/],
    [['--target', 'lab-B', '--soak', 'soon'], /^fleetboot: --soak: expected a duration like 90s, 5m or 1h30m, got "soon"/],
    [['--target', 'lab-B', '--canary', '9'], /^fleetboot: --canary: 9 canaries but only 4 nodes to upgrade/],
    [['--target', 'lab-B', '--nodes', 'cn9'], /^fleetboot: --nodes: no node is "cn9"/],
    [['--target', 'lab-B', '--max-in-flight', 'lots'], /^fleetboot: --max-in-flight: expected a node count or a percentage/],
    [['--target', 'lab-B', '--deadline', '0'], /^fleetboot: --deadline: /],
    [['--target', 'lab-B', '--promote', '--auto'], /^fleetboot: --promote and --auto: give one/],
    [['--target', 'lab-B', '--domain', 'rack:x'], /^fleetboot: --domain: expected a trait name/],
  ] as const) {
    const r = await runCli(['rollout', 'plan', ...args], dir);
    assert.equal(r.exitCode, 2, `${args.join(' ')}: ${String(r.stderr)}`);
    assert.match(String(r.stderr), message);
  }
});

test('rollout start stores it and prints the id; status, list and the operator verbs only write the journal', { timeout: TIMEOUT }, async (t) => {
  const dir = tempDir(t);
  await seed(dir);
  const start = await runCli(['rollout', 'start', '--target', 'lab-B', '--nodes', 'rack=b12', '--canary', '1', '--promote'], dir);
  assert.equal(start.exitCode, 0, String(start.stderr));
  assert.match(String(start.stdout), /^rollout 1 of lab-B: 2 nodes in 2 waves, about 35 min\n  .*fleetboot rollout status 1$/);
  assert.deepEqual(journal(dir), { rollouts: 1, states: ['running'] });

  // Nothing runs it here: the nodes are still pending, and the status says so.
  const status = await runCli(['rollout', 'status'], dir);
  assert.equal(status.exitCode, 0, String(status.stderr));
  assert.match(String(status.stdout), /^rollout 1 of lab-B: running, wave 1 of 2; 0 verified, 0 in flight, 0 failed, 2 pending\n/);
  assert.match(String(status.stdout), /\n  cn1\s+pending\s+wave 1 canary\n  cn2\s+pending\s+wave 2$/);
  assert.doesNotMatch(String(status.stdout), /\[#*-*\]/, 'no progress bar when stdout is not a terminal');
  const statusJson = JSON.parse(String((await runCli(['rollout', 'status', '1', '--json'], dir)).stdout)) as {
    rollout: { id: number; state: string; summary: { pending: number }; steps: { label: string; state: string }[] };
  };
  assert.deepEqual([statusJson.rollout.id, statusJson.rollout.state, statusJson.rollout.summary.pending], [1, 'running', 2]);
  assert.deepEqual(statusJson.rollout.steps.map((s) => [s.label, s.state]), [['cn1', 'pending'], ['cn2', 'pending']]);

  // A node already in a rollout that is not over cannot join another.
  const again = await runCli(['rollout', 'start', '--target', 'lab-B', '--nodes', 'cn2,cn3', '--canary', '0'], dir);
  assert.equal(again.exitCode, 2);
  assert.match(String(again.stderr), /^fleetboot: rollout 1 \(running\) still has cn2; cancel it or wait for it to finish/);

  const steps: [string[], number, RegExp][] = [
    [['promote', '1'], 2, /^fleetboot: rollout 1 is running; promote is for a rollout waiting after its canaries/],
    [['pause', '1'], 0, /^rollout 1: paused \(paused by an operator\)$/],
    [['pause', '1'], 2, /^fleetboot: rollout 1 is paused; only a running rollout can be paused/],
    [['resume', '1'], 0, /^rollout 1: running$/],
    [['cancel', '1'], 0, /^rollout 1: cancelled \(cancelled by an operator\)$/],
    [['cancel', '1'], 2, /^fleetboot: rollout 1 is already cancelled/],
    [['pause', '7'], 2, /^fleetboot: no rollout "7" \(see fleetboot rollout list\)/],
  ];
  for (const [args, code, out] of steps) {
    const r = await runCli(['rollout', ...args], dir);
    assert.equal(r.exitCode, code, `${args.join(' ')}: ${String(r.stderr)}`);
    assert.match(String(code === 0 ? r.stdout : r.stderr), out, args.join(' '));
  }

  const list = await runCli(['rollout', 'list'], dir);
  assert.equal(list.exitCode, 0, String(list.stderr));
  assert.match(String(list.stdout), /^ID\s+TARGET\s+STATE\s+NODES\s+VERIFIED\s+FAILED\s+CREATED\s+REASON\n1\s+lab-B\s+cancelled\s+2\s+0\s+0\s+\S+Z\s+cancelled by an operator$/);
  const listJson = JSON.parse(String((await runCli(['rollout', 'list', '--json'], dir)).stdout)) as { rollouts: { id: number; state: string; steps?: unknown }[] };
  assert.deepEqual(listJson.rollouts.map((r) => [r.id, r.state, r.steps]), [[1, 'cancelled', undefined]]);

  assert.equal((await runCli(['rollout', 'status', '--watch', '--json'], dir)).exitCode, 2);
  for (const verb of ['plan', 'start', 'status', 'list', 'pause', 'resume', 'cancel', 'promote']) {
    const help = await runCli(['rollout', verb, '--help'], dir);
    assert.equal(help.exitCode, 0);
    assert.match(String(help.stdout), /Examples:\n  fleetboot rollout /, `${verb} --help has an example`);
    assert.match(String(help.stdout), /--json/, `${verb} has --json`);
  }
});

test('rollout status --watch prints each change until the rollout is over', { timeout: TIMEOUT }, async (t) => {
  const dir = tempDir(t);
  await seed(dir);
  assert.equal((await runCli(['rollout', 'start', '--target', 'lab-B', '--nodes', 'cn1', '--canary', '0'], dir)).exitCode, 0);
  const watch = execa(process.execPath, [cliPath, 'rollout', 'status', '1', '--watch'], { cwd: dir, reject: false, timeout: 30_000 });
  let seen = '';
  // Also on exit: a watcher that died early fails the assertions below instead of hanging the test.
  await new Promise<void>((resolve) => {
    watch.stdout!.on('data', (chunk: Buffer) => {
      seen += chunk.toString();
      if (seen.includes('rollout 1 of lab-B: running')) resolve();
    });
    watch.stdout!.on('close', () => resolve());
  });
  assert.equal((await runCli(['rollout', 'pause', '1'], dir)).exitCode, 0);
  assert.equal((await runCli(['rollout', 'cancel', '1'], dir)).exitCode, 0);
  const done = await watch;
  assert.equal(done.exitCode, 0, String(done.stderr));
  const headlines = String(done.stdout).split('\n').filter((l) => l.startsWith('rollout 1 of'));
  assert.deepEqual(headlines.map((l) => /: (\w+)/.exec(l)![1]), ['running', 'paused', 'cancelled']);
});
