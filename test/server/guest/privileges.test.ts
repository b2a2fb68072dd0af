// Inside an unprivileged container: who may ask, what stays closed, what cannot be replaced.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe } from 'node:test';
import { TestDaemon } from '../../helpers/daemon.js';
import { curlUnavailable, gatedTest } from '../../helpers/env.js';

describe('privileges inside an unprivileged container', () => {
  let daemon: TestDaemon;
  const test = gatedTest(curlUnavailable);

  before(async () => {
    if (curlUnavailable) return;
    daemon = await TestDaemon.start();
    await daemon.launch('box', { config: { 'user.foo': 'root-only' } });
  });

  after(async () => {
    await daemon?.destroy();
  });

  const asUser = (command: string[]) => ['setpriv', '--reuid', '1000', '--regid', '1000', '--clear-groups', '--', ...command];

  test("the container's root is an unprivileged host uid", async () => {
    const r = await daemon.exec('box', ['sh', '-c', 'id -u; cat /proc/self/uid_map']);
    const [uid, map] = r.out.split('\n');
    assert.equal(uid, '0');
    const [inside, outside] = (map ?? '').trim().split(/\s+/).map(Number);
    assert.equal(inside, 0);
    assert.ok((outside ?? 0) > 0, `root maps to host uid ${outside}`);
  });

  test('root reads its keys; a non-root user gets 401 until security.devapollo.users=true', async () => {
    assert.equal((await daemon.curl('box', '/1.0/config/user.foo')).out, 'root-only');
    const denied = await daemon.exec(
      'box',
      asUser(['curl', '-sS', '-i', '--unix-socket', '/dev/apollo/sock', 'http://apollo/1.0/config/user.foo']),
    );
    assert.match(denied.out, /^HTTP\/1\.1 401 /);
    assert.match(denied.out, /\{"type":"error","error":"Access denied for non-root user","error_code":401\}$/);
    const guest = await daemon.exec(
      'box',
      asUser([process.execPath, (await import('../../helpers/daemon.js')).guestTool(), 'get', 'user.foo']),
    );
    assert.equal(guest.code, 4);
    assert.match(guest.stderr, /^Error: Access denied for non-root user\n$/);
    assert.equal((await daemon.cli(['config', 'set', 'box', 'security.devapollo.users=true'])).code, 0);
    const allowed = await daemon.exec(
      'box',
      asUser(['curl', '-sS', '--unix-socket', '/dev/apollo/sock', 'http://apollo/1.0/config/user.foo']),
    );
    assert.equal(allowed.out, 'root-only');
    assert.equal((await daemon.cli(['config', 'set', 'box', 'security.devapollo.users=false'])).code, 0);
  });

  test('DIR and the admin socket are closed to the container', async () => {
    const list = await daemon.exec('box', ['ls', daemon.dir]);
    assert.notEqual(list.code, 0);
    assert.match(list.stderr, /Permission denied/);
    const admin = await daemon.exec('box', [
      'curl',
      '-sS',
      '--unix-socket',
      path.join(daemon.dir, 'unix.socket'),
      'http://apollo/1.0/containers',
    ]);
    assert.notEqual(admin.code, 0);
    assert.equal(admin.out, '');
    const state = await daemon.exec('box', ['cat', path.join(daemon.dir, 'containers', 'box.json')]);
    assert.notEqual(state.code, 0);
    assert.doesNotMatch(state.out, /root-only/);
  });

  test('/dev/apollo/sock cannot be removed, replaced or unmounted', async () => {
    const attempts = [
      'rm -f /dev/apollo/sock',
      'mv /dev/apollo/sock /dev/apollo/old',
      'ln -sf /tmp /dev/apollo/sock',
      'touch /dev/apollo/other',
      'umount /dev/apollo',
      'umount -l /dev/apollo',
      'mount -o remount,rw /dev/apollo',
      'rmdir /dev/apollo',
    ];
    for (const attempt of attempts) {
      const r = await daemon.exec('box', ['sh', '-c', attempt]);
      assert.notEqual(r.code, 0, `${attempt} must fail`);
    }
    const still = await daemon.exec('box', ['sh', '-c', 'test -S /dev/apollo/sock && grep " /dev/apollo " /proc/self/mounts']);
    assert.match(still.out, / ro[, ]/);
    assert.equal((await daemon.curl('box', '/1.0/config/user.foo')).out, 'root-only');
  });

  test('the host mount table is unchanged by a running container', async () => {
    const { default: fs } = await import('node:fs');
    const mounts = fs.readFileSync('/proc/self/mounts', 'utf8');
    assert.doesNotMatch(mounts, /\/dev\/apollo/);
    assert.doesNotMatch(mounts, new RegExp(daemon.dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
  });

  test('a container has its own hostname, /dev and /proc', async () => {
    const r = await daemon.exec('box', ['sh', '-c', 'hostname; ls /dev | tr "\\n" " "; echo; cat /proc/1/cmdline | tr "\\0" " "']);
    const [hostname, dev, init] = r.out.split('\n');
    assert.equal(hostname, 'box');
    for (const node of ['null', 'zero', 'full', 'random', 'urandom', 'tty', 'pts', 'shm', 'apollo']) {
      assert.ok((dev ?? '').split(' ').includes(node), `/dev/${node} in ${dev}`);
    }
    assert.match(init ?? '', /^init /);
  });

  test('security.devapollo=false at launch means no /dev/apollo at all', async () => {
    await daemon.launch('dark', { config: { 'security.devapollo': 'false', 'user.foo': 'x' } });
    const r = await daemon.exec('dark', ['sh', '-c', 'test -e /dev/apollo && echo present || echo absent']);
    assert.equal(r.out, 'absent\n');
  });

  test('a privileged container keeps host root and is served', async () => {
    await daemon.launch('priv', { privileged: true, config: { 'user.foo': 'privileged' } });
    const r = await daemon.exec('priv', [
      'sh',
      '-c',
      'cat /proc/self/uid_map; curl -sS --unix-socket /dev/apollo/sock http://apollo/1.0/config/user.foo',
    ]);
    assert.match(r.out, /^\s*0\s+0\s+4294967295\n/);
    assert.match(r.out, /privileged$/);
    const list = JSON.parse((await daemon.cli(['list', '--format', 'json'])).out) as { name: string; privileged: boolean }[];
    assert.equal(list.find((c) => c.name === 'priv')?.privileged, true);
  });
});
