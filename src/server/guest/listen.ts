/** Putting the guest server on its socket. */
import type http from 'node:http';

/**
 * Listens on a Unix socket path, or on an inherited listening descriptor; resolves once
 * listening. A path is bound with the kernel's usual backlog ceiling (somaxconn), not
 * Node's 511: thousands of containers booting at once connect at once, and a full backlog
 * refuses them (EAGAIN). An inherited socket keeps the backlog it was given.
 */
export function listenOn(server: http.Server, where: { path: string } | { fd: number }): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen('path' in where ? { path: where.path, backlog: 4096 } : { fd: where.fd }, () => {
      server.off('error', reject);
      resolve();
    });
  });
}
