// Identity attacks: identity is fixed when the connection is made, from the kernel's
// credentials. Renaming, forking, passing sockets, recycled namespaces, user namespaces
// on the host: none ever reads another container's keys.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe } from 'node:test';
import { eventually, guestScript, run, TestDaemon } from '../helpers/daemon.js';
import { curlUnavailable, gatedTest } from '../helpers/env.js';
import { type KernelMode, kernelModes } from '../helpers/kernel-modes.js';
import { childrenOf } from '../helpers/procs.js';

const python = ['/usr/bin/python3'].find((p) => fs.existsSync(p));

/** Receives one descriptor on an abstract Unix socket, asks for user.foo on it, prints the answer. */
const receiver = `
import array, socket, sys
name = sys.argv[1]
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind('\\0' + name)
srv.listen(1)
print('listening', flush=True)
conn, _ = srv.accept()
msg, fds, flags, addr = socket.recv_fds(conn, 16, 1)
api = socket.socket(fileno=fds[0])
api.sendall(b'GET /1.0/config/user.foo HTTP/1.1\\r\\nHost: apollo\\r\\nConnection: close\\r\\n\\r\\n')
answer = b''
while True:
    chunk = api.recv(4096)
    if not chunk: break
    answer += chunk
print(answer.decode().split('\\r\\n')[0] + ' ' + answer.decode().split('\\r\\n\\r\\n', 1)[1], flush=True)
conn.sendall(b'x')
`;

/**
 * Connects to the devapollo socket at argv[2] and hands the connection to the receiver
 * named argv[1]; stays alive until the receiver has its answer, since a connection whose
 * process exited before the daemon read it is nobody's (a loaded daemon may accept late).
 */
const sender = `
import socket, sys
api = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
api.connect(sys.argv[2])
peer = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
peer.connect('\\0' + sys.argv[1])
socket.send_fds(peer, [b'x'], [api.fileno()])
peer.recv(1)
`;

/**
 * Connects to the socket at argv[1] and exits at once, leaving the connection to a child
 * that waits argv[3] seconds, asks GET /1.0 on it and writes the answer to argv[2].
 */
const leaver = `
import os, socket, sys, time
api = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
api.connect(sys.argv[1])
if os.fork() == 0:
    time.sleep(float(sys.argv[3]))
    api.sendall(b'GET /1.0 HTTP/1.1\\r\\nHost: d\\r\\nConnection: close\\r\\n\\r\\n')
    answer = b''
    while True:
        chunk = api.recv(4096)
        if not chunk: break
        answer += chunk
    with open(sys.argv[2] + '.part', 'wb') as f: f.write(answer)
    os.rename(sys.argv[2] + '.part', sys.argv[2])
    os._exit(0)
os._exit(0)
`;

/**
 * A process whose main thread exits (pthread_exit) while a second thread runs on: the
 * second thread waits until the main thread is a zombie, then asks argv[1] for user.foo
 * and prints the status line and the body.
 */
const leaderless = `
import ctypes, os, socket, sys, threading, time
def state():
    return open('/proc/self/stat').read().rsplit(')', 1)[1].split()[0]
def ask():
    while state() != 'Z':
        time.sleep(0.01)
    api = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    api.connect(sys.argv[1])
    api.sendall(b'GET /1.0/config/user.foo HTTP/1.1\\r\\nHost: apollo\\r\\nConnection: close\\r\\n\\r\\n')
    answer = b''
    while True:
        chunk = api.recv(4096)
        if not chunk: break
        answer += chunk
    head, body = answer.decode().split('\\r\\n\\r\\n', 1)
    os.write(1, (state() + ' ' + head.split('\\r\\n')[0] + ' ' + body).encode())
    os._exit(0)
threading.Thread(target=ask).start()
ctypes.CDLL(None).pthread_exit(None)
`;

/** Kernel features a daemon can be told to do without (src/server/kernel/features.ts). */
const legacyKernel = { ...process.env, DEVAPOLLO_TEST_LEGACY_KERNEL: 'peer-pidfd,pidfd-namespace,ns-get-id' };

