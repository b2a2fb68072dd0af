/**
 * Whether the peer of a connected socket has hung up, for a socket the daemon has stopped
 * reading. A socket that is not read never sees its end of file, so its close would go
 * unnoticed until reading resumes; poll() still reports it: POLLRDHUP once the peer has
 * shut down its sending side (or closed), POLLHUP once both directions are shut.
 */
import { poll } from './libc.js';

const POLLHUP = 0x10;
const POLLRDHUP = 0x2000;
const pollBuffer = Buffer.alloc(8);

export function peerHungUp(fd: number): boolean {
  pollBuffer.writeInt32LE(fd, 0);
  pollBuffer.writeInt16LE(POLLRDHUP, 4);
  pollBuffer.writeInt16LE(0, 6);
  if (poll(pollBuffer, 1, 0) <= 0) return false;
  return (pollBuffer.readInt16LE(6) & (POLLRDHUP | POLLHUP)) !== 0;
}
