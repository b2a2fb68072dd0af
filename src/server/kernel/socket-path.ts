/**
 * The path a Unix socket descriptor is bound to. Node does not say for a server it did
 * not bind itself (an inherited descriptor), so getsockname is asked directly.
 */
import { getsockname } from './libc.js';

const AF_UNIX = 1;
const address = Buffer.alloc(110);

export function boundPath(fd: number): string | undefined {
  const length = Uint32Array.of(address.length);
  if (getsockname(fd, address, length) !== 0 || address.readUInt16LE(0) !== AF_UNIX) return undefined;
  const path = address.subarray(2, length[0] ?? 0);
  const end = path.indexOf(0);
  return path.subarray(0, end === -1 ? path.length : end).toString('utf8');
}
