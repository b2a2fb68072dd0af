/**
 * The caller's terminal in raw mode while `devapollo exec` relays a container's pty, as
 * cfmakeraw makes it (what `lxc exec` and ssh do): no echo, no line editing, no signals
 * from keys, no output processing. Every byte typed then reaches the container's pty,
 * whose own line discipline echoes it and turns Ctrl-C into SIGINT for the command, and
 * every byte the command writes reaches the screen as written. Node's setRawMode keeps
 * output processing on (ONLCR): "\r\n" from the pty would become "\r\r\n", and
 * full-screen programs that move the cursor with "\n" would be drawn wrong.
 */
import { cfmakeraw, tcgetattr, tcsetattr } from './libc.js';

const TCSADRAIN = 1;

/** Makes the terminal on `fd` raw; returns the function that restores it (idempotent), or undefined if `fd` is no terminal. */
export function makeRaw(fd: number): (() => void) | undefined {
  // struct termios is 60 bytes with glibc; a little more room costs nothing.
  const saved = Buffer.alloc(64);
  if (tcgetattr(fd, saved) !== 0) return undefined;
  const raw = Buffer.from(saved);
  cfmakeraw(raw);
  if (tcsetattr(fd, TCSADRAIN, raw) !== 0) return undefined;
  let restored = false;
  return () => {
    if (restored) return;
    restored = true;
    tcsetattr(fd, TCSADRAIN, saved);
  };
}
