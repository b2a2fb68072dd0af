/**
 * Pid namespaces, named so that a dead namespace can never be confused with a new one.
 *
 * The kernel recycles namespace inode numbers once a namespace dies, so an inode number
 * alone could map a new, unrelated namespace to a stopped container. NS_GET_ID (Linux
 * 6.12+) gives a 64-bit id that is never reused while the machine runs; that id is the key.
 * Where the kernel lacks it, the inode number is the key and the registry pins the
 * namespace with an open descriptor while its container runs, so the inode cannot be
 * reused while it is mapped.
 */
import fs from 'node:fs';
import { type KernelFeatures, NS_GET_ID, PIDFD_GET_PID_NAMESPACE, processKernelFeatures } from './features.js';
import { close, Errno, errno, ioctlBuffer, ioctlValue, throwIfOutOfDescriptors } from './libc.js';

const NS_GET_PARENT = 0xb702;

/** Nesting limit of pid namespaces in Linux; bounds every walk up the tree. */
export const maxPidNamespaceDepth = 33;

const idBuffer = Buffer.alloc(8);

/**
 * The key of the namespace behind `nsfd`: its NS_GET_ID id where `kernel` has them
 * (never reused), else its inode number (the caller pins a mapped namespace open).
 */
export function namespaceKey(nsfd: number, kernel: KernelFeatures = processKernelFeatures()): bigint {
  if (!kernel.namespaceIds) return fs.fstatSync(nsfd, { bigint: true }).ino;
  if (ioctlBuffer(nsfd, NS_GET_ID, idBuffer) !== 0) throw new Error(`NS_GET_ID failed with errno ${errno()}`);
  return idBuffer.readBigUInt64LE(0);
}

/**
 * The parent of a pid namespace as a new descriptor, or -1 at the top of the tree the
 * caller can see (the kernel answers EPERM for the caller's own namespace); throws
 * OutOfDescriptors when the descriptor cannot be had.
 */
export function parentNamespace(nsfd: number): number {
  const parent = ioctlValue(nsfd, NS_GET_PARENT, 0);
  if (parent >= 0) return parent;
  throwIfOutOfDescriptors(errno(), 'a parent pid namespace');
  return -1;
}

/**
 * The pid namespace a pidfd's process lives in, as a new descriptor, or -1 when the
 * process has exited; OutOfDescriptors when the descriptor cannot be had. With
 * PIDFD_GET_PID_NAMESPACE (Linux 6.11+) there is no race. Before that, /proc/PID/ns/pid
 * is opened and the pidfd is checked afterwards: if the process still runs, the pid was
 * not recycled in between, so the namespace is the peer's.
 *
 * A process whose main thread has exited (pthread_exit in main) while other threads run
 * on is still a process of its container. What the kernel (6.18) answers for one, seen
 * from a connection one of its other threads made (test/reliability/identity-attacks):
 * SO_PEERCRED gives the thread-group id, the pid of the exited main thread; SO_PEERPIDFD
 * a pidfd of the thread group; a poll of that pidfd says it still runs (a pidfd turns
 * readable only once the whole thread group has exited); PIDFD_GET_PID_NAMESPACE fails
 * with ESRCH, because the exited main thread has dropped its namespaces (nsproxy). So
 * ESRCH from a pidfd that still polls alive means "main thread gone, process alive", and
 * the namespace is read from /proc as on older kernels: /proc/PID/ns/pid still answers
 * for the exited main thread (the pid namespace is that of its pid, which it keeps until
 * the last thread exits), and /proc/PID/task/TID/ns/pid for any live thread is the same
 * namespace (every thread of a process shares one). The pidfd is checked afterwards as
 * always, so a recycled pid is never read.
 */
export function pidNamespaceOfPidfd(
  pidfd: number,
  pid: number,
  isAlive: (pidfd: number) => boolean,
  kernel: KernelFeatures = processKernelFeatures(),
): number {
  if (!kernel.pidfdNamespace) return pidNamespaceFromProc(pidfd, pid, isAlive);
  const nsfd = ioctlValue(pidfd, PIDFD_GET_PID_NAMESPACE, 0);
  if (nsfd >= 0) return nsfd;
  const err = errno();
  if (err === Errno.ESRCH) return isAlive(pidfd) ? pidNamespaceFromProc(pidfd, pid, isAlive) : -1;
  throwIfOutOfDescriptors(err, "the peer's pid namespace");
  return -1;
}

/**
 * /proc/PID/ns/pid, else that of a thread of PID (/proc/PID/task/TID/ns/pid), as a new
 * descriptor; -1 when none opens or the pidfd says the process has exited by then.
 */
function pidNamespaceFromProc(pidfd: number, pid: number, isAlive: (pidfd: number) => boolean): number {
  let nsfd = openNamespaceFile(`/proc/${pid}/ns/pid`);
  if (nsfd < 0) {
    let threads: string[] = [];
    try {
      threads = fs.readdirSync(`/proc/${pid}/task`);
    } catch {
      // Gone.
    }
    // The kernel lists a process's threads under its own directory only.
    for (const tid of threads) {
      if (tid === String(pid)) continue;
      nsfd = openNamespaceFile(`/proc/${pid}/task/${tid}/ns/pid`);
      if (nsfd >= 0) break;
    }
  }
  if (nsfd >= 0 && !isAlive(pidfd)) {
    close(nsfd);
    return -1;
  }
  return nsfd;
}

function openNamespaceFile(file: string): number {
  try {
    return fs.openSync(file, 'r');
  } catch (error) {
    // Node's errno is the negated error number.
    throwIfOutOfDescriptors(-((error as NodeJS.ErrnoException).errno ?? 0), "the peer's pid namespace");
    return -1;
  }
}

/** Opens /proc/PID/ns/pid; the caller must make sure PID is the process it means. */
export function openPidNamespace(pid: number): number {
  return fs.openSync(`/proc/${pid}/ns/pid`, 'r');
}
