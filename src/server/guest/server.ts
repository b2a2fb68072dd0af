/**
 * The HTTP server behind /dev/apollo/sock, put together from its parts: connections are
 * accepted and bound to one container instance from the kernel's peer credentials
 * (connections.ts), each request is admitted against its container's rate
 * (admission.ts), queued behind the one being answered (request-queue.ts), authorized
 * afresh (authorization.ts) and answered by the guest routes (routes.ts) through the
 * shared pipeline; idle connections are swept (idle-sweep.ts) and event-stream upgrades
 * become websockets (websocket.ts).
 */
import http from 'node:http';
import { ApolloError } from '../../shared/errors.js';
import type { ContainerEvent, ContainerManager } from '../containers/manager.js';
import { defaultEventLimits, EventHub, type EventLimits } from '../events/hub.js';
import { answerClientError } from '../http/client-errors.js';
import type { IdentityIssuer } from '../identity/issuer.js';
import { answeredHook, type RequestObserver } from '../metrics.js';
import { Admission } from './admission.js';
import { GuestAuthorizer } from './authorization.js';
import { peerOf } from './connection.js';
import { type ConnectionCaps, GuestConnections } from './connections.js';
import type { GuestSession } from './context.js';
import { defaultGuestKeyLimits, type GuestKeyLimits, GuestKeyRules } from './guest-keys.js';
import { routeRequests } from './http.js';
import { startIdleSweep } from './idle-sweep.js';
import type { RateLimit } from './limits.js';
import { ReadingHolds } from './reading-holds.js';
import { GuestRefusals, notServed } from './refusals.js';
import { RequestQueue } from './request-queue.js';
import { guestRoutes } from './routes.js';
import { connectListener, upgradeListener } from './websocket.js';

/** Every limit of the guest socket (`serve` options; PROTOCOL.md section 3 and README). */
export interface GuestServerLimits extends ConnectionCaps {
  /** Until the request's headers are in (slow-loris). */
  readonly headersTimeoutMs: number;
  /** Until the whole request is in; answers that wait or stream are not cut. */
  readonly requestTimeoutMs: number;
  /** An idle kept-alive connection is closed after this. */
  readonly keepAliveTimeoutMs: number;
  readonly maxHeaderBytes: number;
  readonly maxUrlBytes: number;
  readonly maxBodyBytes: number;
  /** Requests per container. */
  readonly rate: RateLimit;
  /** Requests a connection may send ahead while one is being answered; more closes it. */
  readonly maxPipelinedRequests: number;
  /** Change-waits pending per container. */
  readonly maxWaitsPerContainer: number;
  readonly events: EventLimits;
  /** The guest's writes of its guest.* keys: their rate and quotas (PROTOCOL.md section 3a). */
  readonly guestKeys: GuestKeyLimits;
}

export const defaultGuestLimits: GuestServerLimits = {
  headersTimeoutMs: 5_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 30_000,
  maxHeaderBytes: 16 * 1024,
  maxUrlBytes: 8 * 1024,
  // The largest guest.* value (guest-keys.ts) is the largest body of all.
  maxBodyBytes: 64 * 1024,
  maxConnectionsPerContainer: 256,
  maxConnections: 8192,
  rate: { perSecond: 1024, burst: 4096 },
  maxPipelinedRequests: 8,
  maxWaitsPerContainer: 64,
  events: defaultEventLimits,
  guestKeys: defaultGuestKeyLimits,
};

/** The guest server, its event hub, and its counts. */
export interface GuestServer {
  readonly server: http.Server;
  readonly events: EventHub;
  readonly openConnections: () => number;
  /** Change-waits pending, all containers together. */
  readonly pendingWaits: () => number;
  /** Connections not being read right now (behind a request being answered, or over the rate). */
  readonly pausedConnections: () => number;
  /** Closes every connection, websockets and connections taken over by an upgrade included (shutdown). */
  readonly closeAllConnections: () => void;
  /** Sizes of what the server keeps by connection, process or container (status `internals`). */
  readonly internals: () => Record<string, number>;
}

