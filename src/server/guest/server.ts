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
import type { IdentityIssuer } from '../identity/issuer.js';
import { defaultEventLimits, EventHub, type EventLimits, parseEventTypes } from '../events/hub.js';
import {
  answerClientError,
  endWithError,
  type FixedReply,
  fixedError,
  rawResponse,
  routeRequests,
  splitTarget,
} from '../http/router.js';
import { startReading, stopReading } from '../http/socket-reading.js';
import { peerHungUp } from '../kernel/hangup.js';
import { KnownProcesses, type PeerCredentials, resolvePeer, unreadablePeerError } from '../kernel/peer.js';
import { RateLimitedLog } from '../log.js';
import { answeredHook, type RequestObserver } from '../metrics.js';
import { type RateLimit, retryAfterSeconds, type Share, Shares } from './limits.js';
import { SlotList } from './slot-list.js';
import { type GuestContext, guestRoutes } from './routes.js';

/** Who a guest connection belongs to, fixed at accept time, and how busy it is. */
interface GuestPeer {
  readonly socket: Socket;
  /** The accepted socket's descriptor (for the hang-up check of a socket not being read). */
  readonly fd: number;
  readonly credentials: PeerCredentials;
  readonly instance: Instance | undefined;
  /** What the connection counts against, from accept until it closes. */
  readonly share: Share<GuestPeer>;
  /** Over a connection limit: answered with an error and closed, never served. */
  readonly refused: boolean;
  /** Where the connection sits in the idle sweep's list (-1: not in it). */
  slot: number;
  /** Requests being answered on the connection (0 or 1), streams and waits included. */
  busy: number;
  /**
   * Requests read while one was being answered, request and response in turn, answered
   * in order once it is done; undefined when none. Dropped when the connection closes.
   */
  queue: (http.IncomingMessage | http.ServerResponse)[] | undefined;
  /** Set while the queue is being worked through (answers met on the way do not recurse). */
  draining: boolean;
  /** Why the socket is not being read: `queued` and `throttled` bits; 0 when it is read. */
  holds: number;
  /** Refused for the rate during the container's current block. */
  refusedInBlock: boolean;
  /** Answered its last: closes once that answer is sent; nothing more is answered. */
  closing: boolean;
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
  /** Requests a connection may send ahead while one is being answered; more closes it. */
  readonly maxPipelinedRequests: number;
  /** Change-waits pending per container. */
  readonly maxWaitsPerContainer: number;
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
  maxPipelinedRequests: 8,
  maxWaitsPerContainer: 64,
  events: defaultEventLimits,
};

const retryAfterOne = { 'Retry-After': '1' } as const;

/** The holds on a socket's reading (bits of `GuestPeer.holds`). */
const queued = 1;
const throttled = 2;

/**
 * Refusals made once: under a flood they are written many times, and must cost no more
 * than writing them (no envelope, header object or error built per refusal).
 */
const atDaemonLimit = rawResponse(
  fixedError(new ApolloError('unavailable', 'the daemon is at its connection limit; try again', { headers: retryAfterOne })),
);
const atConnectionLimit = rawResponse(
  fixedError(new ApolloError('too-many-requests', 'too many open connections from this container', { headers: retryAfterOne })),
);
const notServed = 'Forbidden: this process is not in a running container served by devapollo';

/** 429s by Retry-After, made once; the closing kind also ends its connection once sent. */
const tooManyRequests: FixedReply[] = [];
const tooManyRequestsClosing: FixedReply[] = [];
function tooManyRequestsFor(seconds: number, closing: boolean): FixedReply {
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
}

