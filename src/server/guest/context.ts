/**
 * What a guest handler gets: its own container and what its requests need, nothing that
 * reaches another container. Today's handlers read their container's record and ETags,
 * set its guest state, write its guest.* keys and open its event stream; by type they
 * can do nothing else (no manager, no instance, no hub).
 */
import { ApolloError } from '../../shared/errors.js';
import type { Container, Instance } from '../containers/container.js';
import type { ContainerManager } from '../containers/manager.js';
import type { EventHub, EventSubscriber, EventType } from '../events/hub.js';
import type { StreamReply } from '../http/reply.js';
import type { ContainerIdentity } from '../identity/issuer.js';
import type { GuestState } from '../state/container-store.js';
import { type GuestKeyRules, storedBytes } from './guest-keys.js';

/** The caller's own container, read-only: its name, record and ETags. */
export type GuestContainerView = Readonly<Pick<Container, 'name' | 'record' | 'etag' | 'keyEtag' | 'metaDataEtag'>>;

/** What every guest handler gets. */
export interface GuestContext {
  readonly container: GuestContainerView;
  /** Sets the caller's guest state (`PATCH /1.0`). */
  setGuestState(state: GuestState): Promise<void>;
  /** Before a `PATCH /1.0` body: one token of the container's write rate (429 over it), as a guest key's write takes. */
  admitStateChange(): void;
  /** The caller's event stream (`GET /1.0/events`); 429 when its container has too many. */
  streamEvents(types: ReadonlySet<EventType>): StreamReply;
  /**
   * Admits a write of the caller's `key` before its body is read (guest-keys.ts): 403,
   * 429 or 413, or nothing. `declaredBytes` is the Content-Length, when there is one.
   */
  admitGuestWrite(key: string, declaredBytes: number | undefined): void;
  /** Sets the caller's guest.KEY durably, within its quotas ("" unsets it). */
  setGuestKey(key: string, value: string): Promise<void>;
  /** Unsets the caller's guest.KEY durably; 404 when it is not set. */
  unsetGuestKey(key: string): Promise<void>;
  /** Identity tokens naming the caller's container, and the keys that verify them (section 3b); none where the daemon serves them not. */
  readonly identity: ContainerIdentity | undefined;
}

/**
 * The context of one connection, made once, at its first authorized request (the
 * instance a connection is bound to never changes). The server sees it whole (its waits
 * and websockets need the container itself); handlers see it as a GuestContext.
 */
export class GuestSession implements GuestContext, EventSubscriber {
  readonly container: Container;

  constructor(
    private readonly instance: Instance,
    private readonly manager: ContainerManager,
    private readonly events: EventHub,
    private readonly guestKeys: GuestKeyRules,
    /** Whether the connection may still use the API (re-checked on every event). */
    readonly authorized: () => boolean,
    readonly identity: ContainerIdentity | undefined = undefined,
  ) {
    this.container = instance.container;
  }

  setGuestState(state: GuestState): Promise<void> {
    return this.manager.setGuestState(this.instance, state);
  }

  streamEvents(types: ReadonlySet<EventType>): StreamReply {
    return this.events.guestStream(this, types);
  }

  admitStateChange(): void {
    this.guestKeys.takeWrite(this.container, 'state changes');
  }

  admitGuestWrite(key: string, declaredBytes: number | undefined): void {
    this.guestKeys.admit(this.container, key, declaredBytes);
  }

  setGuestKey(key: string, value: string): Promise<void> {
    const write = { key, bytes: value === '' ? null : Buffer.byteLength(value, 'utf8'), stored: value === '' ? 0 : storedBytes(value) };
    return this.manager.setGuestKey(this.instance, key, value === '' ? null : value, (record) => this.guestKeys.assertFits(record, write));
  }

  unsetGuestKey(key: string): Promise<void> {
    return this.manager.setGuestKey(this.instance, key, null, (record) => {
      this.guestKeys.assertFits(record, { key, bytes: null });
      if (record.config[key] === undefined) throw new ApolloError('not-found', `config key ${key} is not set`);
    });
  }
}