/** The suite on one kernel path (this kernel's, or a fallback for older ones); one test file per mode. */
export function identityAttacksSuite(mode: KernelMode): void {
  describe(`identity attacks, ${mode.name}`, () => {
    let daemon: TestDaemon;
    const test = gatedTest(curlUnavailable);
    const children: ChildProcess[] = [];

    before(async () => {
      if (curlUnavailable) return;
      daemon = await TestDaemon.start({ env: mode.env });
      const status = JSON.parse((await daemon.cli(['status', '--format', 'json'])).out) as { identity: unknown };
      assert.deepEqual(status.identity, mode.identity, 'the daemon takes the kernel paths of this mode');
      await daemon.launch('alice', { config: { 'user.foo': 'alice-secret' } });
      await daemon.launch('bob', { config: { 'user.foo': 'bob' } });
    });

    after(async () => {
      for (const child of children) child.kill('SIGKILL');
      await daemon?.destroy();
    });

    const sock = () => path.join(daemon.dir, 'devapollo/sock');
    const ask = ['curl', '-sS', '-w', ' %{http_code}', '--unix-socket', '/dev/apollo/sock', 'http://apollo/1.0/config/user.foo'];

    test('a process that renames itself is still who it is', async () => {
      const renamed = guestScript(
        'renamed.cjs',
        `process.title = 'init';
require('fs').writeFileSync('/proc/self/comm', 'systemd');
require('http').get({ socketPath: process.argv[2], path: '/1.0/config/user.foo' }, (res) => {
  let b = ''; res.on('data', (c) => (b += c)); res.on('end', () => console.log(res.statusCode + ' ' + b));
});
`,
      );
      assert.equal((await daemon.exec('bob', [process.execPath, renamed, '/dev/apollo/sock'])).out, '200 bob\n');
      const host = await run(process.execPath, [renamed, sock()]);
      assert.match(host.out, /^403 /);
      assert.doesNotMatch(host.out, /alice|bob/);
    });

    test('forked and double-forked (daemonised) processes belong to their container', async () => {
      const r = await daemon.exec('bob', [
        'sh',
        '-c',
        `( ( setsid ${ask.map((a) => `'${a}'`).join(' ')} > /dev/shm/forked ) & ) ; sleep 0.1; while [ ! -s /dev/shm/forked ]; do sleep 0.05; done; cat /dev/shm/forked`,
      ]);
      assert.equal(r.out, 'bob 200');
    });

    test('a passed socket keeps the identity of the process that connected', async (t) => {
      if (python === undefined) {
        t.skip('needs /usr/bin/python3 to pass descriptors (SCM_RIGHTS)');
        return;
      }
      const recv = guestScript('receiver.py', receiver);
      const send = guestScript('sender.py', sender);
      const handOver = async (from: 'host' | 'bob') => {
        const name = `apollo-attack-${process.pid}-${from}`;
        const listener = spawn(
          process.execPath,
          [(await import('../helpers/daemon.js')).hostCli, '--dir', daemon.dir, 'exec', 'alice', '--', python, recv, name],
          {
            stdio: ['ignore', 'pipe', 'inherit'],
          },
        );
        children.push(listener);
        const exited = new Promise((resolve) => listener.once('close', resolve));
        let out = '';
        listener.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
        await eventually(() => out.includes('listening'), 'receiver listens');
        const sent =
          from === 'host' ? await run(python, [send, name, sock()]) : await daemon.exec('bob', [python, send, name, '/dev/apollo/sock']);
        assert.equal(sent.code, 0, sent.stderr);
        await exited;
        return out.split('\n')[1] ?? '';
      };
      // A host process's connection, used from inside alice: still the host's, still refused.
      const fromHost = await handOver('host');
      assert.match(fromHost, /^HTTP\/1\.1 403 /);
      assert.doesNotMatch(fromHost, /alice-secret/);
      // bob's connection, used from inside alice: bob's answer, never alice's.
      const fromBob = await handOver('bob');
      assert.equal(fromBob, 'HTTP/1.1 200 OK bob');
    });

    test("a container that exits: a new namespace that reuses its inode number is nobody's", async (t) => {
      await daemon.launch('gone', { config: { 'user.foo': 'gone-secret' } });
      const list = JSON.parse((await daemon.cli(['list', '--format', 'json'])).out) as { name: string; pid: number }[];
      const pid = list.find((c) => c.name === 'gone')?.pid ?? 0;
      const inode = fs.statSync(`/proc/${pid}/ns/pid`).ino;
      assert.equal((await daemon.cli(['stop', 'gone', '--force'])).code, 0);
      // New pid namespaces, one at a time, until the kernel hands out the same inode number.
      let reused: ChildProcess | undefined;
      let init = 0;
      for (let attempt = 0; attempt < 200 && reused === undefined; attempt++) {
        const candidate = spawn('unshare', ['--pid', '--fork', '--kill-child', 'sleep', '60'], { stdio: 'ignore' });
        children.push(candidate);
        await eventually(() => childrenOf(candidate.pid ?? 0).length > 0, 'candidate namespace');
        const child = childrenOf(candidate.pid ?? 0)[0] ?? 0;
        if (fs.statSync(`/proc/${child}/ns/pid`).ino === inode) {
          reused = candidate;
          init = child;
        } else {
          candidate.kill('SIGKILL');
        }
      }
      if (reused === undefined) {
        t.skip('the kernel did not reuse the inode number within 200 new namespaces');
        return;
      }
      t.diagnostic(`inode ${inode} reused by a new pid namespace`);
      const r = await run('nsenter', ['--target', String(init), '--pid', '--', ...ask.slice(0, 5), sock(), ask[6] as string]);
      assert.match(r.out, / 403$/);
      assert.doesNotMatch(r.out, /gone-secret/);
    });

    test('a host process in its own user namespace is nobody', async () => {
      const r = await run('unshare', ['--user', '--map-root-user', '--', ...ask.slice(0, 5), sock(), ask[6] as string]);
      assert.match(r.out, / 403$/);
      assert.doesNotMatch(r.out, /alice|bob/);
    });

    test('a process whose main thread has exited is still served, on the current and the legacy kernel paths', async (t) => {
      if (python === undefined) {
        t.skip('needs /usr/bin/python3 for a process whose main thread exits');
        return;
      }
      const script = guestScript('leaderless.py', leaderless);
      const asked = await daemon.exec('alice', [python, script, '/dev/apollo/sock']);
      assert.equal(asked.out, 'Z HTTP/1.1 200 OK alice-secret', asked.stderr);
      // Seen from the host, such a process is nobody, as every host process is.
      const host = await run(python, [script, sock()]);
      assert.match(host.out, /^Z HTTP\/1\.1 403 /);
      // The old form of the variable (every feature named) still means all of them off.
      if (mode !== kernelModes.thisKernel) return;
      const legacy = await TestDaemon.start({ env: legacyKernel });
      try {
        const identity = JSON.parse((await legacy.cli(['status', '--format', 'json'])).out) as { identity: Record<string, boolean> };
        assert.deepEqual(identity.identity, { peer_pidfd: false, pidfd_namespace: false, namespace_ids: false });
        await legacy.launch('carol', { config: { 'user.foo': 'carol-secret' } });
        const old = await legacy.exec('carol', [python, script, '/dev/apollo/sock']);
        assert.equal(old.out, 'Z HTTP/1.1 200 OK carol-secret', old.stderr);
        assert.match((await run(python, [script, path.join(legacy.dir, 'devapollo/sock')])).out, /^Z HTTP\/1\.1 403 /);
      } finally {
        await legacy.destroy();
      }
    });

    test('the guest socket reaches no admin operation', async () => {
      for (const [method, target] of [
        ['GET', '/1.0/containers'],
        ['POST', '/1.0/containers'],
        ['PATCH', '/1.0/containers/alice/config'],
        ['DELETE', '/1.0/containers/alice'],
        ['PUT', '/1.0/containers/alice/state'],
        ['PUT', '/1.0/containers/bob/init'],
      ] as const) {
        const r = await daemon.curl('bob', target, ['-X', method, '-d', '{"user.foo":"pwned"}', '-o', '/dev/null', '-w', '%{http_code}']);
        assert.equal(r.out, '404', `${method} ${target}`);
      }
      assert.equal((await daemon.cli(['config', 'get', 'alice', 'user.foo'])).out, 'alice-secret');
    });

    test('the admin socket refuses a connection whose process exited before the daemon read it', async (t) => {
      if (python === undefined) {
        t.skip('needs /usr/bin/python3 to fork with a connection');
        return;
      }
      const script = guestScript('leaver.py', leaver);
      const answerFile = path.join(path.dirname(script), `leaver-answer-${process.pid}`);
      fs.rmSync(answerFile, { force: true });
      const pid = daemon.pid as number;
      // Stopped, the daemon cannot accept: the connection waits in the backlog until the
      // process that made it is gone (and reaped), and only its child holds it.
      process.kill(pid, 'SIGSTOP');
      try {
        const parent = spawn(python, [script, path.join(daemon.dir, 'unix.socket'), answerFile, '1'], { stdio: 'ignore' });
        children.push(parent);
        await new Promise((resolve) => parent.once('exit', resolve));
      } finally {
        process.kill(pid, 'SIGCONT');
      }
      await eventually(() => fs.existsSync(answerFile), 'the child has its answer');
      const answer = fs.readFileSync(answerFile, 'utf8');
      fs.rmSync(answerFile, { force: true });
      assert.match(answer, /^HTTP\/1\.1 403 /);
      assert.match(answer, /"error":"Forbidden: the process that connected has exited"/);
      assert.equal((await daemon.cli(['status'])).code, 0, 'a live caller is still let in');
    });

    test('the admin socket: root and the admin group only', async (t) => {
      const asUser = (groups: string) => [
        'setpriv',
        '--reuid',
        '4242',
        '--regid',
        '4242',
        groups === '' ? '--clear-groups' : `--groups=${groups}`,
        '--',
      ];
      const denied = await run(asUser('')[0] as string, [
        ...asUser('').slice(1),
        'curl',
        '-sS',
        '--unix-socket',
        path.join(daemon.dir, 'unix.socket'),
        'http://d/1.0',
      ]);
      assert.notEqual(denied.code, 0);
      assert.doesNotMatch(denied.out, /version/);
      if (spawnSync('getent', ['group', 'devapollo-test']).status !== 0 && spawnSync('groupadd', ['-r', 'devapollo-test']).status !== 0) {
        t.skip('cannot create a group for the admin-group check');
        return;
      }
      const gid = spawnSync('getent', ['group', 'devapollo-test'], { encoding: 'utf8' }).stdout.split(':')[2] ?? '';
      const grouped = await TestDaemon.start({ args: ['--admin-group', 'devapollo-test'], env: mode.env });
      try {
        const socket = path.join(grouped.dir, 'unix.socket');
        const member = await run('setpriv', [...asUser(gid).slice(1), 'curl', '-sS', '--unix-socket', socket, 'http://d/1.0']);
        assert.equal(member.code, 0, member.stderr);
        assert.match(member.out, /"version"/);
        const stranger = await run('setpriv', [...asUser('').slice(1), 'curl', '-sS', '--unix-socket', socket, 'http://d/1.0']);
        assert.notEqual(stranger.code, 0);
        assert.equal(fs.statSync(grouped.dir).mode & 0o777, 0o711);
        assert.equal(fs.statSync(path.join(grouped.dir, 'containers')).mode & 0o777, 0o700);
      } finally {
        await grouped.destroy();
      }
    });
  });
}
