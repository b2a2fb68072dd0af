// DIR as PROTOCOL.md section 1 lays it out: 0711 and root's, so that an unprivileged
// runtime can pass through it to DIR/devapollo, with every secret below it closed on its
// own; checked as a non-root host user and from an unprivileged container, across a
// restart, and against a second daemon that the lock refuses.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe } from 'node:test';
import { hostCli, run, TestDaemon } from '../../helpers/daemon.js';
import { curlUnavailable, gatedTest } from '../../helpers/env.js';

/** Mode, owner and group of DIR and of everything below it, by relative path. */
function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (relative: string) => {
    const st = fs.lstatSync(path.join(dir, relative));
    out.set(relative, `${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`);
    if (st.isDirectory()) for (const entry of fs.readdirSync(path.join(dir, relative)).sort()) walk(path.join(relative, entry));
  };
  walk('.');
  return out;
}

const nobody = ['--reuid', '65534', '--regid', '65534', '--clear-groups', '--'];
/** Runs a command as a non-root host user with no groups. */
const asNobody = (command: readonly string[]) => run('setpriv', [...nobody, ...command]);
const statusOf = (socket: string) => ['curl', '-sS', '-o', '/dev/null', '-w', '%{http_code}', '--unix-socket', socket, 'http://apollo/1.0'];

