// LXC: real busybox containers whose start and stop hooks call `devapollo hook lxc`, and
// processes entered with lxc-attach asking the socket, as the README tells users.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, describe } from 'node:test';
import { guestTool, TestDaemon } from '../helpers/daemon.js';
import { gatedTest } from '../helpers/env.js';
import { BusyboxSyslog, keysBesidesClaim, LxcHost, listed, lxcUnavailable, syslogUnavailable } from '../helpers/runtimes.js';

describe('LXC', () => {
  const test = gatedTest(lxcUnavailable);
  let daemon: TestDaemon;
  let lxc: LxcHost;

  before(async () => {
    if (lxcUnavailable) return;
    daemon = await TestDaemon.start();
    lxc = new LxcHost();
    await lxc.create('one', { dir: daemon.dir, config: { 'user.foo': 'one', 'user.greeting': 'hi there' } });
    // The other hook flavour: name and type only in the environment, and lxc.hook.stop.
    await lxc.create('two', { dir: daemon.dir, config: { 'user.foo': 'two' }, hookVersion: 1, stopHook: 'stop' });
  });

  after(async () => {
    await lxc?.destroy();
    await daemon?.destroy();
  });

  const entry = (name: string) => listed(daemon, name);
  const started = async (name: string) => {
    const r = await lxc.start(name);
    assert.equal(r.code, 0, `lxc-start ${name}: ${r.stderr}\n${fs.readFileSync(lxc.logFile(name), 'utf8')}`);
  };

  test('the start hook registers the container by its init; lxc-attach processes read their own keys', async () => {
    await started('one');
    const { state, pid } = await lxc.info('one');
    assert.equal(state, 'RUNNING');
    const listed = await entry('one');
    assert.equal(listed?.state, 'Running');
    assert.equal(listed?.pid, pid);
    assert.equal(listed?.origin, 'register');
    const curl = await lxc.curl('one', '/1.0/config/user.foo');
    assert.equal(curl.out, 'one', curl.stderr);
    const guest = await lxc.attach('one', [process.execPath, guestTool(), 'get', 'user.greeting']);
    assert.equal(guest.out, 'hi there', guest.stderr);
    const meta = await lxc.curl('one', '/1.0/meta-data');
    assert.equal(meta.out, '#cloud-config\ninstance-id: one\nlocal-hostname: one\n');
  });

  test('a second LXC container reads its own keys, the first still its own', async () => {
    await started('two');
    assert.equal((await lxc.curl('two', '/1.0/config/user.foo')).out, 'two');
    assert.equal((await lxc.curl('one', '/1.0/config/user.foo')).out, 'one');
    const keys = await lxc.attach('two', [process.execPath, guestTool(), 'config', '--format', 'json']);
    assert.deepEqual(JSON.parse(keys.out), { 'user.foo': 'two' });
  });

  test('a second name for a running LXC init is refused through the hook', async () => {
    const { pid } = await lxc.info('one');
    const r = await daemon.cli(['hook', 'lxc', 'alias', 'lxc', 'start-host'], { env: { ...process.env, LXC_PID: String(pid) } });
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'Error: cannot register LXC container alias: that pid namespace already belongs to container one\n');
    assert.equal(await entry('alias'), undefined);
  });

  test('stop unregisters and keeps the config; start again re-registers with it', async () => {
    assert.equal((await daemon.cli(['config', 'set', 'one', 'user.extra=kept'])).code, 0);
    const before = await lxc.info('one');
    const stopped = await lxc.stop('one');
    assert.equal(stopped.code, 0, stopped.stderr);
    const listed = await entry('one');
    assert.equal(listed?.state, 'Stopped');
    assert.equal(listed?.pid, 0);
    assert.deepEqual(keysBesidesClaim(listed?.config), { 'user.extra': 'kept', 'user.foo': 'one', 'user.greeting': 'hi there' });
    await started('one');
    const after = await lxc.info('one');
    assert.notEqual(after.pid, before.pid);
    assert.equal((await entry('one'))?.pid, after.pid);
    assert.equal((await lxc.curl('one', '/1.0/config/user.extra')).out, 'kept');
    assert.equal((await lxc.curl('one', '/1.0/config/user.foo')).out, 'one');
  });

  test('the stop hook lets go: the namespace no longer maps, though its processes still run', async () => {
    // Run the container's own stop hook while it still runs (as a stuck stop would):
    // its processes are at once strangers to the daemon.
    const { pid } = await lxc.info('two');
    const env = { ...process.env, LXC_NAME: 'two', LXC_HOOK_TYPE: 'stop', LXC_PID: String(pid) };
    const let_go = await daemon.cli(['hook', 'lxc'], { env });
    assert.equal(let_go.code, 0, let_go.stderr);
    const denied = await lxc.attach('two', [
      '/usr/bin/curl',
      '-sS',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code}',
      '--unix-socket',
      '/dev/apollo/sock',
      'http://apollo/1.0',
    ]);
    assert.equal(denied.out, '403');
    assert.equal((await lxc.info('two')).state, 'RUNNING');
    const again = await daemon.cli(['hook', 'lxc'], { env: { ...env, LXC_HOOK_TYPE: 'start-host' } });
    assert.equal(again.code, 0, again.stderr);
    assert.equal((await lxc.curl('two', '/1.0/config/user.foo')).out, 'two');
  });

  test('devapollo create, keys set before the first boot, then lxc-start: the start hook binds to it', async () => {
    assert.equal((await daemon.cli(['create', 'three', '-c', 'user.foo=created'])).code, 0);
    const userData = '#cloud-config\nruncmd: [touch, /first-boot]\n';
    assert.equal((await daemon.cli(['config', 'set', 'three', 'cloud-init.user-data', '-'], { input: userData })).code, 0);
    await lxc.create('three', { dir: daemon.dir, config: { 'user.hook': 'from the hook' } });
    await started('three');
    const { pid } = await lxc.info('three');
    const three = await entry('three');
    assert.deepEqual([three?.state, three?.pid, three?.origin], ['Running', pid, 'register']);
    assert.equal((await lxc.curl('three', '/1.0/config/user.foo')).out, 'created');
    assert.equal((await lxc.curl('three', '/1.0/config/cloud-init.user-data')).out, userData);
    assert.equal((await lxc.curl('three', '/1.0/config/user.hook')).out, 'from the hook');
    assert.equal((await lxc.stop('three')).code, 0);
    assert.equal((await entry('three'))?.state, 'Stopped');
    // LXC runs it now: devapollo's own start refuses, and says where to start it.
    const start = await daemon.cli(['start', 'three']);
    assert.equal(start.code, 1);
    assert.equal(start.stderr, 'Error: container three was started by another runtime: start it there\n');
  });

  test('with the daemon down a start hook fails and LXC refuses to start; a stop hook only warns', async () => {
    await daemon.signal('SIGTERM');
    try {
      // one stops while no daemon runs: its stop hook succeeds (the init is gone anyway).
      const stopped = await lxc.stop('one');
      assert.equal(stopped.code, 0, stopped.stderr);
      assert.equal((await lxc.info('one')).state, 'STOPPED');
      // ...and cannot start unserved; why goes to syslog too (a real syslogd of the test's own).
      const syslog = syslogUnavailable ? undefined : await new BusyboxSyslog().start();
      try {
        const start = await lxc.start('one', syslog && { ...process.env, APOLLO_SYSLOG_SOCKET: syslog.socket });
        assert.notEqual(start.code, 0);
        assert.equal((await lxc.info('one')).state, 'STOPPED');
        if (syslog !== undefined) {
          assert.match(
            syslog.lines('start-host hook')[0] ?? '',
            /daemon\.err devapollo\[\d+\]: LXC start-host hook for container "one": Error: cannot register LXC container one: no devapollo daemon answers on .*; refusing to start/,
          );
        }
      } finally {
        await syslog?.stop();
      }
      // LXC logs what a hook printed (at DEBUG level), then why it gave up.
      const log = fs.readFileSync(lxc.logFile('one'), 'utf8');
      assert.match(log, /produced output: Warning: no daemon to tell that LXC container one stopped/);
      assert.match(
        log,
        /produced output: Error: cannot register LXC container one: no devapollo daemon answers on .*; refusing to start the container/,
      );
      assert.match(log, /Script exited with status 69\n.*Failed to run lxc.hook.start-host/);
      // two kept running without the daemon, still bound to /dev/apollo.
      assert.equal((await lxc.info('two')).state, 'RUNNING');
    } finally {
      await daemon.spawn();
    }
    // The restarted daemon re-adopts two and forgets one's dead init.
    assert.equal((await lxc.curl('two', '/1.0/config/user.foo')).out, 'two');
    assert.equal((await entry('one'))?.state, 'Stopped');
    await started('one');
    assert.equal((await lxc.curl('one', '/1.0/config/user.foo')).out, 'one');
  });
});

