/**
 * Why a guest connection's socket is not being read (bits of `GuestPeer.holds`): a request
 * being answered ahead of what it sent (`queued`), or its container over its rate
 * (`throttled`). The socket is read again once no hold is left.
 */
import { startReading, stopReading } from '../http/socket-reading.js';
import type { GuestPeer } from './connection.js';

export const queued = 1;
export const throttled = 2;

export class ReadingHolds {
  /** Connections not being read right now. */
  paused = 0;

  /** Stops reading the connection's socket, for `why` (a hold bit). */
  hold(peer: GuestPeer, why: number): void {
    if (why === throttled) peer.share.throttle.hold(peer);
    if (peer.holds === 0) {
      stopReading(peer.socket);
      this.paused++;
    }
    peer.holds |= why;
  }

  /** Lifts a hold; the socket is read again once none is left. */
  unhold(peer: GuestPeer, why: number): void {
    if ((peer.holds & why) === 0) return;
    peer.holds &= ~why;
    if (peer.holds === 0) {
      this.paused--;
      startReading(peer.socket);
    }
  }

  /** The connection has closed: whatever held it goes with it. */
  closed(peer: GuestPeer): void {
    if (peer.holds !== 0) {
      peer.holds = 0;
      this.paused--;
    }
  }
}
