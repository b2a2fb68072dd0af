// `launch NAME -- CMD`: the command runs only once the daemon serves the container (its
// first request is answered), and a command that cannot be executed makes launch fail
// with the reason, leaving nothing behind (PROTOCOL.md section 4).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe } from 'node:test';
import { eventually, TestDaemon } from '../../helpers/daemon.js';
import { curlUnavailable, gatedTest } from '../../helpers/env.js';

describe('the command of a launched container', () => {
  let daemon: TestDaemon;
  let scripts: string;
  const test = gatedTest(curlUnavailable);

  before(async () => {
    if (curlUnavailable) return;
    scripts = fs.mkdtempSync(path.join(os.tmpdir(), 'devapollo-cmd-'));
    fs.chmodSync(scripts, 0o755);
    daemon = await TestDaemon.start();
  });

  after(async () => {
    await daemon?.destroy();
    if (scripts !== undefined) fs.rmSync(scripts, { recursive: true, force: true });
  });

  test('a command that cannot be executed: launch fails with the reason (exit 2) and leaves no record, log or process', async () => {
    const notExecutable = path.join(scripts, 'data.txt');
    fs.writeFileSync(notExecutable, 'not a program\n', { mode: 0o644 });
    for (const [command, reason] of [
      ['/no/such/program', 'cannot run /no/such/program: No such file or directory'],
      ['no-such-program', 'cannot run no-such-program: command not found'],
      [notExecutable, `cannot run ${notExecutable}: Permission denied`],
    ] as const) {
      const r = await daemon.cli(['launch', 'broken', '-c', 'user.a=1', '--', command, 'arg']);
      assert.equal(r.code, 2, r.stderr);
      assert.equal(r.stderr, `Error: cannot start container broken: ${reason}\n`);
      assert.equal((await daemon.cli(['list', '--format', 'json'])).out.trim(), '[]');
      assert.deepEqual(fs.readdirSync(path.join(daemon.dir, 'containers')), []);
      assert.deepEqual(fs.readdirSync(path.join(daemon.dir, 'logs')), []);
    }
    await eventually(() => daemon.runningInits().length === 0, 'no init is left');
    // The name is free again.
    await daemon.launch('broken', { command: ['sh', '-c', 'exec sleep 600'] });
    assert.equal((await daemon.cli(['delete', '--force', 'broken'])).code, 0);
  });

  test("the command's first request is already served", async () => {
    await daemon.launch('eager', {
      config: { 'user.a': 'ready' },
      command: ['sh', '-c', 'curl -sS --unix-socket /dev/apollo/sock http://apollo/1.0/config/user.a; echo; exec sleep 600'],
    });
    const log = path.join(daemon.dir, 'logs/eager.log');
    await eventually(() => fs.existsSync(log) && fs.readFileSync(log, 'utf8').includes('\n'), 'the command to ask');
    assert.equal(fs.readFileSync(log, 'utf8'), 'ready\n');
  });

  test('start of a container whose command can no longer run fails with the reason and leaves it Stopped', async () => {
    const script = path.join(scripts, 'job.sh');
    fs.writeFileSync(script, '#!/bin/sh\nexec sleep 600\n', { mode: 0o755 });
    await daemon.launch('job', { command: [script] });
    assert.equal((await daemon.cli(['stop', '--force', 'job'])).code, 0);
    fs.rmSync(script);
    const r = await daemon.cli(['start', 'job']);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stderr, `Error: cannot start container job: cannot run ${script}: No such file or directory\n`);
    const job = (JSON.parse((await daemon.cli(['list', '--format', 'json'])).out) as { name: string; state: string; pid: number }[]).find(
      (c) => c.name === 'job',
    );
    assert.deepEqual([job?.name, job?.state, job?.pid], ['job', 'Stopped', 0]);
    const record = JSON.parse(fs.readFileSync(path.join(daemon.dir, 'containers/job.json'), 'utf8')) as { init: unknown };
    assert.equal(record.init, null);
    // Not busy, and it starts once the command is back.
    fs.writeFileSync(script, '#!/bin/sh\nexec sleep 600\n', { mode: 0o755 });
    assert.equal((await daemon.cli(['start', 'job'])).code, 0);
  });
});
