/**
 * Refusing a guest peer: counted in metrics and logged through a rate-limited log, and the
 * answers that can come in floods, each made once (no envelope, header object or error
 * built per refusal).
 */
import { ApolloError } from '../../shared/errors.js';
import { type FixedReply, fixedError, rawResponse } from '../http/reply.js';
import { RateLimitedLog } from '../log.js';
import type { RequestObserver } from '../metrics.js';
import type { GuestPeer } from './connection.js';

const retryAfterOne = { 'Retry-After': '1' } as const;

export const atDaemonLimit = rawResponse(
  fixedError(new ApolloError('unavailable', 'the daemon is at its connection limit; try again', { headers: retryAfterOne })),
);
export const atConnectionLimit = rawResponse(
  fixedError(new ApolloError('too-many-requests', 'too many open connections from this container', { headers: retryAfterOne })),
);
export const notServed = 'Forbidden: this process is not in a running container served by devapollo';

/** 429s by Retry-After, made once; the closing kind also ends its connection once sent. */
const tooManyRequests: FixedReply[] = [];
const tooManyRequestsClosing: FixedReply[] = [];

/** The 429 of a request over its container's rate, told to retry after `seconds`. */
export function tooManyRequestsFor(seconds: number, closing: boolean): FixedReply {
  const cache = closing ? tooManyRequestsClosing : tooManyRequests;
  let reply = cache[seconds];
  if (reply === undefined) {
    const headers: Record<string, string> = { 'Retry-After': String(seconds) };
    // node:http honours it: the answer says so, and the socket is closed once it is sent.
    if (closing) headers['Connection'] = 'close';
    reply = fixedError(new ApolloError('too-many-requests', 'too many requests from this container', { headers }));
    if (seconds < 3600) cache[seconds] = reply;
  }
  return reply;
}

/** Counts and logs refusals of guest peers. */
export class GuestRefusals {
  private readonly log = new RateLimitedLog();

  constructor(private readonly observer: RequestObserver) {}

  refuse(peer: GuestPeer, reason: string): void {
    this.observer.metrics.countRefusal(reason);
    const suppressed = this.log.take();
    if (suppressed < 0) return;
    this.observer.logger.warn('refused guest peer', {
      pid: peer.credentials.pid,
      uid: peer.credentials.uid,
      reason,
      container: peer.instance?.container.name,
      suppressed: suppressed || undefined,
    });
  }
}