describe('DIR layout', () => {
  const test = gatedTest(curlUnavailable);
  let daemon: TestDaemon;
  /** Files that hold secrets: a state file, a container's log, the lock. */
  let secrets: string[];

  before(async () => {
    if (curlUnavailable) return;
    daemon = await TestDaemon.start();
    await daemon.launch('box', { config: { 'user.secret': 'root-only' }, command: ['sh', '-c', 'echo log-secret; exec sleep 1000'] });
    secrets = ['containers/box.json', 'logs/box.log', 'daemon.lock'].map((file) => path.join(daemon.dir, file));
  });

  after(async () => {
    await daemon?.destroy();
  });

  test("DIR 0711 root, secrets 0700/0600, only DIR/devapollo and its socket, and DIR/public (the identity keys' public half), open to others", async () => {
    const modes = snapshot(daemon.dir);
    const mode = (p: string) => modes.get(p)?.split(' ')[0];
    assert.equal(modes.get('.'), '711 0:0');
    assert.equal(mode('devapollo'), '755');
    assert.equal(mode('devapollo/sock'), '666');
    assert.equal(mode('unix.socket'), '660');
    assert.equal(mode('daemon.lock'), '600');
    for (const dir of ['containers', 'logs', 'stage', 'identity']) assert.equal(mode(dir), '700', dir);
    const keys = [...modes.keys()].filter((p) => p.startsWith('identity/'));
    assert.equal(keys.length, 1, 'one signing key');
    for (const key of keys) assert.equal(mode(key), '600', key);
    // What a web server publishes at the issuer URL (PROTOCOL.md sections 1 and 3b): public by design.
    assert.equal(mode('public'), '755');
    assert.deepEqual([...modes.keys()].filter((p) => p.startsWith('public/')).sort(), ['public/jwks.json', 'public/openid-configuration']);
    for (const file of ['public/jwks.json', 'public/openid-configuration']) assert.equal(mode(file), '644', file);
    assert.equal(mode('containers/box.json'), '600');
    assert.equal(mode('logs/box.log'), '600');
    for (const [relative, entry] of modes) {
      if (relative === '.' || relative.startsWith('devapollo') || relative === 'public' || relative.startsWith('public/')) continue;
      const bits = Number.parseInt(entry.split(' ')[0] ?? '', 8);
      assert.equal(bits & 0o007, 0, `${relative} (${entry}) is closed to others`);
      assert.ok(entry.endsWith(' 0:0'), `${relative} (${entry}) is root's`);
    }
  });

  test('a non-root host user cannot list DIR, read a secret or reach the admin socket; the guest socket answers it 403', async () => {
    const list = await asNobody(['ls', daemon.dir]);
    assert.notEqual(list.code, 0);
    assert.match(list.stderr, /Permission denied/);
    for (const file of secrets) {
      const read = await asNobody(['cat', file]);
      assert.notEqual(read.code, 0, file);
      assert.match(read.stderr, /Permission denied/, file);
    }
    const admin = await asNobody(statusOf(path.join(daemon.dir, 'unix.socket')));
    assert.notEqual(admin.code, 0);
    assert.match(admin.stderr, /Permission denied|Couldn't connect/);
    const guest = await asNobody(statusOf(path.join(daemon.dir, 'devapollo/sock')));
    assert.equal(guest.out, '403', guest.stderr);
  });

  test('an unprivileged container sees no more: no listing, no secret, no admin socket; the guest socket is its own', async () => {
    const list = await daemon.exec('box', ['ls', daemon.dir]);
    assert.notEqual(list.code, 0);
    assert.match(list.stderr, /Permission denied/);
    for (const file of secrets) {
      const read = await daemon.exec('box', ['cat', file]);
      assert.notEqual(read.code, 0, file);
      assert.doesNotMatch(read.out, /secret/, file);
    }
    const admin = await daemon.exec('box', statusOf(path.join(daemon.dir, 'unix.socket')));
    assert.notEqual(admin.code, 0);
    assert.equal(admin.out, '000');
    const guest = await daemon.exec('box', [
      'curl',
      '-sS',
      '--unix-socket',
      path.join(daemon.dir, 'devapollo/sock'),
      'http://apollo/1.0/config/user.secret',
    ]);
    assert.equal(guest.out, 'root-only', guest.stderr);
  });

  test('a restart keeps DIR 0711 and closes what was opened by hand', async () => {
    await daemon.signal('SIGTERM');
    fs.chmodSync(daemon.dir, 0o755);
    fs.chmodSync(path.join(daemon.dir, 'containers'), 0o755);
    fs.chmodSync(path.join(daemon.dir, 'daemon.lock'), 0o644);
    await daemon.spawn();
    const modes = snapshot(daemon.dir);
    assert.equal(modes.get('.'), '711 0:0');
    assert.equal(modes.get('containers'), '700 0:0');
    assert.equal(modes.get('daemon.lock'), '600 0:0');
  });

  test('a second daemon, with another --admin-group, is refused by the lock and changes nothing in DIR', async () => {
    const before = snapshot(daemon.dir);
    const second = await daemon.cli(['serve', '--admin-group', '65534'], { timeoutMs: 20_000 });
    assert.equal(second.code, 1);
    assert.match(second.stderr, /^Error: another devapollo daemon is already serving .* \(pid \d+\)\n$/);
    assert.deepEqual(snapshot(daemon.dir), before);
    assert.equal((await daemon.curl('box', '/1.0/config/user.secret')).out, 'root-only');
  });
});

describe('DIR ownership and the admin group', () => {
  const test = gatedTest(curlUnavailable);

  test("--admin-group: the admin socket is the group's, DIR stays 0711, and the daemon warns that the group has host root", async () => {
    const daemon = await TestDaemon.start({ args: ['--admin-group', '65534'] });
    try {
      const modes = snapshot(daemon.dir);
      assert.equal(modes.get('.'), '711 0:0');
      assert.equal(modes.get('unix.socket'), '660 0:65534');
      assert.match(
        daemon.stderr,
        /WARN +the admin group has host root: its members can launch privileged containers and exec into them admin_group=65534 gid=65534/,
      );
    } finally {
      await daemon.destroy();
    }
  });

  test('a DIR owned by another user is refused, and nothing is made in it', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'devapollo-owned-'));
    try {
      fs.chownSync(dir, 65534, 65534);
      const r = await run(process.execPath, [hostCli, 'serve', '--dir', dir], { timeoutMs: 20_000 });
      assert.equal(r.code, 4);
      assert.equal(
        r.stderr,
        `Error: ${dir} is owned by uid 65534, not root: its owner could replace what the daemon keeps there (chown root ${dir})\n`,
      );
      assert.deepEqual(fs.readdirSync(dir), []);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  // A user makes DIR a symbolic link (in /tmp, sticky: anyone may add an entry) to a
  // root-only directory: the daemon must neither chmod it 0711 nor fill it.
  test("--dir through another user's symbolic link, or under a directory others could swap, is refused and nothing changes", async () => {
    const target = fs.mkdtempSync(path.join(os.tmpdir(), 'devapollo-rootonly-'));
    const link = path.join(os.tmpdir(), `devapollo-link-${process.pid}-${Date.now()}`);
    const parent = fs.mkdtempSync(path.join(os.tmpdir(), 'devapollo-parent-'));
    try {
      fs.chmodSync(target, 0o700);
      const made = await run('setpriv', ['--reuid', '65534', '--regid', '65534', '--clear-groups', 'ln', '-s', target, link]);
      assert.equal(made.code, 0, made.stderr);
      assert.equal(fs.lstatSync(link).uid, 65534);
      const serve = (dir: string) => run(process.execPath, [hostCli, 'serve', '--dir', dir], { timeoutMs: 20_000 });
      const r = await serve(link);
      assert.equal(r.code, 4, r.stderr);
      assert.equal(r.stderr, `Error: ${link} is a symbolic link owned by uid 65534, not root: its owner chooses where it points\n`);
      assert.equal(fs.statSync(target).mode & 0o7777, 0o700);
      assert.deepEqual(fs.readdirSync(target), []);
      // Under a directory another user owns, or one others may write that is not sticky.
      fs.chownSync(parent, 65534, 65534);
      const owned = await serve(path.join(parent, 'apollo'));
      assert.equal(owned.code, 4, owned.stderr);
      assert.equal(
        owned.stderr,
        `Error: --dir ${parent}/apollo: ${parent} is owned by uid 65534, not root: its owner could replace what the daemon keeps there (chown root ${parent})\n`,
      );
      fs.chownSync(parent, 0, 0);
      fs.chmodSync(parent, 0o777);
      const open = await serve(path.join(parent, 'apollo'));
      assert.equal(open.code, 4, open.stderr);
      assert.match(
        open.stderr,
        /is writable by others and not sticky: they could rename what is in it and put their own in its place \(chmod go-w /,
      );
      assert.deepEqual(fs.readdirSync(parent), [], 'nothing is made under a refused path');
      // A file is not a directory.
      const file = path.join(target, 'file');
      fs.writeFileSync(file, '');
      const notDir = await serve(file);
      assert.notEqual(notDir.code, 0);
      assert.equal(notDir.stderr, `Error: ${file} is not a directory\n`);
    } finally {
      fs.rmSync(link, { force: true });
      fs.rmSync(target, { recursive: true, force: true });
      fs.rmSync(parent, { recursive: true, force: true });
    }
  });
});
