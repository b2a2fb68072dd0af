/**
 * The HTTP server behind /dev/apollo/sock. Each connection is bound to one container
 * instance, once, when it is accepted, from the kernel's peer credentials; each request
 * then checks that the instance still runs, is served, and that the caller may ask.
 */
import http from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { ApolloError } from '../../shared/errors.js';
import type { Instance } from '../containers/container.js';
import type { ContainerManager } from '../containers/manager.js';
import { answerClientError, endWithError, routeRequests, splitTarget } from '../http/router.js';
import { KnownProcesses, type PeerCredentials, resolvePeer, unreadablePeerError } from '../kernel/peer.js';
import { RateLimitedLog } from '../log.js';
import { answeredHook, type RequestObserver } from '../metrics.js';
import { defaultEventLimits, type EventLimits, GuestEventHub, parseEventTypes } from './events.js';
import { type RateLimit, type Share, Shares } from './limits.js';
import { SlotList } from './slot-list.js';
import { type GuestContext, guestRoutes } from './routes.js';

/** Who a guest connection belongs to, fixed at accept time, and how busy it is. */
interface GuestPeer {
  readonly socket: Socket;
  readonly credentials: PeerCredentials;
  readonly instance: Instance | undefined;
  /** What the connection counts against, from accept until it closes. */
  readonly share: Share;
  /** Over a connection limit: answered with an error and closed, never served. */
  readonly refused: boolean;
  /** Where the connection sits in the idle sweep's list (-1: not in it). */
  slot: number;
  /** Requests being answered on the connection, streams and waits included. */
  busy: number;
  /** Requests answered so far, and the count the idle sweep saw last. */
  answered: number;
  answeredAtSweep: number;
  /** Sweeps in a row that found the connection idle. */
  idleSweeps: number;
  /** What the handlers get, once the connection's first request has been authorized. */
  context?: GuestContext;
}

/** Where a guest connection keeps its peer: one property of its socket, not a map lookup per request. */
const peerKey = Symbol('devapollo.peer');
type GuestSocket = Socket & { [peerKey]?: GuestPeer };

/** The peer of a connection that may be served (refused ones have none). */
function peerOf(socket: Socket): GuestPeer | undefined {
  const peer = (socket as GuestSocket)[peerKey];
  return peer === undefined || peer.refused ? undefined : peer;
}

export interface GuestServerLimits {
  /** Until the request's headers are in (slow-loris). */
  readonly headersTimeoutMs: number;
  /** Until the whole request is in; answers that wait or stream are not cut. */
  readonly requestTimeoutMs: number;
  /** An idle kept-alive connection is closed after this. */
  readonly keepAliveTimeoutMs: number;
  readonly maxHeaderBytes: number;
  readonly maxUrlBytes: number;
  readonly maxBodyBytes: number;
  /** Open connections per container (and for all unserved peers together). */
  readonly maxConnectionsPerContainer: number;
  /** Open connections in all. */
  readonly maxConnections: number;
  /** Requests per container. */
  readonly rate: RateLimit;
  readonly events: EventLimits;
}

export const defaultGuestLimits: GuestServerLimits = {
  headersTimeoutMs: 5_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 30_000,
  maxHeaderBytes: 16 * 1024,
  maxUrlBytes: 8 * 1024,
  maxBodyBytes: 64 * 1024,
  maxConnectionsPerContainer: 256,
  maxConnections: 8192,
  rate: { perSecond: 1024, burst: 4096 },
  events: defaultEventLimits,
};

const retryAfterOne = { 'Retry-After': '1' } as const;

const notServed = 'Forbidden: this process is not in a running container served by devapollo';

/** The guest server, its event hub, and its open connection count. */
export interface GuestServer {
  readonly server: http.Server;
  readonly events: GuestEventHub;
  readonly openConnections: () => number;
}

