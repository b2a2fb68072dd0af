// The host commands around a container's run: how its command exited (`exit_code`),
// `restart`, `logs` (the last lines, following across a rotation, raw bytes), and a
// stop whose caller is interrupted (Ctrl-C) does not hold the container busy.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe } from 'node:test';
import { eventually, hostCli, TestDaemon } from '../../helpers/daemon.js';
import { containersUnavailable, gatedTest } from '../../helpers/env.js';

interface Listed {
  name: string;
  state: string;
  pid: number;
  exit_code: number | null;
}

describe('container commands', () => {
  let daemon: TestDaemon;
  const test = gatedTest(containersUnavailable);
  const children: ReturnType<typeof spawn>[] = [];

  before(async () => {
    if (containersUnavailable) return;
    // The smallest cap, so that a few kilobytes of output rotate the log.
    daemon = await TestDaemon.start({ args: ['--max-log-size', '4096'] });
  });

  after(async () => {
    for (const child of children) child.kill('SIGKILL');
    await daemon?.destroy();
  });

  const listed = async (name: string): Promise<Listed> => {
    const r = await daemon.cli(['list', '--format', 'json']);
    assert.equal(r.code, 0, r.stderr);
    const found = (JSON.parse(r.out) as Listed[]).find((c) => c.name === name);
    assert.ok(found, `${name} is listed`);
    return found;
  };

  test("exit_code: null while it runs and before it ran; then its command's status, 128+N for signal N", async () => {
    assert.equal((await daemon.cli(['create', 'never'])).code, 0);
    assert.equal((await listed('never')).exit_code, null);
    await daemon.launch('seven', { command: ['sh', '-c', 'exit 7'] });
    await eventually(async () => (await listed('seven')).state === 'Stopped', 'seven has exited');
    assert.equal((await listed('seven')).exit_code, 7);
    await daemon.launch('sleeper', { command: ['sleep', '1000'] });
    assert.equal((await listed('sleeper')).exit_code, null);
    assert.equal((await daemon.cli(['stop', 'sleeper'])).code, 0);
    assert.equal((await listed('sleeper')).exit_code, 128 + 15, 'SIGTERM, passed on to the command');
    await daemon.launch('idle');
    assert.equal((await daemon.cli(['stop', 'idle'])).code, 0);
    assert.equal((await listed('idle')).exit_code, 0, 'an idle init stops cleanly on SIGTERM');
    // A new run clears the last one's status.
    assert.equal((await daemon.cli(['start', 'sleeper'])).code, 0);
    assert.equal((await listed('sleeper')).exit_code, null);
    assert.equal((await daemon.cli(['delete', '--force', 'sleeper'])).code, 0);
  });

  test('status NAME: one container with its command and last exit status, as list shows it in JSON', async () => {
    await daemon.launch('term', { command: ['sh', '-c', 'echo "it\'s up"; exec sleep 1000'] });
    const row = (out: string, field: string) => out.split('\n').find((line) => line.includes(` ${field} `)) ?? '';
    const running = await daemon.cli(['status', 'term']);
    assert.equal(running.code, 0, running.stderr);
    assert.match(row(running.out, 'state'), /│ Running /);
    assert.match(row(running.out, 'command'), /│ sh -c 'echo "it'\\''s up"; exec sleep 1000' /);
    assert.match(row(running.out, 'last exit'), /│ running /);
    assert.equal((await daemon.cli(['stop', 'term'])).code, 0);
    const stopped = await daemon.cli(['status', 'term']);
    assert.match(row(stopped.out, 'state'), /│ Stopped /);
    assert.match(row(stopped.out, 'pid'), /│ +│/, 'no pid once stopped, as in the list table');
    assert.match(row(stopped.out, 'last exit'), /│ 143 \(128\+15: SIGTERM\) /);
    const json = await daemon.cli(['status', 'term', '--format', 'json']);
    assert.deepEqual(JSON.parse(json.out), await listed('term'));
    assert.equal((await daemon.cli(['create', 'unrun'])).code, 0);
    assert.match(row((await daemon.cli(['status', 'unrun'])).out, 'last exit'), /│ none \(never ran\) /);
    const missing = await daemon.cli(['status', 'nosuch']);
    assert.equal(missing.code, 3);
    assert.equal(missing.stderr, 'Error: container "nosuch" not found\n');
    for (const name of ['term', 'unrun']) assert.equal((await daemon.cli(['delete', name])).code, 0);
  });

  test('restart: a new run of a running container; a stopped one is started; a missing one is not found', async () => {
    await daemon.launch('again');
    const before = await listed('again');
    const r = await daemon.cli(['restart', 'again']);
    assert.equal(r.code, 0, r.stderr);
    const after = await listed('again');
    assert.equal(after.state, 'Running');
    assert.notEqual(after.pid, before.pid);
    assert.equal((await daemon.cli(['stop', 'again'])).code, 0);
    assert.equal((await daemon.cli(['restart', 'again'])).code, 0);
    assert.equal((await listed('again')).state, 'Running');
    const curl = await daemon.cli(['restart', 'nobody']);
    assert.notEqual(curl.code, 0);
    assert.match(curl.stderr, /not found/);
    assert.equal((await daemon.cli(['delete', '--force', 'again'])).code, 0);
  });

  test('logs: the last lines, raw bytes as written, and bad --lines named', async () => {
    await daemon.launch('talker', { command: ['sh', '-c', 'printf "one\\ntwo\\n\\033[31mred\\n"; exec sleep 1000'] });
    await eventually(async () => (await daemon.cli(['logs', 'talker'])).out.includes('red'), 'the output is in the log');
    assert.equal((await daemon.cli(['logs', 'talker'])).out, 'one\ntwo\n\x1b[31mred\n');
    assert.equal((await daemon.cli(['logs', 'talker', '--lines', '1'])).out, '\x1b[31mred\n', 'the escape byte passes untouched');
    assert.equal((await daemon.cli(['logs', 'talker', '-n', '0'])).out, '');
    const bad = await daemon.cli(['logs', 'talker', '--lines', '-3']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /--lines must be a whole number of lines, got "-3"/);
    const missing = await daemon.cli(['logs', 'nobody']);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /not found/);
  });

  test('logs --follow: what is written later arrives, once each and in order, across a rotation of the log', async (t) => {
    // Two batches of 150 lines of 20 bytes, each after its trigger: each fits the 4,096-byte
    // cap (the monitor keeps only the newest 4,096 bytes of a larger burst), the second
    // rotates the log.
    const trigger = `/tmp/devapollo-test-go-${process.pid}-${Date.now()}`;
    t.after(() => fs.rmSync(`${trigger}-1`, { force: true }));
    t.after(() => fs.rmSync(`${trigger}-2`, { force: true }));
    const batch = (n: number, from: number) =>
      `while [ ! -e ${trigger}-${n} ]; do sleep 0.1; done; rm -f ${trigger}-${n}; i=${from}; while [ $i -lt ${from + 150} ]; do printf "line-%014d\\n" $i; i=$((i+1)); done;`;
    const script = `echo start; ${batch(1, 0)} ${batch(2, 150)} exec sleep 1000`;
    await daemon.launch('writer', { command: ['sh', '-c', script] });
    await eventually(async () => (await daemon.cli(['logs', 'writer'])).out === 'start\n', 'the first line is in the log');
    const follower = spawn(process.execPath, [hostCli, '--dir', daemon.dir, 'logs', 'writer', '--follow'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(follower);
    let out = '';
    follower.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
    await eventually(() => out === 'start\n', 'the follower has the tail');
    const line = (i: number) => `line-${String(i).padStart(14, '0')}\n`;
    assert.equal((await daemon.exec('writer', ['touch', `${trigger}-1`])).code, 0);
    await eventually(() => out.endsWith(line(149)), 'the follower has the first batch');
    assert.equal((await daemon.exec('writer', ['touch', `${trigger}-2`])).code, 0);
    const expected = `start\n${Array.from({ length: 300 }, (_, i) => line(i)).join('')}`;
    await eventually(() => out.length >= expected.length, 'the follower has every line').catch((error: unknown) => {
      throw new Error(
        `${String(error)}; it has ${JSON.stringify(out.slice(0, 60))}...${JSON.stringify(out.slice(-60))} (${out.length} of ${expected.length} bytes)`,
      );
    });
    assert.equal(out, expected);
    // The log did rotate under the follower, and `logs` still shows both halves.
    assert.ok(fs.existsSync(path.join(daemon.dir, 'logs', 'writer.log.1')), 'the log was rotated');
    assert.equal((await daemon.cli(['logs', 'writer'])).out, expected);
    // Deleting the container ends the follow.
    const ended = new Promise<number | null>((resolve) => follower.once('exit', resolve));
    assert.equal((await daemon.cli(['delete', '--force', 'writer'])).code, 0);
    assert.equal(await ended, 0);
  });

  test('a stop whose caller is interrupted goes on in the daemon; stop --force ends it at once, and the container is not left busy', async () => {
    // Its command ignores SIGTERM: only the first stop's (long) timeout or a kill ends it.
    await daemon.launch('stubborn', { command: ['sh', '-c', 'trap "" TERM; while true; do sleep 1; done'] });
    const first = spawn(process.execPath, [hostCli, '--dir', daemon.dir, 'stop', 'stubborn', '--timeout', '3600'], { stdio: 'ignore' });
    children.push(first);
    await eventually(async () => /busy \(stopping\)/.test((await daemon.cli(['delete', 'stubborn'])).stderr), 'the stop is under way');
    const interrupted = new Promise((resolve) => first.once('exit', resolve));
    first.kill('SIGINT');
    await interrupted;
    assert.equal((await listed('stubborn')).state, 'Running', 'the stop goes on; SIGTERM was not enough');
    const forced = await daemon.cli(['stop', 'stubborn', '--force']);
    assert.equal(forced.code, 0, forced.stderr);
    const stopped = await listed('stubborn');
    assert.equal(stopped.state, 'Stopped');
    assert.equal(stopped.exit_code, 128 + 9);
    const deleted = await daemon.cli(['delete', 'stubborn']);
    assert.equal(deleted.code, 0, deleted.stderr);
  });
});
