/**
 * DIR itself: the one lock that makes a daemon its only writer, and the modes of
 * everything in it (PROTOCOL.md section 1). Who may own it: dir-check.ts.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ApolloError } from '../../shared/errors.js';
import { Errno, errno, flock } from '../kernel/libc.js';
import type { DaemonPaths } from '../paths.js';

const LOCK_EX = 2;
const LOCK_NB = 4;

/**
 * One daemon per DIR: an flock on DIR/daemon.lock, released by the kernel if we die. The
 * file holds the holder's pid, for the refusal a second daemon prints. Returns the
 * descriptor, to be closed at shutdown.
 */
export function acquireLock(file: string): number {
  const fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
  if (flock(fd, LOCK_EX | LOCK_NB) !== 0) {
    const err = errno();
    let holder = '';
    try {
      holder = fs.readFileSync(file, 'utf8').trim();
    } catch {
      // Unreadable: say less.
    }
    fs.closeSync(fd);
    if (err === Errno.EWOULDBLOCK) {
      throw new ApolloError(
        'conflict',
        `another devapollo daemon is already serving ${path.dirname(file)}${holder ? ` (pid ${holder})` : ''}`,
      );
    }
    throw new ApolloError('internal', `cannot lock ${file} (errno ${err})`);
  }
  fs.ftruncateSync(fd);
  fs.writeSync(fd, `${process.pid}\n`, 0);
  return fd;
}

/**
 * The modes of PROTOCOL.md section 1, set on every start (whatever an earlier version or
 * a hand left): DIR 0711, so that an unprivileged runtime (LXC with lxc.idmap, whose
 * root is a mapped uid) can pass through it to bind-mount DIR/devapollo, but nobody can
 * list it; everything secret below it closed on its own (0700 directories, a 0600 lock,
 * 0600 state files); only DIR/devapollo (0755) and its socket (0666) open to all.
 */
export function layOutDir(paths: DaemonPaths, lockFd: number): void {
  fs.chmodSync(paths.dir, 0o711);
  fs.fchmodSync(lockFd, 0o600);
  // DIR/devapollo is bind-mounted into running containers: fix its mode, never replace it.
  fs.mkdirSync(paths.guestDir, { recursive: true, mode: 0o755 });
  fs.chmodSync(paths.guestDir, 0o755);
  for (const dir of [paths.containersDir, paths.logsDir, paths.stageDir]) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    fs.chmodSync(dir, 0o700);
  }
}
