/**
 * Per-container limits on the guest socket: open connections and a request rate. Every
 * container has its own share, so a boot storm of many containers trips nothing and a
 * container at its limits slows nobody else; processes in no served container share one
 * bucket of their own.
 */
import type { Container } from '../containers/container.js';

export interface RateLimit {
  /** Sustained requests per second; 0 turns the limit off. */
  readonly perSecond: number;
  readonly burst: number;
}

/** A token bucket, refilled continuously. */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly limit: RateLimit,
    private readonly now: () => number = performance.now.bind(performance),
  ) {
    this.tokens = limit.burst;
    this.last = this.now();
  }

  /** Takes a token: 0 when granted, else the milliseconds until one will be there. */
  take(): number {
    if (this.limit.perSecond <= 0) return 0;
    const now = this.now();
    this.tokens = Math.min(this.limit.burst, this.tokens + ((now - this.last) * this.limit.perSecond) / 1000);
    this.last = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - this.tokens) * 1000) / this.limit.perSecond);
  }
}

/** What one container (or the group of unserved peers) may use. */
export interface Share {
  connections: number;
  readonly requests: TokenBucket;
}

export class Shares {
  private readonly byContainer = new WeakMap<Container, Share>();
  /** Peers in no served container: host processes, unmanaged namespaces. */
  private readonly nobody: Share;

  constructor(private readonly limit: RateLimit) {
    this.nobody = { connections: 0, requests: new TokenBucket(limit) };
  }

  of(container: Container | undefined): Share {
    if (container === undefined) return this.nobody;
    let share = this.byContainer.get(container);
    if (share === undefined) {
      share = { connections: 0, requests: new TokenBucket(this.limit) };
      this.byContainer.set(container, share);
    }
    return share;
  }
}
