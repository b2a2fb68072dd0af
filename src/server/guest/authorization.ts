/**
 * Who may ask: every request of a connection is authorized afresh against the instance
 * the connection was bound to at accept (PROTOCOL.md section 2): it must still run, be
 * served (`security.devapollo`), and the caller must be its root unless
 * `security.devapollo.users` is true. What the handlers get is built once per connection.
 */
import type { Socket } from 'node:net';
import { ApolloError } from '../../shared/errors.js';
import type { Instance } from '../containers/container.js';
import type { ContainerManager } from '../containers/manager.js';
import type { EventHub } from '../events/hub.js';
import type { IdentityIssuer } from '../identity/issuer.js';
import { type GuestPeer, peerOf } from './connection.js';
import { GuestSession } from './context.js';
import type { GuestKeyRules } from './guest-keys.js';
import { type GuestRefusals, notServed } from './refusals.js';

/** Makes each connection's context, once it may ask. */
export class GuestAuthorizer {
  constructor(
    private readonly manager: ContainerManager,
    private readonly events: EventHub,
    private readonly guestKeys: GuestKeyRules,
    private readonly refusals: GuestRefusals,
    private readonly identity?: IdentityIssuer,
  ) {}

  /** The connection's context if its request may be answered: else 403, or 401 for non-root. */
  contextOf(socket: Socket): GuestSession {
    const peer = peerOf(socket);
    if (peer === undefined) throw new ApolloError('forbidden', notServed);
    const instance = authorize(peer, this.refusals);
    peer.context ??= new GuestSession(
      instance,
      this.manager,
      this.events,
      this.guestKeys,
      () => {
        try {
          authorize(peer, undefined);
          return true;
        } catch {
          return false;
        }
      },
      this.identity?.forContainer(instance.container),
    );
    return peer.context;
  }
}

/** The instance if it runs and is served and the caller may ask: else 403, or 401 for non-root. */
export function authorize(peer: GuestPeer, refusals: GuestRefusals | undefined): Instance {
  const instance = peer.instance;
  if (instance === undefined || !instance.running) {
    if (instance !== undefined) refusals?.refuse(peer, 'container no longer running');
    throw new ApolloError('forbidden', notServed);
  }
  const { config } = instance.container.record;
  if (config['security.devapollo'] === 'false') {
    refusals?.refuse(peer, 'security.devapollo is false');
    throw new ApolloError('forbidden', 'Forbidden: devapollo is turned off for this container');
  }
  if (peer.credentials.uid !== instance.rootUid && config['security.devapollo.users'] !== 'true') {
    refusals?.refuse(peer, 'not the container root');
    throw new ApolloError('unauthorized', 'Access denied for non-root user');
  }
  return instance;
}
