// What the kernel answers, step by step, for a peer whose main thread has exited while a
// second thread connects (pthread_exit in main): the facts pidNamespaceOfPidfd relies on,
// checked on this kernel and printed as diagnostics. A real process on a real socket.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { Errno, errno, getsockopt, ioctlValue } from '../../../dist/server/kernel/libc.js';
import { namespaceKey, pidNamespaceOfPidfd } from '../../../dist/server/kernel/namespaces.js';
import { readPeerCredentials } from '../../../dist/server/kernel/peer.js';
import { closeFd, pidfdIsAlive } from '../../../dist/server/kernel/pidfd.js';

const python = ['/usr/bin/python3'].find((p) => fs.existsSync(p));

/** Starts a thread that connects to argv[1] once the main thread is a zombie, then ends the main thread; the thread waits for a byte, then exits. */
const leaderless = `
import ctypes, os, socket, sys, threading, time
def run():
    while open('/proc/self/stat').read().rsplit(')', 1)[1].split()[0] != 'Z':
        time.sleep(0.01)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sys.argv[1])
    s.recv(1)
    os._exit(0)
threading.Thread(target=run).start()
ctypes.CDLL(None).pthread_exit(None)
`;

describe('a peer whose main thread has exited', () => {
  test('the kernel: thread-group pid, a live pidfd, ESRCH from the ioctl, the namespace from /proc', {
    skip: python === undefined ? 'needs /usr/bin/python3' : false,
  }, async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'devapollo-leaderless-'));
    const script = path.join(dir, 'leaderless.py');
    fs.writeFileSync(script, leaderless);
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(path.join(dir, 'sock'), resolve));
    const child = spawn(python as string, [script, path.join(dir, 'sock')], { stdio: 'ignore' });
    try {
      const socket = await new Promise<net.Socket>((resolve) => server.once('connection', resolve));
      // The child may be killed before it has read the byte: a reset then is no news.
      socket.on('error', () => undefined);
      const fd = (socket as unknown as { _handle: { fd: number } })._handle.fd;
      const credentials = readPeerCredentials(fd);
      t.diagnostic(`SO_PEERCRED pid ${credentials.pid} (the child is ${child.pid})`);
      assert.equal(credentials.pid, child.pid, 'SO_PEERCRED names the thread group, by the exited main thread');
      const status = fs.readFileSync(`/proc/${credentials.pid}/status`, 'utf8');
      assert.match(status, /^State:\s+Z/m, 'the main thread is a zombie');
      assert.match(status, /^Threads:\s+2$/m);

      const buffer = Buffer.alloc(4);
      const length = Uint32Array.of(4);
      if (getsockopt(fd, 1, 77, buffer, length) !== 0) {
        t.skip(`no SO_PEERPIDFD here (errno ${errno()})`);
        return;
      }
      const pidfd = buffer.readInt32LE(0);
      try {
        assert.equal(pidfdIsAlive(pidfd), true, 'the pidfd polls alive while a thread runs');
        const direct = ioctlValue(pidfd, 0xff05, 0);
        const err = direct < 0 ? errno() : 0;
        t.diagnostic(`PIDFD_GET_PID_NAMESPACE: ${direct < 0 ? `errno ${err}` : 'a namespace'}`);
        closeFd(direct);
        if (direct < 0) assert.equal(err, Errno.ESRCH);
        const threads = fs.readdirSync(`/proc/${credentials.pid}/task`).filter((tid) => tid !== String(credentials.pid));
        assert.equal(threads.length, 1);
        const nsOfThread = fs.openSync(`/proc/${credentials.pid}/task/${threads[0]}/ns/pid`, 'r');
        const nsOfSelf = fs.openSync('/proc/self/ns/pid', 'r');
        const nsfd = pidNamespaceOfPidfd(pidfd, credentials.pid, pidfdIsAlive);
        try {
          assert.ok(nsfd >= 0, 'the namespace is found');
          assert.equal(namespaceKey(nsfd), namespaceKey(nsOfThread), "the live thread's namespace");
          assert.equal(namespaceKey(nsfd), namespaceKey(nsOfSelf));
        } finally {
          closeFd(nsfd);
          fs.closeSync(nsOfThread);
          fs.closeSync(nsOfSelf);
        }
      } finally {
        closeFd(pidfd);
      }
      const exited = new Promise((resolve) => child.once('exit', resolve));
      socket.end('x');
      await exited;
    } finally {
      child.kill('SIGKILL');
      server.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
