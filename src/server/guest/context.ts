/**
 * What a guest handler gets: its own container and what its requests need, nothing that
 * reaches another container. Today's handlers read their container's record and ETags,
 * set its guest state and open its event stream; by type they can do nothing else (no
 * manager, no instance, no hub).
 */
import type { Container, Instance } from '../containers/container.js';
import type { ContainerManager } from '../containers/manager.js';
import type { EventHub, EventSubscriber, EventType } from '../events/hub.js';
import type { ContainerIdentity } from '../identity/issuer.js';
import type { StreamReply } from '../http/reply.js';
import type { GuestState } from '../state/container-store.js';

/** The caller's own container, read-only: its name, record and ETags. */
export type GuestContainerView = Readonly<Pick<Container, 'name' | 'record' | 'etag' | 'keyEtag' | 'metaDataEtag'>>;

/** What every guest handler gets. */
export interface GuestContext {
  readonly container: GuestContainerView;
  /** Sets the caller's guest state (`PATCH /1.0`). */
  setGuestState(state: GuestState): Promise<void>;
  /** The caller's event stream (`GET /1.0/events`); 429 when its container has too many. */
  streamEvents(types: ReadonlySet<EventType>): StreamReply;
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
}
