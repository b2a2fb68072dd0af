/**
 * The descriptor behind an accepted net.Socket, for the system calls Node has no API for
 * (SO_PEERCRED, SO_PEERPIDFD). Node keeps it on the socket's private libuv handle; this is
 * the one place that reaches for it, so a Node that moves it breaks one function.
 */
import type { Socket } from 'node:net';

/** The socket's descriptor, or undefined when it has none (closed, or not fd-backed). */
export function socketDescriptor(socket: Socket): number | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: number } | null })._handle?.fd;
  return fd === undefined || fd < 0 ? undefined : fd;
}
