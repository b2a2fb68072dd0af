// A daemon out of file descriptors: identity needs two descriptors per connection (the
// peer's pidfd and its pid namespace). Without them the caller is unknown, not nobody: a
// 503 to retry, never a 403. The daemon stays up and serves again once descriptors free.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe } from 'node:test';
import { eventually, guestScript, run, TestDaemon } from '../helpers/daemon.js';
import { gatedTest, prlimitUnavailable } from '../helpers/env.js';

/**
 * Inside the container: waits for GO, then opens COUNT connections one after another,
 * each sending a GET and keeping the connection (and its descriptor in the daemon) open,
 * and prints the head of each answer ("" when the connection closed without one). Then
 * closes them all and asks again until it is answered 200 (at most 20 times).
 */
const holder = `
const net = require('net');
const fs = require('fs');
const [, , readyFile, goFile, countArg] = process.argv;
const ask = () => new Promise((resolve) => {
  const socket = net.connect('/dev/apollo/sock');
  let answer = '';
  let done = false;
  const finish = () => {
    if (!done) {
      done = true;
      resolve({ socket, answer });
    }
  };
  socket.on('data', (c) => {
    answer += c;
    if (answer.includes('\\r\\n\\r\\n')) finish();
  });
  socket.on('error', finish);
  socket.on('close', finish);
  socket.write('GET /1.0/config/user.foo HTTP/1.1\\r\\nHost: apollo\\r\\n\\r\\n');
});
(async () => {
  fs.writeFileSync(readyFile, 'ready');
  while (!fs.existsSync(goFile)) await new Promise((r) => setTimeout(r, 20));
  const held = [];
  for (let i = 0; i < Number(countArg); i++) held.push(await ask());
  for (const { socket } of held) socket.destroy();
  // A 503 says "try again": so does this, a few times, while the daemon closes its side.
  let again;
  for (let attempt = 0; attempt < 20; attempt++) {
    await new Promise((r) => setTimeout(r, 250));
    again = await ask();
    again.socket.destroy();
    if (again.answer.startsWith('HTTP/1.1 200 ')) break;
  }
  console.log(JSON.stringify({ answers: held.map((h) => h.answer), again: again.answer }));
})();
`;

/** The soft open-files limit that leaves `free` descriptor numbers free below it. */
function limitLeaving(pid: number, free: number): number {
  const open = new Set(fs.readdirSync(`/proc/${pid}/fd`).map(Number));
  let soft = 0;
  for (let left = 0; left < free; soft++) if (!open.has(soft)) left++;
  return soft;
}

function openFilesLimits(pid: number): { soft: number; hard: number } {
  const line = fs
    .readFileSync(`/proc/${pid}/limits`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('Max open files'));
  const [soft, hard] = (line ?? '').trim().split(/\s+/).slice(3, 5).map(Number);
  if (soft === undefined || hard === undefined || !(soft > 0) || !(hard > 0)) throw new Error(`cannot read the open-files limit of ${pid}`);
  return { soft, hard };
}

