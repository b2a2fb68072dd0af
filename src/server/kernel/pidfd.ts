/**
 * Processes by pidfd, never by pid: a pidfd names one process for its whole life, so a
 * recycled pid can never be mistaken for it (and never gets its signals).
 */
import { constants } from 'node:os';
import { close, errno, pidfdOpen, pidfdSendSignal, poll } from './libc.js';

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

/** Sends a signal by pidfd; false when the process is gone. */
export function signalPidfd(pidfd: number, signal: NodeJS.Signals | 0): boolean {
  const number = signal === 0 ? 0 : constants.signals[signal];
  return pidfdSendSignal(pidfd, number) === 0;
}

export function closeFd(fd: number): void {
  if (fd >= 0) close(fd);
}
