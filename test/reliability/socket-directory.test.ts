// `rm -rf DIR/devapollo`, a removed or replaced socket, a removed admin socket: the daemon
// re-creates what went missing (PROTOCOL.md section 1), keeps serving on it, logs it and
// says so in `status`, names the running containers that keep the old, dead directory,
// and a daemon started with the directory missing re-creates it too. Also with sockets
// passed by a service manager (systemd socket activation).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe } from 'node:test';
import { ActivatedDaemon } from '../helpers/activation.js';
import { eventually, TestDaemon } from '../helpers/daemon.js';
import { curlUnavailable, gatedTest } from '../helpers/env.js';

interface Repairs {
  count: number;
  last_at: string | null;
  last: string | null;
  stranded_containers: string[];
}

const isSocket = (file: string) => {
  try {
    return fs.lstatSync(file).isSocket();
  } catch {
    return false;
  }
};

const ask = (key: string) => ['curl', '-sS', '--unix-socket', '/dev/apollo/sock', `http://apollo/1.0/config/${key}`];

describe('the socket directory under a running daemon', () => {
  let daemon: TestDaemon;
  const test = gatedTest(curlUnavailable);

  before(async () => {
    if (curlUnavailable) return;
    daemon = await TestDaemon.start();
    await daemon.launch('before', { config: { 'user.foo': 'before' } });
  });

  after(async () => {
    await daemon?.destroy();
  });

  const guestDir = () => path.join(daemon.dir, 'devapollo');
  const guestSocket = () => path.join(guestDir(), 'sock');
  const repairs = async () =>
    (JSON.parse((await daemon.cli(['status', '--format', 'json'])).out) as { socket_repairs: Repairs }).socket_repairs;

  test('rm -rf DIR/devapollo: re-created, served, logged, in status; older containers named as cut off', async () => {
    assert.deepEqual(await repairs(), { count: 0, last_at: null, last: null, stranded_containers: [] });
    const inode = fs.statSync(guestDir()).ino;
    fs.rmSync(guestDir(), { recursive: true, force: true });
    await eventually(() => isSocket(guestSocket()), 'the socket is back');
    assert.notEqual(fs.statSync(guestDir()).ino, inode);
    assert.equal(fs.statSync(guestDir()).mode & 0o777, 0o755);
    assert.equal(fs.statSync(guestSocket()).mode & 0o777, 0o666);
    await daemon.launch('after', { config: { 'user.foo': 'after' } });
    assert.equal((await daemon.exec('after', ask('user.foo'))).out, 'after');
    const seen = await repairs();
    assert.ok(seen.count >= 2, `count ${seen.count}`);
    assert.match(seen.last ?? '', /devapollo/);
    assert.deepEqual(seen.stranded_containers, ['before']);
    assert.match(daemon.stderr, /re-created a socket path that went missing or was replaced what="[^"]*\/devapollo missing"/);
    // The container that had the deleted directory mounted reaches nothing, as documented.
    assert.notEqual((await daemon.exec('before', ask('user.foo'))).code, 0);
    const table = (await daemon.cli(['status'])).out;
    assert.match(table, /socket re-created/);
    assert.match(table, /cut off \(restart them\) *│ 1: before/);
    // Restarted, it has the new directory and is served again.
    assert.equal((await daemon.cli(['stop', 'before'])).code, 0);
    assert.equal((await daemon.cli(['start', 'before'])).code, 0);
    assert.equal((await daemon.exec('before', ask('user.foo'))).out, 'before');
    assert.deepEqual((await repairs()).stranded_containers, []);
  });

  test('a removed or replaced socket alone comes back, for the containers that run', async () => {
    const before = (await repairs()).count;
    fs.rmSync(guestSocket());
    await eventually(() => isSocket(guestSocket()), 'the removed socket is back');
    assert.equal((await daemon.exec('after', ask('user.foo'))).out, 'after');
    fs.rmSync(guestSocket());
    fs.writeFileSync(guestSocket(), 'not a socket');
    await eventually(() => isSocket(guestSocket()), 'the replaced socket is back');
    assert.equal((await daemon.exec('after', ask('user.foo'))).out, 'after');
    const seen = await repairs();
    assert.equal(seen.count, before + 2);
    assert.match(seen.last ?? '', /devapollo\/sock replaced$/);
    assert.deepEqual(seen.stranded_containers, []);
  });

  test('a removed admin socket comes back, root only', async () => {
    const admin = path.join(daemon.dir, 'unix.socket');
    fs.rmSync(admin);
    await eventually(() => isSocket(admin), 'the admin socket is back');
    assert.equal(fs.statSync(admin).mode & 0o777, 0o660);
    assert.equal((await daemon.cli(['status'])).code, 0);
  });

  test('a daemon started with DIR/devapollo missing re-creates it and names the containers cut off', async () => {
    await daemon.signal('SIGTERM');
    fs.rmSync(guestDir(), { recursive: true, force: true });
    await daemon.spawn();
    assert.ok(isSocket(guestSocket()));
    const seen = await repairs();
    assert.equal(seen.count, 1);
    assert.match(seen.last ?? '', /devapollo missing at start$/);
    assert.deepEqual(seen.stranded_containers.sort(), ['after', 'before']);
    assert.match(daemon.stderr, /devapollo missing at start" repairs=1 stranded_containers=2/);
    await daemon.launch('third', { config: { 'user.foo': 'third' } });
    assert.equal((await daemon.exec('third', ask('user.foo'))).out, 'third');
  });
});

describe('the socket directory with sockets from a service manager', () => {
  const test = gatedTest(curlUnavailable);
  let daemon: ActivatedDaemon | undefined;

  after(async () => {
    await daemon?.destroy();
  });

  test('the daemon binds a socket of its own where the inherited one was deleted, and again after a restart', async () => {
    daemon = await ActivatedDaemon.start();
    const guestSocket = path.join(daemon.dir, 'devapollo/sock');
    fs.rmSync(path.join(daemon.dir, 'devapollo'), { recursive: true, force: true });
    await eventually(() => isSocket(guestSocket), 'the socket is back');
    assert.equal((await daemon.cli(['launch', 'act', '-c', 'user.foo=activated'])).code, 0);
    assert.equal((await daemon.cli(['exec', 'act', '--', ...ask('user.foo')])).out, 'activated');
    // Restarted, the daemon is handed the old socket again (bound to the deleted path).
    await daemon.stop();
    const from = await daemon.startAgain();
    assert.equal((await daemon.cli(['exec', 'act', '--', ...ask('user.foo')])).out, 'activated');
    assert.match(daemon.log.slice(from), /devapollo\/sock missing" repairs=\d+ api=guest/);
  });
});
