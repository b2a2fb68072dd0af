// Processes that connect again: their pid namespace is remembered by process id (the
// pidfs inode number), never by pid, and which container it belongs to is looked up
// afresh each time. Real processes in real pid namespaces, on a real Unix socket.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { namespaceKey, openPidNamespace, parentNamespace } from '../../../dist/server/kernel/namespaces.js';
import { KnownProcesses, resolvePeer } from '../../../dist/server/kernel/peer.js';
import { closeFd, openPidfd, processIdOfPidfd } from '../../../dist/server/kernel/pidfd.js';
import { eventually } from '../../helpers/daemon.js';
import { gatedTest, rootUnavailable } from '../../helpers/env.js';
import { childrenOf } from '../../helpers/procs.js';

/** The process id (pidfs inode number) of `pid`, through a pidfd opened for it. */
function processIdOf(pid: number): bigint | undefined {
  const { fd } = openPidfd(pid);
  try {
    return processIdOfPidfd(fd);
  } finally {
    closeFd(fd);
  }
}

const pidfsUnavailable: string | false =
  rootUnavailable || (processIdOf(process.pid) === undefined ? 'needs pidfs process ids (Linux 6.9+, 64-bit)' : false);

/** Whether `fd` is an open descriptor of this process. */
function isOpen(fd: number): boolean {
  try {
    fs.fstatSync(fd);
    return true;
  } catch {
    return false;
  }
}

/** This process's descriptors that are pidfds of `pid`. */
function pidfdsOf(pid: number): number[] {
  return fs
    .readdirSync('/proc/self/fd')
    .map(Number)
    .filter((fd) => {
      try {
        return (
          fs.readlinkSync(`/proc/self/fd/${fd}`).includes('pidfd') &&
          /^Pid:\s*(\d+)$/m.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1] === String(pid)
        );
      } catch {
        return false;
      }
    });
}

// This process's own open-files limit, read and set in place (prlimit(2), through koffi
// as the daemon binds libc): a child could not lower it without descriptors of its own.
type Koffi = typeof import('koffi');
const koffi = createRequire(import.meta.url)('koffi') as Koffi;
const prlimit = koffi.load('libc.so.6').func('int prlimit(int pid, int resource, _In_ uint64_t *limit, _Out_ uint64_t *old)') as (
  pid: number,
  resource: number,
  limit: BigUint64Array | null,
  old: BigUint64Array,
) => number;
const RLIMIT_NOFILE = 7;

/**
 * Runs `body` with this process's soft open-files limit set so that exactly one
 * descriptor number is free below it, and puts the limit back before returning.
 */
function withOneFreeDescriptor<T>(body: () => T): T {
  const old = new BigUint64Array(2);
  assert.equal(prlimit(0, RLIMIT_NOFILE, null, old), 0);
  // The limit is on descriptor numbers: just above the first free number, there is one.
  let first = 0;
  while (isOpen(first)) first++;
  let limit = first + 1;
  while (isOpen(limit)) limit++;
  assert.equal(prlimit(0, RLIMIT_NOFILE, new BigUint64Array([BigInt(limit), old[1] as bigint]), new BigUint64Array(2)), 0);
  try {
    return body();
  } finally {
    assert.equal(prlimit(0, RLIMIT_NOFILE, old, new BigUint64Array(2)), 0);
  }
}

/** Connects to the socket at argv[1] once per "connect" line on stdin, keeping each open. */
const clientScript = `
const net = require('node:net');
const kept = [];
require('node:readline').createInterface({ input: process.stdin }).on('line', () => {
  const s = net.connect(process.argv[1], () => process.stdout.write('connected\\n'));
  kept.push(s);
});
process.stdin.on('end', () => process.exit(0));
`;

/** A client in a pid namespace of its own (`unshare --pid --fork`): its pid and its namespace key. */
async function namespacedClient(
  socketPath: string,
  nested = false,
): Promise<{ child: ChildProcess; pid: number; key: bigint; connect: () => Promise<void> }> {
  const command = [process.execPath, '-e', clientScript, socketPath];
  const own = ['--pid', '--fork', '--kill-child'];
  const args = nested ? [...own, 'unshare', ...own, ...command] : [...own, ...command];
  const child = spawn('unshare', args, { stdio: ['pipe', 'pipe', 'inherit'] });
  let pid = 0;
  await eventually(() => {
    // unshare --fork runs the command as its child; nested, one level further down.
    const first = childrenOf(child.pid ?? -1)[0];
    pid = (nested && first !== undefined ? childrenOf(first)[0] : first) ?? 0;
    return pid > 0;
  }, 'the client runs');
  const nsfd = openPidNamespace(pid);
  const key = namespaceKey(nsfd);
  fs.closeSync(nsfd);
  let buffered = '';
  const lines: (() => void)[] = [];
  child.stdout?.on('data', (c: Buffer) => {
    buffered += c.toString('utf8');
    while (buffered.includes('\n')) {
      buffered = buffered.slice(buffered.indexOf('\n') + 1);
      lines.shift()?.();
    }
  });
  const connect = () =>
    new Promise<void>((resolve) => {
      lines.push(resolve);
      child.stdin?.write('connect\n');
    });
  return { child, pid, key, connect };
}

