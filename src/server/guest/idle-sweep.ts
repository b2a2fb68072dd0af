/**
 * Closing idle guest connections. A kept-alive connection that has answered a request and
 * is idle (no request being answered, none answered since the last sweep) is closed once
 * it has been idle for the idle timeout, give or take one sweep interval. Event streams
 * and waits are requests still being answered: exempt. Until its first request is in, a
 * connection is under the header timeout instead (Node's connection check answers 408). A
 * connection the daemon is not reading would not notice its peer's close: it is asked (a
 * poll) at every sweep, and closed once the peer has hung up.
 *
 * One timer for every connection, instead of Node's keep-alive timer, which is set and
 * cleared again around every request (two timer-list updates).
 */
import { peerHungUp } from '../kernel/hangup.js';
import type { GuestPeer } from './connection.js';
import type { SlotList } from './slot-list.js';

/** Starts the sweep of `connections`; returns its stop. */
export function startIdleSweep(connections: SlotList<GuestPeer>, keepAliveTimeoutMs: number): () => void {
  const sweepMs = Math.min(1000, Math.max(50, keepAliveTimeoutMs / 4));
  const idleSweepsAllowed = Math.ceil(keepAliveTimeoutMs / sweepMs);
  const sweep = setInterval(() => {
    connections.forEach((peer) => {
      if (peer.holds !== 0) {
        // One that has answered its last had a sweep's time to send it.
        if (peerHungUp(peer.fd) || (peer.closing && ++peer.idleSweeps > 1)) peer.socket.destroy();
        else if (!peer.closing) peer.idleSweeps = 0;
        return;
      }
      if (peer.answered === 0) return;
      if (peer.busy > 0 || peer.answered !== peer.answeredAtSweep) {
        peer.answeredAtSweep = peer.answered;
        peer.idleSweeps = 0;
      } else if (++peer.idleSweeps >= idleSweepsAllowed) {
        peer.socket.destroy();
      }
    });
  }, sweepMs);
  sweep.unref();
  return () => clearInterval(sweep);
}