describe('out of file descriptors', () => {
  let daemon: TestDaemon;
  let flags: string;
  const test = gatedTest(prlimitUnavailable);

  before(async () => {
    if (prlimitUnavailable) return;
    flags = fs.mkdtempSync(path.join(os.tmpdir(), 'devapollo-fds-'));
    fs.chmodSync(flags, 0o777);
    daemon = await TestDaemon.start();
    await daemon.launch('alice', { config: { 'user.foo': 'alice' } });
  });

  after(async () => {
    await daemon?.destroy();
    if (flags !== undefined) fs.rmSync(flags, { recursive: true, force: true });
  });

  test('identity without descriptors: 503 with Retry-After, never 403; served again once they are back', async () => {
    const script = guestScript('descriptor-holder.cjs', holder);
    const ready = path.join(flags, 'ready');
    const go = path.join(flags, 'go');
    const pid = daemon.pid as number;
    const limits = openFilesLimits(pid);
    const running = daemon.exec('alice', [process.execPath, script, ready, go, '8']);
    try {
      await eventually(() => fs.existsSync(ready), 'the script in the container is ready');
      // Leave the daemon three free descriptor numbers below its soft limit: one
      // connection fits (its socket, then the pidfd and the namespace, both closed again),
      // the next ones run out part of the way, and some cannot even be accepted (which
      // ones depends on when the daemon closes the refused ones).
      const lowered = await run('prlimit', ['--pid', String(pid), `--nofile=${limitLeaving(pid, 3)}:`]);
      assert.equal(lowered.code, 0, lowered.stderr);
      fs.writeFileSync(go, '');
      const r = await running;
      assert.equal(r.code, 0, r.stderr);
      const { answers, again } = JSON.parse(r.out) as { answers: string[]; again: string };

      const kind = (answer: string) => (/^HTTP\/1\.1 200 /.test(answer) ? 0 : /^HTTP\/1\.1 503 /.test(answer) ? 1 : answer === '' ? 2 : 3);
      const kinds = answers.map(kind);
      assert.ok(!kinds.includes(3), `only 200, 503 or no answer: ${JSON.stringify(answers)}`);
      assert.equal(kinds[0], 0, answers[0]);
      const unavailable = answers.find((a) => kind(a) === 1);
      assert.ok(unavailable !== undefined, `some connection got a 503: ${JSON.stringify(answers)}`);
      assert.match(unavailable, /\r\nRetry-After: 1\r\n/);
      assert.match(unavailable, /\r\n\r\n\{"type":"error","error":"the daemon is out of file descriptors; try again","error_code":503\}/);
      assert.match(again, /^HTTP\/1\.1 200 /, 'served again once the held connections closed');
    } finally {
      fs.writeFileSync(go, '');
      await running.catch(() => undefined);
      await run('prlimit', ['--pid', String(pid), `--nofile=${limits.soft}:`]);
    }
    assert.match(daemon.stderr, /ERROR cannot read a guest peer's identity .*too many open files/);
    assert.equal((await daemon.cli(['status'])).code, 0, 'the daemon is still up');
    assert.equal((await daemon.curl('alice', '/1.0/config/user.foo')).out, 'alice');
  });

  test('the admin API and launch without descriptors: a clear error to retry, nothing half-made; they work once they are back', async () => {
    const pid = daemon.pid as number;
    const limits = openFilesLimits(pid);
    let status: Awaited<ReturnType<typeof daemon.cli>>;
    let failed: Awaited<ReturnType<typeof daemon.cli>>;
    try {
      // One free: the admin connection is accepted but its peer cannot be checked, so it
      // is not let in (a privileged container's root is uid 0 too).
      assert.equal((await run('prlimit', ['--pid', String(pid), `--nofile=${limitLeaving(pid, 1)}:`])).code, 0);
      status = await daemon.cli(['status']);
      // Four free: the admin connection and its identity fit, the launcher's log file and
      // pipes do not (it took six here).
      assert.equal((await run('prlimit', ['--pid', String(pid), `--nofile=${limitLeaving(pid, 4)}:`])).code, 0);
      failed = await daemon.cli(['launch', 'starved']);
    } finally {
      await run('prlimit', ['--pid', String(pid), `--nofile=${limits.soft}:`]);
    }
    assert.equal(status.code, 69, status.stderr);
    assert.equal(status.stderr, 'Error: the daemon is out of file descriptors; try again\n');
    assert.equal(failed.code, 69, failed.stderr);
    assert.equal(failed.stderr, 'Error: cannot start container starved: the daemon is out of file descriptors; try again\n');
    const names = (JSON.parse((await daemon.cli(['list', '--format', 'json'])).out) as { name: string }[]).map((c) => c.name);
    assert.deepEqual(names, ['alice']);
    const launched = await daemon.cli(['launch', 'starved']);
    assert.equal(launched.code, 0, launched.stderr);
    assert.equal((await daemon.cli(['delete', '--force', 'starved'])).code, 0);
  });
});
