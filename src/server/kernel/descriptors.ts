/**
 * Descriptors the daemon inherited without close-on-exec (a shell's redirection, a
 * supervisor that leaks one) would pass to every process it starts, and so to every
 * container's init, whose root may take them with pidfd_getfd. All of them are marked
 * close-on-exec at start: they stay open (the socket-activation ones, LISTEN_FDS, are
 * used), but nothing the daemon starts gets them. (The launcher and the exec helper
 * close every descriptor they do not use as well, whoever started them.)
 */
import fs from 'node:fs';
import { fcntlValue } from './libc.js';

const F_GETFD = 1;
const F_SETFD = 2;
const FD_CLOEXEC = 1;

/** Marks every descriptor above 2 close-on-exec; returns those that were not. */
export function closeInheritedOnExec(): number[] {
  const marked: number[] = [];
  for (const entry of fs.readdirSync('/proc/self/fd')) {
    const fd = Number(entry);
    if (!(fd > 2)) continue;
    // The directory's own descriptor is closed by now: EBADF, skipped.
    const flags = fcntlValue(fd, F_GETFD, 0);
    if (flags < 0 || (flags & FD_CLOEXEC) !== 0) continue;
    if (fcntlValue(fd, F_SETFD, flags | FD_CLOEXEC) === 0) marked.push(fd);
  }
  return marked;
}