describe('KnownProcesses', () => {
  test('holds the most recent processes up to its capacity', () => {
    const known = new KnownProcesses(2);
    known.remember(1n, 10n);
    known.remember(2n, 20n);
    known.remember(3n, 30n);
    assert.equal(known.size, 2);
    assert.equal(known.namespaceOf(1n), undefined);
    assert.equal(known.namespaceOf(2n), 20n);
    assert.equal(known.namespaceOf(3n), 30n);
  });

  test('closes the pidfd it keeps for a process when that process is pushed out, and all of them on clear', {
    skip: rootUnavailable,
  }, () => {
    const known = new KnownProcesses(1);
    const a = openPidfd(process.pid).fd;
    const b = openPidfd(process.pid).fd;
    known.remember(1n, 10n, a);
    assert.ok(isOpen(a));
    known.remember(2n, 20n, b);
    assert.equal(isOpen(a), false);
    assert.ok(isOpen(b));
    assert.equal(known.clear(), 1);
    assert.equal(isOpen(b), false);
    assert.equal(known.size, 0);
  });

  test('a process id names one process: the same through any pidfd of it, another for another', { skip: pidfsUnavailable }, async (t) => {
    const a = openPidfd(process.pid).fd;
    const b = openPidfd(process.pid).fd;
    const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' });
    t.after(() => sleeper.kill('SIGKILL'));
    await once(sleeper, 'spawn');
    const c = openPidfd(sleeper.pid as number).fd;
    t.after(() => [a, b, c].forEach(closeFd));
    assert.equal(processIdOfPidfd(a), processIdOfPidfd(b));
    assert.notEqual(processIdOfPidfd(a), processIdOfPidfd(c));
  });
});

