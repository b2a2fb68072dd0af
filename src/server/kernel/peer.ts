/**
 * Who is on the other end of an accepted Unix socket, from the kernel's peer credentials.
 *
 * The credentials are those of the process that called connect(), captured by the kernel
 * at that moment: renaming, forking or handing the socket to another process later
 * changes nothing. SO_PEERPIDFD (Linux 6.5+) also pins that process, so the pid namespace
 * read through it is the connecting process's own even if its pid is recycled meanwhile.
 * Without SO_PEERPIDFD the pid is opened as a pidfd at once; that leaves a window in which
 * a recycled pid could be read, which only pre-6.5 kernels have.
 */
import { ApolloError } from '../../shared/errors.js';
import { type KernelFeatures, processKernelFeatures, SO_PEERPIDFD, SOL_SOCKET } from './features.js';
import { errno, getsockopt, OutOfDescriptors, throwIfOutOfDescriptors } from './libc.js';
import { maxPidNamespaceDepth, namespaceKey, parentNamespace, pidNamespaceOfPidfd } from './namespaces.js';
import { closeFd, openPidfd, pidfdIsAlive, processIdOfPidfd } from './pidfd.js';

const SO_PEERCRED = 17;

export interface PeerCredentials {
  readonly pid: number;
  readonly uid: number;
  readonly gid: number;
}

const credBuffer = Buffer.alloc(12);
const credLength = new Uint32Array(1);
const pidfdBuffer = Buffer.alloc(4);
const pidfdLength = new Uint32Array(1);

/** SO_PEERCRED of a connected socket; throws when the descriptor is not a Unix socket. */
export function readPeerCredentials(fd: number): PeerCredentials {
  credLength[0] = 12;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, credBuffer, credLength) !== 0) {
    throw new Error(`getsockopt(SO_PEERCRED) failed with errno ${errno()}`);
  }
  return { pid: credBuffer.readInt32LE(0), uid: credBuffer.readUInt32LE(4), gid: credBuffer.readUInt32LE(8) };
}

/** A pidfd for the peer, or -1 when it has exited; OutOfDescriptors when none can be had. */
function peerPidfd(fd: number, pid: number, kernel: KernelFeatures): number {
  if (kernel.peerPidfd) {
    pidfdLength[0] = 4;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, pidfdBuffer, pidfdLength) === 0) return pidfdBuffer.readInt32LE(0);
    throwIfOutOfDescriptors(errno(), "the peer's pidfd");
    return -1;
  }
  if (pid <= 0) return -1;
  const opened = openPidfd(pid);
  throwIfOutOfDescriptors(opened.errno, "the peer's pidfd");
  return opened.fd;
}

/**
 * The pid namespace of processes that have connected before, by process id (the pidfs
 * inode number, never reused while the machine runs): a process never changes its own
 * pid namespace, so the pair can never go stale, and a process that connects again (an
 * agent, cloud-init: a new connection per request) costs three system calls fewer. Only
 * the namespace is remembered: which container it belongs to is looked up afresh for
 * every connection. Holds up to `capacity` processes; the one remembered first goes first.
 *
 * With each process it keeps the pidfd it was first seen through, open: while a pidfd of
 * a process is open, the kernel keeps that process's pidfs inode, so the pidfd of its
 * next connection is a new file on it, instead of a new inode made and freed again at
 * close (SO_PEERPIDFD, fstat and close: about 5 µs a connection without, 3 µs with,
 * measured here). A kept pidfd names the process only; it is never asked anything.
 * They are the first descriptors to give up when descriptors run short (`clear`).
 */
export class KnownProcesses {
  private readonly entries = new Map<bigint, { readonly namespace: bigint; readonly pidfd: number }>();

  constructor(private readonly capacity = 1024) {}

  namespaceOf(processId: bigint): bigint | undefined {
    return this.entries.get(processId)?.namespace;
  }

  /** Remembers a process; `pidfd` (one of that process, or -1) is its to close from now on. */
  remember(processId: bigint, namespace: bigint, pidfd = -1): void {
    const previous = this.entries.get(processId);
    if (previous !== undefined) {
      this.entries.delete(processId);
      closeFd(previous.pidfd);
    } else if (this.entries.size >= this.capacity) {
      const oldest = this.entries.entries().next();
      if (oldest.done !== true) {
        this.entries.delete(oldest.value[0]);
        closeFd(oldest.value[1].pidfd);
      }
    }
    this.entries.set(processId, { namespace, pidfd });
  }

  /**
   * Forgets the processes whose pid namespace `keep` no longer wants (their container has
   * stopped or gone) and closes their pidfds: a process of an ended container never
   * connects again, and left here it would hold its entry and a descriptor until 1,024
   * newer processes pushed it out. How many were forgotten.
   */
  forgetUnless(keep: (namespace: bigint) => boolean): number {
    let forgotten = 0;
    for (const [processId, { namespace, pidfd }] of this.entries) {
      if (keep(namespace)) continue;
      this.entries.delete(processId);
      closeFd(pidfd);
      forgotten++;
    }
    return forgotten;
  }