// An unprivileged LXC container (lxc.idmap: its root is host uid 1000000) with the same
// lines: it can mount DIR/devapollo because DIR is 0711, its root reads its own keys, and
// nothing else of DIR is open to it, not even when DIR itself is bound into it.
describe('LXC, unprivileged', () => {
  const test = gatedTest(lxcUnavailable);
  let daemon: TestDaemon;
  let lxc: LxcHost;
  const name = 'mapped';
  const dirInside = '/mnt/apollo-dir';
  /** Connects to the Unix socket argv[1]; fails with the error's code (curl only says "Couldn't connect"). */
  const connectScript =
    "require('net').connect(process.argv[1]).on('connect', () => process.exit(0)).on('error', (e) => { console.error(e.code); process.exit(1); })";

  before(async () => {
    if (lxcUnavailable) return;
    daemon = await TestDaemon.start();
    lxc = new LxcHost();
    await lxc.create(name, {
      dir: daemon.dir,
      unprivileged: true,
      config: { 'user.foo': 'mapped' },
      extraLines: [`lxc.mount.entry = ${daemon.dir} ${dirInside.slice(1)} none ro,bind,create=dir 0 0`],
    });
  });

  after(async () => {
    await lxc?.destroy();
    await daemon?.destroy();
  });

  test('it boots with DIR/devapollo at /dev/apollo; its root, host uid 1000000, reads its own keys', async () => {
    const r = await lxc.start(name);
    assert.equal(r.code, 0, `lxc-start ${name}: ${r.stderr}\n${fs.readFileSync(lxc.logFile(name), 'utf8')}`);
    assert.equal((await lxc.attach(name, ['cat', '/proc/self/uid_map'])).out.trim().split(/\s+/).join(' '), '0 1000000 65536');
    assert.equal((await listed(daemon, name))?.pid, (await lxc.info(name)).pid);
    assert.equal((await lxc.curl(name, '/1.0/config/user.foo')).out, 'mapped');
    const guest = await lxc.attach(name, [process.execPath, guestTool(), 'get', 'user.foo']);
    assert.equal(guest.out, 'mapped', guest.stderr);
    assert.equal((await lxc.curl(name, '/1.0/meta-data')).out, `#cloud-config\ninstance-id: ${name}\nlocal-hostname: ${name}\n`);
  });

  test('another uid of the container gets 401, as in LXD', async () => {
    const r = await lxc.attach(name, ['/usr/bin/curl', '-sS', '--unix-socket', '/dev/apollo/sock', 'http://apollo/1.0/config/user.foo'], {
      uid: 1000,
      gid: 1000,
    });
    assert.equal(JSON.parse(r.out).error_code, 401, r.out);
  });

  test("the host's DIR stays closed to it: no listing, no state, logs, keys or admin socket", async () => {
    assert.equal(fs.statSync(daemon.dir).mode & 0o777, 0o711);
    const denied = async (command: string[]) => {
      const r = await lxc.attach(name, command);
      assert.notEqual(r.code, 0, `${command.join(' ')} worked inside: ${r.out}`);
      assert.match(r.stderr, /Permission denied|EACCES/, command.join(' '));
    };
    await denied(['ls', dirInside]);
    for (const entry of fs.readdirSync(daemon.dir, { withFileTypes: true })) {
      const inside = `${dirInside}/${entry.name}`;
      if (entry.name === 'devapollo' || entry.name === 'public') continue; // open by design
      if (entry.isDirectory()) await denied(['ls', inside]);
      else if (entry.isSocket()) await denied([process.execPath, '-e', connectScript, inside]);
      else await denied(['cat', inside]);
    }
    // Its state file, by its exact path, is closed too.
    await denied(['cat', `${dirInside}/containers/${name}.json`]);
    // The guest socket is the one thing it reaches, by either path.
    const direct = await lxc.attach(name, [
      '/usr/bin/curl',
      '-sS',
      '--unix-socket',
      `${dirInside}/devapollo/sock`,
      'http://apollo/1.0/config/user.foo',
    ]);
    assert.equal(direct.out, 'mapped', direct.stderr);
  });
});
