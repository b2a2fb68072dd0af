/**
 * Processes by pidfd, never by pid: a pidfd names one process for its whole life, so a
 * recycled pid can never be mistaken for it (and never gets its signals).
 */
import { constants } from 'node:os';
import { close, errno, fstat, fstatfs, ioctlBuffer, pidfdOpen, pidfdSendSignal, poll } from './libc.js';

const POLLIN = 0x1;
const pollBuffer = Buffer.alloc(8);

/** A pidfd for `pid`, or -1 (with the errno) when no such process exists. */
export function openPidfd(pid: number): { fd: number; errno: number } {
  const fd = pidfdOpen(pid);
  return fd >= 0 ? { fd, errno: 0 } : { fd: -1, errno: errno() };
}

/** True while the process runs; a pidfd turns readable once its process has exited. */
export function pidfdIsAlive(pidfd: number): boolean {
  pollBuffer.writeInt32LE(pidfd, 0);
  pollBuffer.writeInt16LE(POLLIN, 4);
  pollBuffer.writeInt16LE(0, 6);
  const ready = poll(pollBuffer, 1, 0);
  return ready === 0;
}

const PID_FS_MAGIC = 0x50494446;
const statBuffer = Buffer.alloc(144);
const statfsBuffer = Buffer.alloc(120);
let processIdsWork: boolean | undefined;

/**
 * A number that names the process behind `pidfd` for as long as the machine runs, or
 * undefined where the kernel has none. On pidfs (Linux 6.9+) every process has its own
 * inode, numbered from a 64-bit counter that is never reused on 64-bit machines, and
 * fstat of any pidfd of the process gives it. Older kernels hand out pidfds that share
 * one anonymous inode: no number then.
 */
export function processIdOfPidfd(pidfd: number): bigint | undefined {
  if (processIdsWork === undefined) {
    processIdsWork =
      (process.arch === 'x64' || process.arch === 'arm64') &&
      fstat !== undefined &&
      fstatfs !== undefined &&
      fstatfs(pidfd, statfsBuffer) === 0 &&
      statfsBuffer.readBigInt64LE(0) === BigInt(PID_FS_MAGIC);
  }
  if (!processIdsWork || fstat === undefined || fstat(pidfd, statBuffer) !== 0) return undefined;
  return statBuffer.readBigUInt64LE(8);
}

/** Sends a signal by pidfd; false when the process is gone. */
export function signalPidfd(pidfd: number, signal: NodeJS.Signals | 0): boolean {
  const number = signal === 0 ? 0 : constants.signals[signal];
  return pidfdSendSignal(pidfd, number) === 0;
}

export function closeFd(fd: number): void {
  if (fd >= 0) close(fd);
}

/** PIDFD_GET_INFO (Linux 6.13): _IOWR(0xFF, 11, struct pidfd_info) with its 64-byte first version. */
const PIDFD_GET_INFO = 0xc040ff0b;
/** Asks for (and, in the answer, says there is) the exit status: Linux 6.15, once the process is reaped. */
const PIDFD_INFO_EXIT = 1n << 3n;
const pidfdInfo = Buffer.alloc(64);

/**
 * The waitpid status of the process behind `pidfd` once it has been reaped (by whichever
 * parent), or undefined where the kernel does not keep it (before 6.15) or not yet.
 */
export function reapedExitStatus(pidfd: number): number | undefined {
  pidfdInfo.fill(0);
  pidfdInfo.writeBigUInt64LE(PIDFD_INFO_EXIT, 0);
  if (ioctlBuffer(pidfd, PIDFD_GET_INFO, pidfdInfo) !== 0) return undefined;
  if ((pidfdInfo.readBigUInt64LE(0) & PIDFD_INFO_EXIT) === 0n) return undefined;
  return pidfdInfo.readInt32LE(60);
}
