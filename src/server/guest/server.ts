/**
 * The HTTP server behind /dev/apollo/sock. Each connection is bound to one container
 * instance, once, when it is accepted, from the kernel's peer credentials; each request
 * then checks that the instance still runs, is served, and that the caller may ask.
 */
import http from 'node:http';
import type { Socket } from 'node:net';
import { ApolloError } from '../../shared/errors.js';
import type { Instance } from '../containers/container.js';
import type { ContainerManager } from '../containers/manager.js';
import { answerClientError, routeRequests } from '../http/router.js';
import { type PeerCredentials, resolvePeer } from '../kernel/peer.js';
import { type Logger, RateLimitedLog } from '../log.js';
import { type GuestContext, guestRoutes } from './routes.js';

/** Who a guest connection belongs to, fixed at accept time. */
interface GuestPeer {
  readonly credentials: PeerCredentials;
  readonly instance: Instance | undefined;
}

export interface GuestServerLimits {
  readonly headersTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly keepAliveTimeoutMs: number;
  readonly maxHeaderBytes: number;
  readonly maxBodyBytes: number;
}

export const defaultGuestLimits: GuestServerLimits = {
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 30_000,
  maxHeaderBytes: 16 * 1024,
  maxBodyBytes: 64 * 1024,
};

const notServed = 'Forbidden: this process is not in a running container served by devapollo';

export function createGuestServer(
  manager: ContainerManager,
  logger: Logger,
  limits: GuestServerLimits = defaultGuestLimits,
): http.Server {
  const peers = new WeakMap<Socket, GuestPeer>();
  const refusals = new RateLimitedLog();

  const refuse = (peer: GuestPeer, reason: string): void => {
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

  const server = http.createServer(
    {
      requireHostHeader: false,
      maxHeaderSize: limits.maxHeaderBytes,
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      connectionsCheckingInterval: 1000,
    },
    routeRequests(guestRoutes, {
      contextOf: (req) => {
        const peer = peers.get(req.socket);
        if (peer === undefined) throw new ApolloError('forbidden', notServed);
        return authorize(peer, manager, refuse);
      },
      maxBodyBytes: limits.maxBodyBytes,
      onUnexpected: (req, error) => logger.error('guest request failed', { url: req.url, error: String(error) }),
    }),
  );

  // Identity is read synchronously at accept, before a byte of the request is parsed.
  server.on('connection', (socket: Socket) => {
    const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
    if (fd === undefined || fd < 0) {
      logger.error('accepted a guest connection without a descriptor');
      socket.destroy();
      return;
    }
    const { credentials, match } = resolvePeer(fd, (key) => manager.instanceOfNamespace(key));
    const peer: GuestPeer = { credentials, instance: match };
    peers.set(socket, peer);
    if (match === undefined) refuse(peer, 'not in a running container');
  });

  server.on('clientError', answerClientError);
  return server;
}

/** 403 unless the instance runs and is served; 401 for a caller that is not its root. */
function authorize(
  peer: GuestPeer,
  manager: ContainerManager,
  refuse: (peer: GuestPeer, reason: string) => void,
): GuestContext {
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
  return { instance, container: instance.container, manager };
}

/** Listens on a Unix socket path; resolves once bound. */
export function listenOn(server: http.Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
}