export function createGuestServer(
  manager: ContainerManager,
  observer: RequestObserver,
  limits: GuestServerLimits = defaultGuestLimits,
): GuestServer {
  const { logger } = observer;
  /** The accepted connections, for the idle sweep. */
  const connections = new SlotList<GuestPeer>();
  const refusals = new RateLimitedLog();
  const unreadable = new RateLimitedLog();
  const events = new GuestEventHub(manager, limits.events);
  const shares = new Shares(limits.rate);
  let open = 0;

  /** Checked once per request, before anything else: the container's request rate. */
  const admit = (socket: Socket): void => {
    const peer = peerOf(socket);
    if (peer === undefined) throw new ApolloError('forbidden', notServed);
    const waitMs = peer.share.requests.take();
    if (waitMs > 0) {
      refuse(peer, 'request rate limit');
      throw new ApolloError('too-many-requests', 'too many requests from this container', {
        headers: { 'Retry-After': String(Math.max(1, Math.ceil(waitMs / 1000))) },
      });
    }
  };

  const refuse = (peer: GuestPeer, reason: string): void => {
    observer.metrics.countRefusal(reason);
    refusals.attempt((suppressed) =>
      logger.warn('refused guest peer', {
        pid: peer.credentials.pid,
        uid: peer.credentials.uid,
        reason,
        container: peer.instance?.container.name,
        suppressed: suppressed || undefined,
      }),
    );
  };

  /**
   * Authorizes every request afresh; what the handlers get is built once per connection,
   * since the instance a connection is bound to never changes.
   */
  const contextOf = (socket: Socket): GuestContext => {
    const peer = peerOf(socket);
    if (peer === undefined) throw new ApolloError('forbidden', notServed);
    const instance = authorize(peer, refuse);
    peer.context ??= {
      instance,
      container: instance.container,
      manager,
      events,
      authorized: () => {
        try {
          authorize(peer, () => undefined);
          return true;
        } catch {
          return false;
        }
      },
    };
    return peer.context;
  };

  const answeredMetrics = answeredHook('guest', observer, (req) => peerOf(req.socket)?.instance?.container.name);
  const listener = routeRequests(guestRoutes, {
    admit: (req) => admit(req.socket),
    contextOf: (req) => contextOf(req.socket),
    maxBodyBytes: limits.maxBodyBytes,
    maxUrlBytes: limits.maxUrlBytes,
    onUnexpected: (req, error) => logger.error('guest request failed', { url: req.url, error: String(error) }),
    onAnswered: (req, route, status, seconds) => {
      const peer = peerOf(req.socket);
      if (peer !== undefined) {
        peer.busy--;
        peer.answered++;
      }
      answeredMetrics(req, route, status, seconds);
    },
    nextChange: (context, timeoutMs, signal) => context.container.nextChange(timeoutMs, signal),
  });

  const serve = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const peer = peerOf(req.socket);
    if (peer !== undefined) peer.busy++;
    listener(req, res);
  };

  const server = http.createServer(
    {
      requireHostHeader: false,
      maxHeaderSize: limits.maxHeaderBytes,
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      // Idle connections are closed by the sweep below, not by Node's keep-alive timer,
      // which is set and cleared again around every request (two timer-list updates).
      keepAliveTimeout: 0,
      connectionsCheckingInterval: 1000,
    },
    serve,
  );

  // A kept-alive connection that has answered a request and is idle (no request being
  // answered, none answered since the last sweep) is closed once it has been idle for
  // the idle timeout, give or take one sweep interval. Event streams and waits are
  // requests still being answered: exempt. Until its first request is in, a connection
  // is under the header timeout instead (Node's connection check answers 408).
  const sweepMs = Math.min(1000, Math.max(50, limits.keepAliveTimeoutMs / 4));
  const idleSweepsAllowed = Math.ceil(limits.keepAliveTimeoutMs / sweepMs);
  const sweep = setInterval(() => {
    connections.forEach((peer) => {
      if (peer.answered === 0) return;
      if (peer.busy > 0 || peer.answered !== peer.answeredAtSweep) {
        peer.answeredAtSweep = peer.answered;
        peer.idleSweeps = 0;
      } else if (++peer.idleSweeps >= idleSweepsAllowed) {
        peer.socket.destroy();
      }
    });
  }, sweepMs);
  sweep.unref();

  const lookupInstance = (key: bigint): Instance | undefined => manager.instanceOfNamespace(key);
  const knownProcesses = new KnownProcesses();
  server.once('close', () => {
    clearInterval(sweep);
    knownProcesses.clear();
  });
  function onClose(this: GuestSocket): void {
    const peer = this[peerKey];
    if (peer === undefined) return;
    peer.share.connections--;
    open--;
    connections.delete(peer);
  }

  // Identity is read synchronously at accept, before a byte of the request is parsed.
  server.on('connection', (socket: Socket) => {
    const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
    if (fd === undefined || fd < 0) {
      logger.error('accepted a guest connection without a descriptor');
      socket.destroy();
      return;
    }
    let resolved: ReturnType<typeof resolvePeer<Instance>>;
    try {
      resolved = resolvePeer(fd, lookupInstance, knownProcesses);
    } catch (error) {
      // The daemon cannot tell who this is right now (most likely out of descriptors): a
      // 503 to retry, never a 403 that would tell a container it is not served.
      const answer = unreadablePeerError(error);
      observer.metrics.countRefusal(answer.code === 'unavailable' ? 'out of descriptors' : 'identity unreadable');
      unreadable.attempt((suppressed) =>
        logger.error("cannot read a guest peer's identity", { error: String(error), suppressed: suppressed || undefined }),
      );
      endWithError(socket, answer);
      return;
    }
    const { credentials, match } = resolved;
    const share = shares.of(match?.container);
    share.connections++;
    open++;
    // Over a limit: answered at once, with the JSON envelope, and closed; a connection that
    // never sends a request (slow-loris) must not hold a place either. It still counts
    // until it has closed.
    const refusal =
      open > limits.maxConnections
        ? new ApolloError('unavailable', 'the daemon is at its connection limit; try again', { headers: retryAfterOne })
        : share.connections > limits.maxConnectionsPerContainer
          ? new ApolloError('too-many-requests', 'too many open connections from this container', { headers: retryAfterOne })
          : undefined;
    const peer: GuestPeer = {
      socket,
      credentials,
      instance: match,
      share,
      refused: refusal !== undefined,
      slot: -1,
      busy: 0,
      answered: 0,
      answeredAtSweep: 0,
      idleSweeps: 0,
    };
    (socket as GuestSocket)[peerKey] = peer;
    // One shared listener, not a closure (and a once-wrapper) per connection.
    socket.on('close', onClose);
    if (refusal !== undefined) {
      refuse(peer, 'connection limit');
      endWithError(socket, refusal);
      return;
    }
    connections.add(peer);
    if (match === undefined) refuse(peer, 'not in a running container');
  });

  // Websockets on /1.0/events. Node hands every request with an Upgrade header here;
  // the ones that are not a websocket for the event stream are answered as usual.
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    const isWebsocket = req.headers.upgrade?.toLowerCase() === 'websocket';
    let target: ReturnType<typeof splitTarget> | undefined;
    try {
      target = splitTarget(req.url ?? '');
    } catch {
      // Answered as a normal request below, which rejects it.
    }
    if (!isWebsocket || target?.path !== '/1.0/events' || req.method !== 'GET') {
      const res = new http.ServerResponse(req);
      res.assignSocket(socket as Socket);
      res.shouldKeepAlive = false;
      res.once('finish', () => socket.end());
      serve(req, res);
      return;
    }
    // A websocket is an event stream for its whole life: never idle.
    const upgraded = peerOf(socket as Socket);
    if (upgraded !== undefined) connections.delete(upgraded);
    try {
      admit(socket as Socket);
      const context = contextOf(socket as Socket);
      const types = parseEventTypes(target.query.get('type'));
      events.upgrade(context, types, req, socket, head);
    } catch (error) {
      endWithError(socket, error instanceof ApolloError ? error : new ApolloError('internal', 'internal error'));
    }
  });

  server.on('clientError', answerClientError);
  return { server, events, openConnections: () => open };
}