export function createGuestServer(
  manager: ContainerManager,
  observer: RequestObserver,
  limits: GuestServerLimits = defaultGuestLimits,
  identity?: IdentityIssuer,
): GuestServer {
  const { logger } = observer;
  /** The accepted connections, for the idle sweep. */
  const connections = new SlotList<GuestPeer>();
  const refusals = new RateLimitedLog();
  const unreadable = new RateLimitedLog();
  const events = new EventHub(manager, limits.events);
  let open = 0;
  let pendingWaits = 0;
  let paused = 0;

  /** Stops reading the connection's socket, for `why` (a hold bit). */
  const hold = (peer: GuestPeer, why: number): void => {
    if (why === throttled) peer.share.throttle.hold(peer);
    if (peer.holds === 0) {
      stopReading(peer.socket);
      paused++;
    }
    peer.holds |= why;
  };

  /** Lifts a hold; the socket is read again once none is left. */
  const unhold = (peer: GuestPeer, why: number): void => {
    if ((peer.holds & why) === 0) return;
    peer.holds &= ~why;
    if (peer.holds === 0) {
      paused--;
      startReading(peer.socket);
    }
  };

  // The end of a container's block: its connections are read again.
  const shares = new Shares<GuestPeer>(limits.rate, (held) => {
    for (const peer of held) {
      peer.refusedInBlock = false;
      // One that has answered its last is never read again (what it sent would only be parsed).
      if (peer.closing) peer.share.throttle.hold(peer);
      else if (!peer.socket.destroyed) unhold(peer, throttled);
    }
  });

  /**
   * Checked once per request, before anything else: the container's request rate. Over
   * it, the request gets a refusal made once, and none of the container's connections is
   * read until its Retry-After (see Throttle); what they had sent already is answered as
   * the bucket allows. The refusal path builds nothing and logs only through the
   * rate-limited log.
   */
  const admit = (socket: Socket): FixedReply | undefined => {
    const peer = peerOf(socket);
    if (peer === undefined) throw new ApolloError('forbidden', notServed);
    const waitMs = peer.share.requests.take();
    if (waitMs === 0) return undefined;
    const seconds = retryAfterSeconds(waitMs);
    refuse(peer, 'request rate limit');
    peer.share.throttle.block(seconds * 1000);
    if (!peer.refusedInBlock) {
      peer.refusedInBlock = true;
      hold(peer, throttled);
      return tooManyRequestsFor(seconds, false);
    }
    // Refused already in this block, and still sending: it pipelines past its refusals.
    // This answer closes the connection once it is sent (after every answer before it),
    // and what it sent after it is not answered: its flood costs a parse, not an answer.
    peer.closing = true;
    peer.queue ??= [];
    return tooManyRequestsFor(seconds, true);
  };

  const refuse = (peer: GuestPeer, reason: string): void => {
    observer.metrics.countRefusal(reason);
    const suppressed = refusals.take();
    if (suppressed < 0) return;
    logger.warn('refused guest peer', {
      pid: peer.credentials.pid,
      uid: peer.credentials.uid,
      reason,
      container: peer.instance?.container.name,
      suppressed: suppressed || undefined,
    });
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
      identity,
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
      answeredMetrics(req, route, status, seconds);
      const peer = peerOf(req.socket);
      if (peer !== undefined) {
        peer.busy--;
        peer.answered++;
        if (peer.queue !== undefined) drain(peer);
      }
    },
    waits: {
      next: (context, topic, timeoutMs, signal) => context.container.nextChange(topic, timeoutMs, signal),
      // Each connection holds at most one wait (one request at a time), and each container
      // at most maxWaitsPerContainer of them.
      begin: (req) => {
        const peer = peerOf(req.socket);
        if (peer === undefined) throw new ApolloError('forbidden', notServed);
        if (peer.share.waits >= limits.maxWaitsPerContainer) {
          refuse(peer, 'change-wait limit');
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

  /**
   * One request at a time per connection (PROTOCOL.md section 3: a request pipelined
   * behind a pending one is not read until that one is answered). node:http parses every
   * request a read brought and emits them all at once, whatever is pending; those that
   * arrive while one is being answered wait in the connection's queue, and the socket is
   * not read until the queue is empty. A GET answered at once never queues: the next one
   * finds the connection free.
   */
  const serve = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const peer = peerOf(req.socket);
    if (peer !== undefined) {
      if (peer.busy > 0 || peer.queue !== undefined) {
        enqueue(peer, req, res);
        return;
      }
      peer.busy++;
    }
    listener(req, res);
  };

  /** Holds a request until the connection is free; a connection that sends too many ahead is closed. */
  const enqueue = (peer: GuestPeer, req: http.IncomingMessage, res: http.ServerResponse): void => {
    // node:http goes on parsing what it had read after the socket was closed (or its last
    // answer given): nobody to answer.
    if (peer.closing || peer.socket.destroyed) return;
    let queue = peer.queue;
    if (queue === undefined) peer.queue = queue = [];
    if (queue.length >= 2 * limits.maxPipelinedRequests) {
      refuse(peer, 'pipelined requests');
      queue.length = 0;
      peer.socket.destroy();
      return;
    }
    queue.push(req, res);
    hold(peer, queued);
  };

  /** Answers queued requests in order while the connection is free. */
  const drain = (peer: GuestPeer): void => {
    if (peer.draining) return;
    peer.draining = true;
    try {
      let queue = peer.queue;
      while (queue !== undefined && peer.busy === 0 && !peer.closing && !peer.socket.destroyed) {
        if (queue.length === 0) {
          peer.queue = undefined;
          unhold(peer, queued);
          return;
        }
        const req = queue.shift() as http.IncomingMessage;
        const res = queue.shift() as http.ServerResponse;
        peer.busy++;
        listener(req, res);
        queue = peer.queue;
      }
    } finally {
      peer.draining = false;
    }
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
  // is under the header timeout instead (Node's connection check answers 408). A
  // connection the daemon is not reading would not notice its peer's close: it is asked
  // (a poll) at every sweep, and closed once the peer has hung up.
  const sweepMs = Math.min(1000, Math.max(50, limits.keepAliveTimeoutMs / 4));
  const idleSweepsAllowed = Math.ceil(limits.keepAliveTimeoutMs / sweepMs);
  const sweep = setInterval(() => {
    connections.forEach((peer) => {
      if (peer.holds !== 0) {
        // One that has answered its last had a sweep's time to send it.
        if (peerHungUp(peer.fd) || (peer.closing && ++peer.idleSweeps > 1)) peer.socket.destroy();
        else if (!peer.closing) peer.idleSweeps = 0;
        return;
      }
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
    // Whatever was queued goes with the connection: nothing of it is kept.
    peer.queue = undefined;
    if (peer.holds !== 0) {
      peer.holds = 0;
      paused--;
    }
    peer.share.throttle.forget(peer);
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
    const refusal = open > limits.maxConnections ? atDaemonLimit : share.connections > limits.maxConnectionsPerContainer ? atConnectionLimit : undefined;
    const peer: GuestPeer = {
      socket,
      fd,
      credentials,
      instance: match,
      share,
      refused: refusal !== undefined,
      slot: -1,
      busy: 0,
      queue: undefined,
      draining: false,
      holds: 0,
      refusedInBlock: false,
      closing: false,
      answered: 0,
      answeredAtSweep: 0,
      idleSweeps: 0,
    };
    (socket as GuestSocket)[peerKey] = peer;
    // One shared listener, not a closure (and a once-wrapper) per connection.
    socket.on('close', onClose);
    if (refusal !== undefined) {
      refuse(peer, 'connection limit');
      socket.end(refusal);
      return;
    }
    connections.add(peer);
    if (match === undefined) refuse(peer, 'not in a running container');
    // A new connection of a container over its rate is not read until the block ends.
    else if (share.throttle.blocked) hold(peer, throttled);
  });

  // Websockets on /1.0/events. Node hands every request with an Upgrade header here;
  // the ones that are not a websocket for the event stream are answered as usual.
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    const upgraded = peerOf(socket as Socket);
    // An upgrade behind a request still being answered would write over its answer.
    if (upgraded !== undefined && (upgraded.busy > 0 || upgraded.queue !== undefined)) {
      refuse(upgraded, 'pipelined requests');
      socket.destroy();
      return;
    }
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
    if (upgraded !== undefined) connections.delete(upgraded);
    try {
      const refused = admit(socket as Socket);
      if (refused !== undefined) {
        socket.end(rawResponse(refused));
        return;
      }
      const context = contextOf(socket as Socket);
      const types = parseEventTypes(target.query.get('type'));
      events.guestWebsocket(context, types, req, socket, head);
    } catch (error) {
      endWithError(socket, error instanceof ApolloError ? error : new ApolloError('internal', 'internal error'));
    }
  });

  server.on('clientError', answerClientError);
  return {
    server,
    events,
    openConnections: () => open,
    pendingWaits: () => pendingWaits,
    pausedConnections: () => paused,
    closeAllConnections: () => {
      events.close();
      server.closeAllConnections();
      connections.forEach((peer) => peer.socket.destroy());
    },
  };
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
