// The daemon's life and its containers': signals, restarts, a second daemon, state on disk.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe } from 'node:test';
import { eventually, guestTool, hostCli, run, startTimeOf, TestDaemon } from '../../helpers/daemon.js';
import { curlUnavailable, gatedTest } from '../../helpers/env.js';
import { childrenOf } from '../../helpers/procs.js';

interface Listed {
  name: string;
  state: string;
  guest_state: string;
  pid: number;
  config: Record<string, string>;
}

async function list(daemon: TestDaemon): Promise<Listed[]> {
  const r = await daemon.cli(['list', '--format', 'json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.out) as Listed[];
}

function sessionOf(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[3]);
}

/** The mount id of /dev/apollo inside the container: unchanged means no remount happened. */
async function apolloMountId(daemon: TestDaemon, name: string): Promise<string> {
  const r = await daemon.exec(name, ['sh', '-c', 'grep " /dev/apollo " /proc/self/mountinfo | cut -d" " -f1']);
  return r.out.trim();
}

describe('daemon lifecycle', () => {
  let daemon: TestDaemon;
  const test = gatedTest(curlUnavailable);

  before(async () => {
    if (curlUnavailable) return;
    daemon = await TestDaemon.start();
    await daemon.launch('one', { config: { 'user.foo': 'one' } });
    await daemon.launch('two', { config: { 'user.foo': 'two' } });
  });

  after(async () => {
    await daemon?.destroy();
  });

  test("containers run in their own sessions, not the daemon's", async () => {
    for (const c of await list(daemon)) {
      assert.notEqual(sessionOf(c.pid), sessionOf(daemon.pid ?? 0));
    }
  });

  test("SIGINT to the daemon's process group, then SIGKILL: containers keep running, a new daemon serves them", async () => {
    const before = await list(daemon);
    const mountIds = await Promise.all(before.map((c) => apolloMountId(daemon, c.name)));
    await daemon.signal('SIGINT', { group: true });
    assert.match(daemon.stderr, /devapollo stopped/);
    for (const c of before) assert.ok(startTimeOf(c.pid) !== undefined, `${c.name} survived SIGINT`);

    await daemon.spawn();
    await daemon.signal('SIGKILL', { group: true });
    for (const c of before) assert.ok(startTimeOf(c.pid) !== undefined, `${c.name} survived SIGKILL`);
    // A daemon killed with SIGKILL leaves its sockets behind: the next one must cope.
    assert.ok(fs.existsSync(path.join(daemon.dir, 'devapollo/sock')));

    await daemon.spawn();
    const afterList = await list(daemon);
    assert.deepEqual(
      afterList.map((c) => [c.name, c.state, c.pid, c.config]),
      before.map((c) => [c.name, 'Running', c.pid, c.config]),
    );
    for (const [i, c] of before.entries()) {
      // The same /dev/apollo/sock answers again, with no remount and the same config.
      assert.equal((await daemon.curl(c.name, '/1.0/config/user.foo')).out, c.config['user.foo']);
      assert.equal(await apolloMountId(daemon, c.name), mountIds[i]);
    }
  });

  test('a guest retrying across a restart gets its answer from the new daemon', async () => {
    // The loop starts asking only once the daemon is down, and says so at every refusal.
    const flag = path.join(path.dirname(guestTool()), `go-${process.pid}`);
    const guest = spawn(
      process.execPath,
      [
        hostCli,
        '--dir',
        daemon.dir,
        'exec',
        'one',
        '--',
        'sh',
        '-c',
        `while [ ! -e ${flag} ]; do sleep 0.02; done; until curl -sS --fail --unix-socket /dev/apollo/sock http://apollo/1.0/config/user.foo 2>/dev/null; do echo refused; sleep 0.02; done`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let output = '';
    guest.stdout.on('data', (c: Buffer) => (output += c.toString('utf8')));
    const done = new Promise((resolve) => guest.once('close', resolve));
    try {
      // exec has looked the container up once its command runs; then the daemon may go.
      await eventually(() => childrenOf(guest.pid ?? 0).length > 0, 'exec runs');
      await daemon.signal('SIGTERM');
      fs.writeFileSync(flag, '');
      await eventually(() => output.includes('refused'), 'the guest sees the daemon down');
      await daemon.spawn();
      await done;
      assert.match(output, /^(refused\n)+one$/);
    } finally {
      guest.kill('SIGKILL');
      fs.rmSync(flag, { force: true });
    }
  });

  test("a second daemon on the same DIR refuses, and leaves the first one's sockets alone", async () => {
    const second = await daemon.cli(['serve'], { timeoutMs: 20_000 });
    assert.equal(second.code, 1);
    assert.match(second.stderr, /^Error: another devapollo daemon is already serving .* \(pid \d+\)\n$/);
    assert.equal((await daemon.curl('two', '/1.0/config/user.foo')).out, 'two');
    assert.equal((await daemon.cli(['status', '--format', 'json'])).code, 0);
  });

  test('stop, start and delete; a stopped container shows pid 0; stop twice fails', async () => {
    await daemon.launch('three', { config: { 'user.foo': 'three' } });
    assert.equal((await daemon.cli(['stop', 'three'])).code, 0);
    let three = (await list(daemon)).find((c) => c.name === 'three');
    assert.equal(three?.state, 'Stopped');
    assert.equal(three?.pid, 0);
    assert.equal(three?.guest_state, 'Started', 'JSON keeps the fields of the contract');
    // The table and CSV show a stopped container as LXD does: no guest state, no pid.
    assert.match((await daemon.cli(['list'])).out, /│ three +│ Stopped +│ +│ +│ unprivileged +│/);
    assert.ok((await daemon.cli(['list', '--format', 'csv'])).out.split('\r\n').includes('three,Stopped,,,unprivileged'));
    const again = await daemon.cli(['stop', 'three']);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /^Error: container three is not running\n$/);
    assert.equal((await daemon.cli(['start', 'three'])).code, 0);
    three = (await list(daemon)).find((c) => c.name === 'three');
    assert.equal(three?.state, 'Running');
    assert.equal((await daemon.curl('three', '/1.0/config/user.foo')).out, 'three');
    const refused = await daemon.cli(['delete', 'three']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /running/);
    const pid = three?.pid ?? 0;
    assert.equal((await daemon.cli(['delete', 'three', '--force'])).code, 0);
    assert.equal(startTimeOf(pid), undefined);
    assert.equal(
      (await list(daemon)).find((c) => c.name === 'three'),
      undefined,
    );
    assert.equal(fs.existsSync(path.join(daemon.dir, 'containers/three.json')), false);
  });

  test('a container whose command exits is noticed as Stopped, its output in its log', async () => {
    await daemon.launch('job', { command: ['sh', '-c', 'echo hello from job; sleep 0.5; exit 3'] });
    await eventually(async () => (await list(daemon)).find((c) => c.name === 'job')?.state === 'Stopped', 'job stops');
    const log = fs.readFileSync(path.join(daemon.dir, 'logs/job.log'), 'utf8');
    assert.match(log, /hello from job/);
    assert.match(log, /exited with status 3/);
  });

  test('stop sends SIGTERM first: a command that handles it exits cleanly', async () => {
    await daemon.launch('graceful', { command: ['sh', '-c', 'trap "echo got TERM; exit 0" TERM; while :; do sleep 0.1; done'] });
    assert.equal((await daemon.cli(['stop', 'graceful', '--timeout', '20'])).code, 0);
    assert.match(fs.readFileSync(path.join(daemon.dir, 'logs/graceful.log'), 'utf8'), /got TERM/);
  });

  test('stop kills a container that ignores SIGTERM after the timeout', async () => {
    await daemon.launch('stubborn', { command: ['sh', '-c', 'trap "" TERM; while :; do sleep 0.1; done'] });
    const pid = (await list(daemon)).find((c) => c.name === 'stubborn')?.pid ?? 0;
    assert.equal((await daemon.cli(['stop', 'stubborn', '--timeout', '1'])).code, 0);
    assert.equal(startTimeOf(pid), undefined);
  });
});

describe('state on disk', () => {
  const test = gatedTest(curlUnavailable);

  test('a corrupt state file stops the daemon with its name, and is left untouched', async () => {
    const daemon = await TestDaemon.start();
    try {
      await daemon.launch('victim', { config: { 'user.foo': 'x' } });
      await daemon.signal('SIGTERM');
      const file = path.join(daemon.dir, 'containers/victim.json');
      fs.writeFileSync(file, '{"schema":1,"name":"victim", trunc');
      const bytes = fs.readFileSync(file);
      const r = await run(process.execPath, [hostCli, 'serve', '--dir', daemon.dir], { timeoutMs: 20_000 });
      assert.equal(r.code, 1);
      assert.ok(r.stderr.includes(file), r.stderr);
      assert.match(r.stderr, /^Error: state file .* is not valid JSON/m);
      assert.deepEqual(fs.readFileSync(file), bytes);
      assert.equal(fs.existsSync(path.join(daemon.dir, 'devapollo/sock')), false);
    } finally {
      await daemon.destroy();
    }
  });

  test('after a reboot, or when the init is gone or its pid reused, a container shows Stopped', async () => {
    const daemon = await TestDaemon.start();
    try {
      await daemon.launch('rebooted', { config: { 'user.foo': 'x' } });
      await daemon.launch('recycled', { config: { 'user.foo': 'y' } });
      const before = await list(daemon);
      await daemon.signal('SIGTERM');
      for (const c of before) process.kill(c.pid, 'SIGKILL');
      await eventually(() => before.every((c) => startTimeOf(c.pid) === undefined), 'inits gone');
      const edit = (name: string, change: (init: Record<string, unknown>) => void) => {
        const file = path.join(daemon.dir, `containers/${name}.json`);
        const record = JSON.parse(fs.readFileSync(file, 'utf8')) as { init: Record<string, unknown> };
        change(record.init);
        fs.writeFileSync(file, JSON.stringify(record));
      };
      edit('rebooted', (init) => (init['boot_id'] = 'another-boot'));
      // A live process that is not the container: its pid with a start time that does not match.
      edit('recycled', (init) => (init['pid'] = process.pid));
      await daemon.spawn();
      const after = await list(daemon);
      assert.deepEqual(
        after.map((c) => [c.name, c.state, c.pid]),
        [
          ['rebooted', 'Stopped', 0],
          ['recycled', 'Stopped', 0],
        ],
      );
      // The test process was never mapped: asking from it gives 403.
      const r = await run('curl', [
        '-sS',
        '-o',
        '/dev/null',
        '-w',
        '%{http_code}',
        '--unix-socket',
        path.join(daemon.dir, 'devapollo/sock'),
        'http://apollo/1.0',
      ]);
      assert.equal(r.out, '403');
      const record = JSON.parse(fs.readFileSync(path.join(daemon.dir, 'containers/recycled.json'), 'utf8')) as {
        init: unknown;
        schema: number;
      };
      assert.equal(record.init, null);
      assert.equal(record.schema, 2);
    } finally {
      await daemon.destroy();
    }
  });

  test('DIR is 0711, the guest directory 0755, the guest socket 0666, the admin socket 0660', async () => {
    const daemon = await TestDaemon.start();
    try {
      const mode = (p: string) => fs.statSync(path.join(daemon.dir, p)).mode & 0o777;
      assert.equal(mode('.'), 0o711);
      assert.equal(mode('devapollo'), 0o755);
      assert.equal(mode('devapollo/sock'), 0o666);
      assert.equal(mode('unix.socket'), 0o660);
      assert.equal(mode('containers'), 0o700);
    } finally {
      await daemon.destroy();
    }
  });
});
