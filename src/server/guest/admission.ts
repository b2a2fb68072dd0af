/**
 * Admission of guest requests: each container's request rate, checked once per request
 * before anything else. Over it, the request gets a refusal made once, and none of the
 * container's connections is read until its Retry-After (see Throttle); what they had
 * sent already is answered as the bucket allows. The refusal path builds nothing and logs
 * only through the rate-limited log.
 */
import type { Socket } from 'node:net';
import { ApolloError } from '../../shared/errors.js';
import type { Container } from '../containers/container.js';
import type { FixedReply } from '../http/reply.js';
import { type GuestPeer, peerOf } from './connection.js';
import { type RateLimit, retryAfterSeconds, type Share, Shares } from './limits.js';
import { type ReadingHolds, throttled } from './reading-holds.js';
import { type GuestRefusals, notServed, tooManyRequestsFor } from './refusals.js';

export class Admission {
  private readonly shares: Shares<GuestPeer>;

  constructor(
    rate: RateLimit,
    private readonly holds: ReadingHolds,
    private readonly refusals: GuestRefusals,
    /** The clock of the containers' token buckets (milliseconds); tests give their own. */
    now?: () => number,
  ) {
    // The end of a container's block: its connections are read again.
    this.shares = new Shares<GuestPeer>(
      rate,
      (held) => {
        for (const peer of held) {
          peer.refusedInBlock = false;
          // One that has answered its last is never read again (what it sent would only be parsed).
          if (peer.closing) peer.share.throttle.hold(peer);
          else if (!peer.socket.destroyed) holds.unhold(peer, throttled);
        }
      },
      now,
    );
  }

  /** What a container's connections count against (one share for peers in no container). */
  shareOf(container: Container | undefined): Share<GuestPeer> {
    return this.shares.of(container);
  }

  /** A refusal to send as it is, or undefined when the request may go on; 403 for an unserved peer. */
  admit(socket: Socket): FixedReply | undefined {
    const peer = peerOf(socket);
    if (peer === undefined) throw new ApolloError('forbidden', notServed);
    const waitMs = peer.share.requests.take();
    if (waitMs === 0) return undefined;
    const seconds = retryAfterSeconds(waitMs);
    this.refusals.refuse(peer, 'request rate limit');
    peer.share.throttle.block(seconds * 1000);
    if (!peer.refusedInBlock) {
      peer.refusedInBlock = true;
      this.holds.hold(peer, throttled);
      return tooManyRequestsFor(seconds, false);
    }
    // Refused already in this block, and still sending: it pipelines past its refusals.
    // This answer closes the connection once it is sent (after every answer before it),
    // and what it sent after it is not answered: its flood costs a parse, not an answer.
    peer.closing = true;
    peer.queue ??= [];
    return tooManyRequestsFor(seconds, true);
  }
}
