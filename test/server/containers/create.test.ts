// `devapollo create`: a Stopped container whose keys are set before anything runs, then
// `start` with devapollo's launcher; bad definitions are refused and leave nothing; a
// start that fails leaves the created container, a launch that fails leaves nothing.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe } from 'node:test';
import { eventually, TestDaemon } from '../../helpers/daemon.js';
import { curlUnavailable, gatedTest } from '../../helpers/env.js';
import { keysBesidesClaim, listContainers, listed } from '../../helpers/runtimes.js';

describe('create, then start', () => {
  const test = gatedTest(curlUnavailable);
  let daemon: TestDaemon;

  before(async () => {
    if (curlUnavailable) return;
    daemon = await TestDaemon.start();
  });

  after(async () => {
    await daemon?.destroy();
  });

  test('create makes a Stopped container; config set works before the first start; start runs it with those keys', async () => {
    const created = await daemon.cli(['create', 'web', '-c', 'user.foo=from-create', '-c', 'security.devapollo.lxd-compat=true']);
    assert.equal(created.code, 0, created.stderr);
    assert.equal(created.out, '');
    let web = await listed(daemon, 'web');
    assert.deepEqual([web?.state, web?.pid, web?.origin], ['Stopped', 0, 'create']);
    assert.equal(daemon.runningInits().length, 0, 'nothing runs');
    const table = (await daemon.cli(['list'])).out;
    assert.match(table, /│ web +│ Stopped +│ +│ +│ unprivileged +│/);

    const set = await daemon.cli(['config', 'set', 'web', 'cloud-init.user-data', '-'], { input: '#cloud-config\nruncmd: [true]\n' });
    assert.equal(set.code, 0, set.stderr);
    assert.equal((await daemon.cli(['config', 'get', 'web', 'cloud-init.user-data'])).out, '#cloud-config\nruncmd: [true]\n');

    const started = await daemon.cli(['start', 'web']);
    assert.equal(started.code, 0, started.stderr);
    web = await listed(daemon, 'web');
    assert.deepEqual([web?.state, web?.origin], ['Running', 'launch']);
    assert.equal(web?.config['volatile.devapollo.claim'], undefined, 'started by devapollo, no hook may bind to it: no claim');
    assert.ok((web?.pid ?? 0) > 1);
    assert.equal((await daemon.curl('web', '/1.0/config/user.foo')).out, 'from-create');
    assert.equal((await daemon.curl('web', '/1.0/config/cloud-init.user-data')).out, '#cloud-config\nruncmd: [true]\n');
    // Keys read at start took effect: lxd-compat mounted /dev/lxd.
    assert.equal((await daemon.exec('web', ['test', '-S', '/dev/lxd/sock'])).code, 0);
    // Started by devapollo: from now on no hook may take the name.
    assert.equal((await daemon.cli(['register', 'web', '--pid', String(web?.pid)])).code, 1);
  });

  test('a created command runs when the container starts, with keys set after create', async () => {
    assert.equal(
      (
        await daemon.cli([
          'create',
          'job',
          '--',
          'sh',
          '-c',
          'echo "task=$(curl -s --unix-socket /dev/apollo/sock http://apollo/1.0/config/user.task)"',
        ])
      ).code,
      0,
    );
    assert.equal((await daemon.cli(['config', 'set', 'job', 'user.task=backup'])).code, 0);
    const start = await daemon.cli(['start', 'job']);
    assert.equal(start.code, 0, start.stderr);
    await eventually(async () => (await listed(daemon, 'job'))?.state === 'Stopped', 'job ends');
    assert.match(fs.readFileSync(path.join(daemon.dir, 'logs/job.log'), 'utf8'), /^task=backup$/m);
    assert.deepEqual((await listed(daemon, 'job'))?.command, [
      'sh',
      '-c',
      'echo "task=$(curl -s --unix-socket /dev/apollo/sock http://apollo/1.0/config/user.task)"',
    ]);
  });

  test('bad names, keys and values are refused with exit 2 and create nothing; an existing name exits 1', async () => {
    const before = (await listContainers(daemon)).map((c) => c.name);
    for (const args of [
      ['create', '1abc'],
      ['create', 'a_b'],
      ['create', 'x'.repeat(64)],
      ['create', 'ok', '-c', 'bad key=1'],
      ['create', 'ok', '-c', 'novalue'],
      ['create', 'ok', '-c', 'security.devapollo=maybe'],
    ]) {
      const r = await daemon.cli(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /^Error: [^\n]+\n$/, args.join(' '));
    }
    const taken = await daemon.cli(['create', 'web']);
    assert.equal(taken.code, 1);
    assert.equal(taken.stderr, 'Error: container "web" already exists\n');
    assert.deepEqual(
      (await listContainers(daemon)).map((c) => c.name),
      before,
    );
    assert.deepEqual(fs.readdirSync(path.join(daemon.dir, 'containers')).sort(), before.map((n) => `${n}.json`).sort());
  });

  test('a created container: stop says it is not running; delete needs no --force', async () => {
    assert.equal((await daemon.cli(['create', 'idle'])).code, 0);
    const stop = await daemon.cli(['stop', 'idle']);
    assert.equal(stop.code, 1);
    assert.equal(stop.stderr, 'Error: container idle is not running\n');
    assert.equal((await daemon.cli(['delete', 'idle'])).code, 0);
    assert.equal(await listed(daemon, 'idle'), undefined);
  });

  test('a start that fails leaves the created container as it was; a launch that fails leaves nothing', async () => {
    // DIR/stage, where the launcher builds a container's /dev, replaced by a file: the
    // launcher's first mount fails, so the start does (the container's log is the monitor's
    // to open, best effort, and no longer fails a start).
    const stage = path.join(daemon.dir, 'stage');
    const blockStage = () => {
      fs.rmdirSync(stage);
      fs.writeFileSync(stage, '');
    };
    const unblockStage = () => {
      fs.rmSync(stage);
      fs.mkdirSync(stage, { mode: 0o700 });
    };
    assert.equal((await daemon.cli(['create', 'blocked', '-c', 'user.keep=me'])).code, 0);
    blockStage();
    try {
      const start = await daemon.cli(['start', 'blocked']);
      assert.equal(start.code, 1);
      assert.match(start.stderr, /^Error: cannot start container blocked: /);
      const kept = await listed(daemon, 'blocked');
      assert.deepEqual([kept?.state, kept?.origin, keysBesidesClaim(kept?.config)], ['Stopped', 'create', { 'user.keep': 'me' }]);
    } finally {
      unblockStage();
    }
    assert.equal((await daemon.cli(['start', 'blocked'])).code, 0);
    assert.equal((await daemon.curl('blocked', '/1.0/config/user.keep')).out, 'me');

    blockStage();
    try {
      const launch = await daemon.cli(['launch', 'gone', '-c', 'user.keep=me']);
      assert.equal(launch.code, 1);
      assert.match(launch.stderr, /^Error: cannot start container gone: /);
      assert.equal(await listed(daemon, 'gone'), undefined);
      assert.equal(fs.existsSync(path.join(daemon.dir, 'containers/gone.json')), false);
    } finally {
      unblockStage();
    }
  });

  test('a created container survives a daemon restart, still Stopped and startable', async () => {
    assert.equal((await daemon.cli(['create', 'later', '-c', 'user.foo=later'])).code, 0);
    await daemon.signal('SIGTERM');
    await daemon.spawn();
    const later = await listed(daemon, 'later');
    assert.deepEqual([later?.state, later?.origin], ['Stopped', 'create']);
    assert.equal((await daemon.cli(['start', 'later'])).code, 0);
    assert.equal((await daemon.curl('later', '/1.0/config/user.foo')).out, 'later');
  });
});
