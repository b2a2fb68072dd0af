/**
 * How the daemon's two sockets come to listen: bound by the daemon itself with their
 * final modes, or handed over by a service manager (systemd socket activation).
 */
import fs from 'node:fs';
import type http from 'node:http';
import { ApolloError } from '../shared/errors.js';
import { listenOn } from './guest/listen.js';
import { boundPath } from './kernel/socket-path.js';

/**
 * Binds a Unix socket with its final mode from the first instant (umask around bind), so
 * no client ever sees it with the wrong permissions. A socket file already there is a
 * crashed daemon's (the caller holds DIR's lock): it is removed.
 */
export async function listenSocket(server: http.Server, file: string, mode: number, gid?: number): Promise<void> {
  fs.rmSync(file, { force: true });
  const previous = process.umask(0o777 & ~mode);
  try {
    await listenOn(server, { path: file });
  } finally {
    process.umask(previous);
  }
  fs.chmodSync(file, mode);
  if (gid !== undefined) fs.chownSync(file, 0, gid);
}

/**
 * The listening sockets a service manager passed (systemd socket activation: fds from 3,
 * LISTEN_FDS of them, for this pid, named by LISTEN_FDNAMES "guest" and "admin"), or
 * undefined when started without them. The variables are removed so that no child sees them.
 */
export function inheritedSockets(env: NodeJS.ProcessEnv = process.env): { guest: number; admin: number } | undefined {
  if (env['LISTEN_PID'] !== String(process.pid) || env['LISTEN_FDS'] === undefined) return undefined;
  const count = Number(env['LISTEN_FDS']);
  const names = (env['LISTEN_FDNAMES'] ?? '').split(':');
  for (const name of ['LISTEN_PID', 'LISTEN_FDS', 'LISTEN_FDNAMES']) delete env[name];
  const fds = new Map<string, number>();
  for (let i = 0; i < count; i++) fds.set(names[i] ?? '', 3 + i);
  const guest = fds.get('guest');
  const admin = fds.get('admin');
  if (guest === undefined || admin === undefined) {
    throw new ApolloError(
      'usage',
      `socket activation needs two sockets named "guest" and "admin" (FileDescriptorName=); got ${count} named ${JSON.stringify(names.join(':'))}`,
    );
  }
  return { guest, admin };
}

/** Listens on an inherited descriptor, after checking it is the socket at `expected`. */
export async function listenInherited(server: http.Server, fd: number, expected: string): Promise<void> {
  const address = boundPath(fd);
  if (address !== expected) {
    throw new ApolloError(
      'usage',
      `the inherited socket on fd ${fd} is ${JSON.stringify(address ?? null)}, expected ${expected} (check --dir)`,
    );
  }
  await listenOn(server, { fd });
}

export function closeServer(server: http.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}
