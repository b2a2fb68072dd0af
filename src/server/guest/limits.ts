/**
 * Per-container limits on the guest socket: open connections, change-waits and a request
 * rate. Every container has its own share, so a boot storm of many containers trips
 * nothing and a container at its limits slows nobody else; processes in no served
 * container share one bucket of their own.
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

/**
 * The Retry-After of a refusal whose next token comes in `waitMs`: whole seconds, at least
 * one. The refused container is not read for that long either (see `Throttle`).
 */
export function retryAfterSeconds(waitMs: number): number {
  return Math.max(1, Math.ceil(waitMs / 1000));
}

/**
 * While a container is over its request rate, none of its connections is read: the one
 * refused, the others as they are next refused, and new ones as they are accepted. Its
 * flood then costs the daemon one read's worth of cheap refusals per connection and
 * Retry-After, not a refusal for every request it can write: a container that floods
 * cannot take more than its share of the daemon. One timer per container, for the
 * Retry-After the refused request was told; then every held item is handed to `release`.
 */
export class Throttle<T> {
  /** Whether the container's connections are being held (read on every request: a field). */
  blocked = false;
  private readonly held = new Set<T>();

  constructor(private readonly release: (held: readonly T[]) => void) {}

  /** Holds the container's connections for `ms` (a block under way is not extended). */
  block(ms: number): void {
    if (this.blocked) return;
    this.blocked = true;
    setTimeout(() => this.lift(), ms).unref();
  }

  /** `item` is released when the block ends. */
  hold(item: T): void {
    this.held.add(item);
  }

  /** `item` is gone (its connection closed). */
  forget(item: T): void {
    this.held.delete(item);
  }

  get size(): number {
    return this.held.size;
  }

  private lift(): void {
    this.blocked = false;
    const held = [...this.held];
    this.held.clear();
    this.release(held);
  }
}

/** What one container (or the group of unserved peers) may use. */
export interface Share<T> {
  connections: number;
  /** Change-waits pending. */
  waits: number;
  readonly requests: TokenBucket;
  readonly throttle: Throttle<T>;
}

export class Shares<T> {
  private readonly byContainer = new WeakMap<Container, Share<T>>();
  /** Peers in no served container: host processes, unmanaged namespaces. */
  private readonly nobody: Share<T>;

  constructor(
    private readonly limit: RateLimit,
    private readonly release: (held: readonly T[]) => void,
    /** The buckets' clock, in milliseconds (performance.now unless given). */
    private readonly now?: () => number,
  ) {
    this.nobody = this.create();
  }

  of(container: Container | undefined): Share<T> {
    if (container === undefined) return this.nobody;
    let share = this.byContainer.get(container);
    if (share === undefined) {
      share = this.create();
      this.byContainer.set(container, share);
    }
    return share;
  }

  private create(): Share<T> {
    return { connections: 0, waits: 0, requests: new TokenBucket(this.limit, this.now), throttle: new Throttle(this.release) };
  }
}

/**
 * A token bucket per container for one kind of request, apart from its request rate
 * (the guest's writes of guest.* keys, PROTOCOL.md section 3a; identity tokens, 3b): a container that writes
 * at its limit can still read at its full rate, and nobody else's bucket is touched.
 */
export class ContainerBuckets {
  private readonly byContainer = new WeakMap<Container, TokenBucket>();

  constructor(
    readonly limit: RateLimit,
    /** The buckets' clock, in milliseconds (performance.now unless given). */
    private readonly now?: () => number,
  ) {}

  of(container: Container): TokenBucket {
    let bucket = this.byContainer.get(container);
    if (bucket === undefined) {
      bucket = new TokenBucket(this.limit, this.now);
      this.byContainer.set(container, bucket);
    }
    return bucket;
  }
}
