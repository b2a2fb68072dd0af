/**
 * Stopping and restarting the reading of a socket that node:http serves, for the guest
 * server's holds (a request pipelined behind a pending one, a container over its rate).
 *
 * `socket.pause()` does not hold such a socket: node:http reads it through its native
 * parser and restarts reading on every 'resume' event, and the stream machinery emits
 * one a tick after any earlier `resume()` (one is always pending for a socket just
 * accepted), whatever was called since. So the socket's handle is stopped itself, and its
 * `reading` flag is left set, which is what tells node:http that there is nothing to
 * restart. node:http's own hold (its `_paused`, while the peer does not read its answers)
 * is left to it: a socket it holds is handed back to it, and it restarts it when it wants.
 */
import type { Socket } from 'node:net';

interface StreamHandle {
  reading?: boolean;
  readStart(): number;
  readStop(): number;
}

type ServedSocket = Socket & { _handle?: StreamHandle | null; _paused?: boolean };

export function stopReading(socket: Socket): void {
  const handle = (socket as ServedSocket)._handle;
  if (handle === undefined || handle === null || socket.destroyed) return;
  handle.readStop();
  handle.reading = true;
}

export function startReading(socket: Socket): void {
  const served = socket as ServedSocket;
  const handle = served._handle;
  if (handle === undefined || handle === null || socket.destroyed) return;
  if (served._paused === true) {
    // node:http is holding it too: it starts it again itself once it sees reading stopped.
    handle.reading = false;
    return;
  }
  handle.readStart();
}