describe('resolvePeer with known processes', () => {
  const test = gatedTest(pidfsUnavailable);
  let dir = '';
  let server: net.Server;
  const accepted: net.Socket[] = [];
  const waiting: ((socket: net.Socket) => void)[] = [];
  const children: ChildProcess[] = [];
  const socketPath = () => path.join(dir, 'sock');

  before(async () => {
    if (pidfsUnavailable) return;
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'devapollo-known-'));
    // Paused: nothing is read, so a client's exit does not close our end before it is resolved.
    server = net.createServer({ pauseOnConnect: true }, (socket) => {
      const next = waiting.shift();
      if (next) next(socket);
      else accepted.push(socket);
    });
    await new Promise<void>((resolve) => server.listen(socketPath(), resolve));
  });

  after(async () => {
    for (const child of children) {
      child.stdin?.end();
      child.kill('SIGKILL');
    }
    server?.close();
    for (const socket of accepted) socket.destroy();
    if (dir !== '') fs.rmSync(dir, { recursive: true, force: true });
  });

  const nextConnection = (connect: () => Promise<void>) =>
    new Promise<net.Socket>((resolve) => {
      waiting.push(resolve);
      void connect();
    });
  const fdOf = (socket: net.Socket) => (socket as unknown as { _handle: { fd: number } })._handle.fd;
  /** A client in a pid namespace of its own, killed with the others after the tests. */
  const startClient = async (nested = false) => {
    const client = await namespacedClient(socketPath(), nested);
    children.push(client.child);
    return client;
  };

  test('a process that connects again is matched through what is known of it, and only it', async () => {
    const client = await startClient();
    const other = await startClient();
    const known = new KnownProcesses();
    const containers = new Map([
      [client.key, 'client'],
      [other.key, 'other'],
    ]);
    const lookup = (key: bigint) => containers.get(key);

    const first = await nextConnection(client.connect);
    assert.equal(resolvePeer(fdOf(first), lookup, known).match, 'client');
    assert.equal(known.size, 1);
    // What the daemon goes by for a known process is what it remembered: shown here by
    // pointing that process at another namespace, which maps to another answer.
    const clientId = processIdOf(client.pid);
    assert.ok(clientId !== undefined);
    assert.equal(known.namespaceOf(clientId), client.key);
    containers.set(client.key + 1_000_000n, 'remembered');
    known.remember(clientId, client.key + 1_000_000n);
    const again = await nextConnection(client.connect);
    assert.equal(resolvePeer(fdOf(again), lookup, known).match, 'remembered');
    // Another process is never taken for it.
    const fromOther = await nextConnection(other.connect);
    assert.equal(resolvePeer(fdOf(fromOther), lookup, known).match, 'other');
    assert.equal(known.size, 2);
    // Without the table, the kernel's answer.
    assert.equal(resolvePeer(fdOf(again), lookup).match, 'client');
    for (const s of [first, again, fromOther]) s.destroy();
  });

  test('a known process whose namespace maps to nothing is walked up as before (nested namespaces)', async () => {
    const nested = await startClient(true);
    const nsfd = openPidNamespace(nested.pid);
    const parentFd = parentNamespace(nsfd);
    const parentKey = namespaceKey(parentFd);
    fs.closeSync(nsfd);
    fs.closeSync(parentFd);
    // Room for two: another process remembered first, then the nested one.
    const known = new KnownProcesses(2);
    known.remember(1n, 10n);
    const lookup = (key: bigint) => (key === parentKey ? 'outer' : undefined);
    for (let i = 0; i < 2; i++) {
      const socket = await nextConnection(nested.connect);
      assert.equal(resolvePeer(fdOf(socket), lookup, known).match, 'outer');
      socket.destroy();
    }
    assert.equal(known.size, 2);
    // Connecting again remembered nothing new, so nothing else was pushed out.
    assert.equal(known.namespaceOf(1n), 10n);
  });

  test('one pidfd is kept open for each process remembered, none for one connecting again', async () => {
    const client = await startClient();
    const known = new KnownProcesses();
    const lookup = (key: bigint) => (key === client.key ? 'client' : undefined);
    assert.deepEqual(pidfdsOf(client.pid), []);
    const sockets: net.Socket[] = [];
    for (let i = 0; i < 3; i++) {
      const socket = await nextConnection(client.connect);
      sockets.push(socket);
      assert.equal(resolvePeer(fdOf(socket), lookup, known).match, 'client');
      assert.equal(pidfdsOf(client.pid).length, 1);
    }
    known.clear();
    assert.deepEqual(pidfdsOf(client.pid), []);
    for (const s of sockets) s.destroy();
  });

  test('the pidfds kept for known processes are given up before a connection goes unresolved', async () => {
    const client = await startClient();
    const newcomer = await startClient();
    const known = new KnownProcesses();
    const containers = new Map([
      [client.key, 'client'],
      [newcomer.key, 'newcomer'],
    ]);
    const lookup = (key: bigint) => containers.get(key);
    const first = await nextConnection(client.connect);
    assert.equal(resolvePeer(fdOf(first), lookup, known).match, 'client');
    assert.equal(known.size, 1);
    // A process not seen before needs two descriptors (its pidfd and its pid namespace);
    // one is free, and the memo holds another.
    const fromNewcomer = await nextConnection(newcomer.connect);
    const answer = withOneFreeDescriptor(() => resolvePeer(fdOf(fromNewcomer), lookup, known));
    assert.equal(answer.match, 'newcomer');
    assert.equal(known.size, 0);
    assert.deepEqual(pidfdsOf(client.pid), []);
    // Without a memo to give up, the same shortage is the daemon's to report (a 503).
    const again = await nextConnection(newcomer.connect);
    assert.throws(() => withOneFreeDescriptor(() => resolvePeer(fdOf(again), lookup, known)), { name: 'OutOfDescriptors' });
    for (const s of [first, fromNewcomer, again]) s.destroy();
  });

  test('a known process that exited before its connection was read is nobody', async () => {
    const client = await startClient();
    const known = new KnownProcesses();
    const lookup = (key: bigint) => (key === client.key ? 'client' : undefined);
    const first = await nextConnection(client.connect);
    assert.equal(resolvePeer(fdOf(first), lookup, known).match, 'client');
    const second = await nextConnection(client.connect);
    const exited = once(client.child, 'exit');
    client.child.stdin?.end();
    await exited;
    await eventually(() => !fs.existsSync(`/proc/${client.pid}`), 'the client is gone');
    const answer = resolvePeer(fdOf(second), lookup, known);
    assert.equal(answer.match, undefined);
    assert.equal(answer.alive, false);
    for (const s of [first, second]) s.destroy();
  });
});