  /** Forgets every process and closes the pidfds kept for them; how many were forgotten. */
  clear(): number {
    const forgotten = this.entries.size;
    for (const { pidfd } of this.entries.values()) closeFd(pidfd);
    this.entries.clear();
    return forgotten;
  }

  get size(): number {
    return this.entries.size;
  }
}

/**
 * Resolves the peer of a connected socket to whatever `lookup` maps its pid namespace, or
 * the nearest ancestor namespace, to. Namespaces nested inside a container belong to it.
 * The walk stops at the daemon's own namespace (the kernel will not go higher), so a host
 * process resolves to nothing. The cost is bounded by the nesting depth, never by the
 * number of containers. Throws OutOfDescriptors when the daemon cannot open the
 * descriptors the lookup needs: then the peer is unknown, not nobody. With `known`, a
 * process seen before skips reading its namespace from the kernel again, and a lookup
 * short of descriptors closes the pidfds `known` keeps and is made once more without it.
 * `kernel` says which features to use (the daemon's, detected at start).
 */
export function resolvePeer<T>(
  fd: number,
  lookup: (namespaceKey: bigint) => T | undefined,
  known?: KnownProcesses,
  kernel: KernelFeatures = processKernelFeatures(),
): { credentials: PeerCredentials; match: T | undefined; alive: boolean } {
  try {
    return resolveOnce(fd, lookup, known, kernel);
  } catch (error) {
    // The pidfds kept for known processes go first: a connection is never refused for
    // want of a descriptor one of them holds.
    if (!(error instanceof OutOfDescriptors) || known === undefined || known.clear() === 0) throw error;
    return resolveOnce(fd, lookup, undefined, kernel);
  }
}

function resolveOnce<T>(
  fd: number,
  lookup: (namespaceKey: bigint) => T | undefined,
  known: KnownProcesses | undefined,
  kernel: KernelFeatures,
): { credentials: PeerCredentials; match: T | undefined; alive: boolean } {
  const credentials = readPeerCredentials(fd);
  let pidfd = peerPidfd(fd, credentials.pid, kernel);
  if (pidfd < 0) return { credentials, match: undefined, alive: false };
  let nsfd = -1;
  try {
    // Only a pidfd from SO_PEERPIDFD names the process that connected for certain.
    const processId = known !== undefined && kernel.peerPidfd ? processIdOfPidfd(pidfd) : undefined;
    const knownNamespace = processId === undefined ? undefined : known?.namespaceOf(processId);
    if (knownNamespace !== undefined) {
      const match = lookup(knownNamespace);
      if (match !== undefined) {
        // The same rule as below: a peer that has exited (a zombie included) is nobody.
        if (!pidfdIsAlive(pidfd)) return { credentials, match: undefined, alive: false };
        return { credentials, match, alive: true };
      }
    }
    nsfd = pidNamespaceOfPidfd(pidfd, credentials.pid, pidfdIsAlive, kernel);
    if (nsfd < 0) return { credentials, match: undefined, alive: false };
    // A peer that has exited by now (a zombie included) is nobody: the kernel answers
    // PIDFD_GET_PID_NAMESPACE with ESRCH for it, and the /proc fallback checks the pidfd
    // after opening the namespace. No second check follows: the peer may exit at any
    // moment after this one too, and its connection still belongs to where it connected.
    for (let depth = 0; depth < maxPidNamespaceDepth; depth++) {
      const key = namespaceKey(nsfd, kernel);
      if (depth === 0 && processId !== undefined && knownNamespace === undefined && known !== undefined) {
        // The pidfd is the memo's from here on (kept open, see KnownProcesses).
        known.remember(processId, key, pidfd);
        pidfd = -1;
      }
      const match = lookup(key);
      if (match !== undefined) return { credentials, match, alive: true };
      const parent = parentNamespace(nsfd);
      closeFd(nsfd);
      nsfd = parent;
      if (nsfd < 0) break;
    }
    return { credentials, match: undefined, alive: true };
  } finally {
    closeFd(nsfd);
    closeFd(pidfd);
  }
}

/**
 * The answer for a connection whose peer could not be read (what resolvePeer threw): out
 * of descriptors is a 503 to retry, anything else a 500. Never a 403: the peer is
 * unknown, not nobody.
 */
export function unreadablePeerError(error: unknown): ApolloError {
  return error instanceof OutOfDescriptors
    ? new ApolloError('unavailable', 'the daemon is out of file descriptors; try again', { headers: { 'Retry-After': '1' } })
    : new ApolloError('internal', 'the daemon cannot read the peer credentials of this connection', { cause: error });
}

/** Whether SO_PEERPIDFD gives a pidfd on this connected socket (the start-up probe checks what was detected). */
export function peerPidfdWorks(fd: number): boolean {
  pidfdLength[0] = 4;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, pidfdBuffer, pidfdLength) !== 0) return false;
  closeFd(pidfdBuffer.readInt32LE(0));
  return true;
}