export function createGuestServer(
  manager: ContainerManager,
  observer: RequestObserver,
  limits: GuestServerLimits = defaultGuestLimits,
  /** The clock of the request-rate and write-rate buckets (milliseconds); tests give their own. */
  now?: () => number,
  /** Signs identity tokens (section 3b); none: the identity routes answer 404. */
  identity?: IdentityIssuer,
): GuestServer {
  const { logger } = observer;
  const events = new EventHub(manager, limits.events);
  const refusals = new GuestRefusals(observer);
  const holds = new ReadingHolds();
  const admission = new Admission(limits.rate, holds, refusals, now);
  const authorizer = new GuestAuthorizer(manager, events, new GuestKeyRules(limits.guestKeys, now), refusals, identity);
  const connections = new GuestConnections(
    limits,
    (key) => manager.instanceOfNamespace(key),
    admission,
    holds,
    refusals,
    observer,
    manager.kernel,
  );
  let pendingWaits = 0;

  const answeredMetrics = answeredHook('guest', observer, (req) => peerOf(req.socket)?.instance?.container.name);
  const listener = routeRequests<GuestSession>(guestRoutes, {
    admit: (req) => admission.admit(req.socket),
    contextOf: (req) => authorizer.contextOf(req.socket),
    maxBodyBytes: limits.maxBodyBytes,
    maxUrlBytes: limits.maxUrlBytes,
    onUnexpected: (req, error) => logger.error('guest request failed', { url: req.url, error: String(error) }),
    onAnswered: (req, route, status, seconds) => {
      answeredMetrics(req, route, status, seconds);
      const peer = peerOf(req.socket);
      if (peer !== undefined) queue.answered(peer);
    },
    waits: {
      next: (session, topic, timeoutMs, signal) => session.container.nextChange(topic, timeoutMs, signal),
      // Each connection holds at most one wait (one request at a time), and each container
      // at most maxWaitsPerContainer of them.
      begin: (req) => {
        const peer = peerOf(req.socket);
        if (peer === undefined) throw new ApolloError('forbidden', notServed);
        if (peer.share.waits >= limits.maxWaitsPerContainer) {
          refusals.refuse(peer, 'change-wait limit');
          throw new ApolloError('too-many-requests', `too many change-waits for this container (${limits.maxWaitsPerContainer})`, {
            headers: { 'Retry-After': '5' },
          });
        }
        peer.share.waits++;
        pendingWaits++;
      },
      end: (req) => {
        const peer = peerOf(req.socket);
        if (peer !== undefined) peer.share.waits--;
        pendingWaits--;
      },
    },
  });
  const queue = new RequestQueue(listener, holds, refusals, limits.maxPipelinedRequests);

  const server = http.createServer(
    {
      requireHostHeader: false,
      maxHeaderSize: limits.maxHeaderBytes,
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      // Idle connections are closed by the idle sweep, not by Node's keep-alive timer.
      keepAliveTimeout: 0,
      connectionsCheckingInterval: 1000,
    },
    (req, res) => queue.serve(req, res),
  );
  const stopSweep = startIdleSweep(connections.served, limits.keepAliveTimeoutMs);
  // A container that stopped or was deleted takes its processes' entries in the
  // known-process memo with it, once per turn however many stop together.
  let pruning = false;
  const onManagerEvent = (event: ContainerEvent): void => {
    const action = event.metadata['action'];
    if (event.type !== 'lifecycle' || (action !== 'stopped' && action !== 'deleted') || pruning) return;
    pruning = true;
    setImmediate(() => {
      pruning = false;
      connections.forgetEnded();
    });
  };
  manager.on('event', onManagerEvent);
  server.once('close', () => {
    stopSweep();
    manager.off('event', onManagerEvent);
    connections.clear();
  });
  server.on('connection', (socket) => connections.accept(socket));
  server.on('upgrade', upgradeListener({ admission, authorizer, connections, queue, refusals, events }));
  server.on('connect', connectListener({ admission, authorizer }));
  server.on('clientError', answerClientError);
  return {
    server,
    events,
    openConnections: () => connections.open,
    pendingWaits: () => pendingWaits,
    pausedConnections: () => holds.paused,
    internals: () => ({
      guest_connection_slots: connections.served.size,
      known_processes: connections.knownProcessCount,
      event_listener_containers: events.containerCount,
      event_listeners: events.size,
      change_waits: pendingWaits,
    }),
    closeAllConnections: () => {
      events.close();
      server.closeAllConnections();
      connections.destroyAll();
    },
  };
}
