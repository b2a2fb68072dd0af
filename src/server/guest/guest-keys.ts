/**
 * The rules of the keys a guest writes on its own container (`guest.*`, PROTOCOL.md
 * section 3a): which keys, whether its container lets it, how often, how many and how
 * large. A write is checked twice: before its body is read (`admit`: the key, the switch,
 * a token of the write rate, the declared Content-Length), so that a refusal costs no
 * buffering and a guest at its quota cannot make the daemon hold more; and inside the
 * record update with the exact bytes (`assertFits`), so that two writes at once cannot
 * both pass a quota.
 */
import { ApolloError } from '../../shared/errors.js';
import { assertConfigKey, guestKeyPrefix, isGuestWritableKey } from '../../shared/names.js';
import type { Container } from '../containers/container.js';
import type { ContainerRecord } from '../state/container-store.js';
import { ContainerBuckets, type RateLimit, retryAfterSeconds } from './limits.js';

/** How much a container's guest may write. */
export interface GuestKeyLimits {
  /** `guest.*` keys set on one container, whoever set them. */
  readonly maxKeys: number;
  /**
   * The bytes of all of one container's `guest.*` values together, as stored: a value's
   * size in its state file's JSON (`storedBytes`), so that values of control characters
   * (six bytes each once escaped) cannot make a record six times its quota, rewritten
   * and fsynced at every write.
   */
  readonly maxTotalBytes: number;
  /** One value's bytes: also the most of a write's body that is ever read. */
  readonly maxValueBytes: number;
  /** Writes (PUT and DELETE) per container (`serve --guest-write-rate`, `--guest-write-burst`). */
  readonly rate: RateLimit;
}

export const defaultGuestKeyLimits: GuestKeyLimits = {
  maxKeys: 128,
  maxTotalBytes: 1024 * 1024,
  maxValueBytes: 64 * 1024,
  rate: { perSecond: 16, burst: 64 },
};

/** `false` makes a container's guest keys read-only for its guest (default `true`). */
export const guestWritesKey = 'security.devapollo.guest-writes';

/** What a guest key's write changes: a value's bytes, or null to unset it. */
export type GuestWrite = {
  readonly key: string;
  /** The value's UTF-8 bytes (its Content-Length before it is read); null for an unset. */
  readonly bytes: number | null;
  /** Its bytes as stored (storedBytes), once it is read: what counts toward the total. */
  readonly stored?: number;
};

/** Each container's guest-write rate, and the quotas every write is checked against. */
export class GuestKeyRules {
  private readonly buckets: ContainerBuckets;

  constructor(
    readonly limits: GuestKeyLimits,
    /** The write buckets' clock, in milliseconds; tests give their own. */
    now?: () => number,
  ) {
    this.buckets = new ContainerBuckets(limits.rate, now);
  }

  /**
   * Checks a write before its body is read: 403 for a key outside `guest.` or a container
   * whose guest may not write, 429 (with Retry-After) over the write rate, 413 when the
   * declared body alone is over a limit, 400 for a key no key may be named. Takes a token
   * of the rate when it passes the 403s.
   */
  admit(container: Container, key: string, declaredBytes: number | undefined): void {
    assertWritable(container.record, key);
    assertConfigKey(key);
    this.takeWrite(container, 'writes of guest keys');
    if (declaredBytes === undefined) return;
    try {
      this.assertFits(container.record, { key, bytes: declaredBytes === 0 ? null : declaredBytes });
    } catch (error) {
      // The body is still unread: the answer closes the connection, so that it never is
      // (node:http would otherwise read a declared gigabyte to find the next request).
      if (error instanceof ApolloError) throw new ApolloError(error.code, error.message, { headers: { Connection: 'close' } });
      throw error;
    }
  }

  /**
   * Takes one token of the container's write rate, or refuses with 429 and Retry-After:
   * every request that can rewrite its state file (a guest key, PATCH /1.0) pays one.
   */
  takeWrite(container: Container, what: string): void {
    const waitMs = this.buckets.of(container).take();
    if (waitMs <= 0) return;
    throw new ApolloError('too-many-requests', `too many ${what} from this container (at most ${this.limits.rate.perSecond} a second)`, {
      headers: { 'Retry-After': String(retryAfterSeconds(waitMs)) },
    });
  }

  /**
   * Checks a write against the record it would change: the switch again (the host may
   * have turned it off meanwhile), then the value's size, the number of keys and the
   * bytes of them all (413). An unset always fits.
   */
  assertFits(record: ContainerRecord, write: GuestWrite): void {
    assertWritable(record, write.key);
    if (write.bytes === null) return;
    const { maxKeys, maxTotalBytes, maxValueBytes } = this.limits;
    if (write.bytes > maxValueBytes) {
      throw new ApolloError(
        'payload-too-large',
        `the value of ${write.key} is ${write.bytes} bytes, more than the limit of ${maxValueBytes}`,
      );
    }
    let keys = 0;
    let bytes = 0;
    for (const [key, value] of Object.entries(record.config)) {
      if (!key.startsWith(guestKeyPrefix) || key === write.key) continue;
      keys++;
      bytes += storedBytes(value);
    }
    if (keys + 1 > maxKeys) {
      throw new ApolloError(
        'payload-too-large',
        `this container has ${keys} guest keys, the most it may have is ${maxKeys}: unset one first`,
      );
    }
    const total = bytes + Math.max(write.bytes, write.stored ?? 0);
    if (total > maxTotalBytes) {
      throw new ApolloError(
        'payload-too-large',
        `the guest keys of this container would hold ${total} bytes as stored, more than the limit of ${maxTotalBytes} in all`,
      );
    }
  }
}

/** 403 unless the guest may write `key` on a container with this record. */
function assertWritable(record: ContainerRecord, key: string): void {
  if (!isGuestWritableKey(key)) {
    throw new ApolloError('forbidden', `Forbidden: a guest may write only keys under guest. (guest.NAME), not ${JSON.stringify(key)}`);
  }
  if (record.config[guestWritesKey] === 'false') {
    throw new ApolloError('forbidden', `Forbidden: this container's guest keys are read-only (${guestWritesKey} is false)`);
  }
}

/** A value's bytes in the state file: its UTF-8 length with JSON's escapes (\n 2, U+0001 6). */
export function storedBytes(value: string): number {
  return Buffer.byteLength(JSON.stringify(value), 'utf8') - 2;
}