/** The instance if it runs and is served and the caller may ask: else 403, or 401 for non-root. */
function authorize(peer: GuestPeer, refuse: (peer: GuestPeer, reason: string) => void): Instance {
  const instance = peer.instance;
  if (instance === undefined || !instance.running) {
    if (instance !== undefined) refuse(peer, 'container no longer running');
    throw new ApolloError('forbidden', notServed);
  }
  const { config } = instance.container.record;
  if (config['security.devapollo'] === 'false') {
    refuse(peer, 'security.devapollo is false');
    throw new ApolloError('forbidden', 'Forbidden: devapollo is turned off for this container');
  }
  if (peer.credentials.uid !== instance.rootUid && config['security.devapollo.users'] !== 'true') {
    refuse(peer, 'not the container root');
    throw new ApolloError('unauthorized', 'Access denied for non-root user');
  }
  return instance;
}

/**
 * Listens on a Unix socket path, or on an inherited listening descriptor; resolves once
 * listening. A path is bound with the kernel's usual backlog ceiling (somaxconn), not
 * Node's 511: thousands of containers booting at once connect at once, and a full backlog
 * refuses them (EAGAIN). An inherited socket keeps the backlog it was given.
 */
export function listenOn(server: http.Server, where: { path: string } | { fd: number }): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen('path' in where ? { path: where.path, backlog: 4096 } : { fd: where.fd }, () => {
      server.off('error', reject);
      resolve();
    });
  });
}
