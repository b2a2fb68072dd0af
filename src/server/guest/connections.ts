/**
 * Accepting guest connections: each is bound to one container instance, once, from the
 * kernel's peer credentials, synchronously at accept, before a byte of its request is
 * parsed (PROTOCOL.md section 2); then counted against its container's and the daemon's
 * connection caps. Over a cap it is answered at once, with the JSON envelope, and closed
 * soon after (reply.ts endAndClose), without taking a place: neither a connection that
 * never sends a request (slow-loris) nor one that never closes its side may hold one.
 */
import type { Socket } from 'node:net';
import type { Instance } from '../containers/container.js';
import { endAndClose, endWithError } from '../http/reply.js';
import { stopReading } from '../http/socket-reading.js';
import { type KernelFeatures, processKernelFeatures } from '../kernel/features.js';
import { KnownProcesses, resolvePeer, unreadablePeerError } from '../kernel/peer.js';
import { socketDescriptor } from '../kernel/socket-descriptor.js';
import { RateLimitedLog } from '../log.js';
import type { RequestObserver } from '../metrics.js';
import type { Admission } from './admission.js';
import { attachPeer, type GuestPeer, newPeer, recordOf } from './connection.js';
import { type ReadingHolds, throttled } from './reading-holds.js';
import { atConnectionLimit, atDaemonLimit, type GuestRefusals } from './refusals.js';
import { SlotList } from './slot-list.js';

export interface ConnectionCaps {
  /** Open connections per container (and for all unserved peers together). */
  readonly maxConnectionsPerContainer: number;
  /** Open connections in all. */
  readonly maxConnections: number;
}

export class GuestConnections {
  /** The accepted connections that may be served, for the idle sweep and shutdown. */
  readonly served = new SlotList<GuestPeer>();
  /** Open connections that were let in (refused ones are not counted: see accept). */
  open = 0;
  private readonly knownProcesses = new KnownProcesses();
  private readonly unreadable = new RateLimitedLog();
  /** One shared 'close' listener, not a closure (and a once-wrapper) per connection. */
  private readonly onClose: (this: Socket) => void;

  constructor(
    private readonly caps: ConnectionCaps,
    private readonly lookupInstance: (namespaceKey: bigint) => Instance | undefined,
    private readonly admission: Admission,
    private readonly holds: ReadingHolds,
    private readonly refusals: GuestRefusals,
    private readonly observer: RequestObserver,
    /** The daemon's kernel features, detected at start. */
    private readonly kernel: KernelFeatures = processKernelFeatures(),
  ) {
    const connections = this;
    this.onClose = function (this: Socket): void {
      connections.closed(this);
    };
  }

  /** The server's 'connection' listener. */
  accept(socket: Socket): void {
    const { logger } = this.observer;
    const fd = socketDescriptor(socket);
    if (fd === undefined) {
      logger.error('accepted a guest connection without a descriptor');
      socket.destroy();
      return;
    }
    let resolved: ReturnType<typeof resolvePeer<Instance>>;
    try {
      resolved = resolvePeer(fd, this.lookupInstance, this.knownProcesses, this.kernel);
    } catch (error) {
      // The daemon cannot tell who this is right now (most likely out of descriptors): a
      // 503 to retry, never a 403 that would tell a container it is not served.
      const answer = unreadablePeerError(error);
      this.observer.metrics.countRefusal(answer.code === 'unavailable' ? 'out of descriptors' : 'identity unreadable');
      this.unreadable.attempt((suppressed) =>
        logger.error("cannot read a guest peer's identity", { error: String(error), suppressed: suppressed || undefined }),
      );
      // Still read, so that its peer's close is seen and frees the descriptor at once (a
      // socket closed with unread bytes resets its peer, who may lose the answer); what the
      // peer sends gets no answer after this one.
      endWithError(socket, answer);
      return;
    }
    const { credentials, match } = resolved;
    const share = this.admission.shareOf(match?.container);
    // A refused connection takes no place: counted, it would let one container's flood of
    // refused connections fill the daemon's cap for every other container.
    const refusal =
      this.open >= this.caps.maxConnections
        ? atDaemonLimit
        : share.connections >= this.caps.maxConnectionsPerContainer
          ? atConnectionLimit
          : undefined;
    const peer = newPeer(socket, fd, credentials, match, share, refusal !== undefined);
    attachPeer(socket, peer);
    if (refusal !== undefined) {
      this.refusals.refuse(peer, 'connection limit');
      // Nothing it sends is read, so nothing is parsed (socket.pause() would not hold
      // node:http's reading: socket-reading.ts), and it is closed soon after the answer,
      // whether or not its peer reads it or closes its side.
      stopReading(socket);
      endAndClose(socket, refusal);
      return;
    }
    share.connections++;
    this.open++;
    socket.on('close', this.onClose);
    this.served.add(peer);
    if (match === undefined) this.refusals.refuse(peer, 'not in a running container');
    // A new connection of a container over its rate is not read until the block ends.
    else if (share.throttle.blocked) this.holds.hold(peer, throttled);
  }

  /** Closes every connection (shutdown). */
  destroyAll(): void {
    this.served.forEach((peer) => {
      peer.socket.destroy();
    });
  }

  /** Forgets the processes seen (the server has closed). */
  clear(): void {
    this.knownProcesses.clear();
  }

  /**
   * Forgets the processes of containers no longer running (with their kept pidfds): one
   * of an ended container never connects again. Called once a turn after containers stop.
   */
  forgetEnded(): void {
    this.knownProcesses.forgetUnless((namespace) => this.lookupInstance(namespace) !== undefined);
  }

  /** Processes remembered (status `internals`). */
  get knownProcessCount(): number {
    return this.knownProcesses.size;
  }

  private closed(socket: Socket): void {
    const peer = recordOf(socket);
    if (peer === undefined) return;
    peer.share.connections--;
    this.open--;
    this.served.delete(peer);
    // Whatever was queued goes with the connection: nothing of it is kept.
    peer.queue = undefined;
    this.holds.closed(peer);
    peer.share.throttle.forget(peer);
  }
}
