/**
 * The HTTP server behind DIR/unix.socket. Besides the socket's file mode (0660, group
 * root or the admin group) the peer's credentials are checked: host root, or a member of
 * the admin group, and never a process inside a managed container (a privileged
 * container's root is uid 0).
 */
import http from 'node:http';
import type { Socket } from 'node:net';
import { ApolloError } from '../../shared/errors.js';
import { maxAdminBodyBytes } from '../../shared/wire.js';
import type { ContainerManager } from '../containers/manager.js';
import { answerClientError, refuseConnect } from '../http/client-errors.js';
import { routeRequests } from '../http/pipeline.js';
import { resolvePeer, unreadablePeerError } from '../kernel/peer.js';
import { socketDescriptor } from '../kernel/socket-descriptor.js';
import { answeredHook, type RequestObserver } from '../metrics.js';
import { inAdminGroup } from './admin-group.js';
import { type AdminContext, adminRoutes } from './routes.js';

export function createAdminServer(
  context: AdminContext,
  manager: ContainerManager,
  observer: RequestObserver,
  adminGid: number | undefined,
): http.Server {
  const { logger } = observer;
  /** Per connection: true, or the error every request on it gets. */
  const allowed = new WeakMap<Socket, ApolloError | true>();

  const server = http.createServer(
    { requireHostHeader: false },
    routeRequests(adminRoutes, {
      contextOf: (req) => {
        const verdict = allowed.get(req.socket);
        if (verdict !== true) throw verdict ?? new ApolloError('forbidden', 'Forbidden');
        return context;
      },
      maxBodyBytes: maxAdminBodyBytes,
      onUnexpected: (req, error) => logger.error('admin request failed', { url: req.url, error: String(error) }),
      onAnswered: answeredHook('admin', observer),
    }),
  );

  server.on('connection', (socket: Socket) => {
    const fd = socketDescriptor(socket);
    if (fd === undefined) {
      socket.destroy();
      return;
    }
    let resolved: ReturnType<typeof resolvePeer<unknown>>;
    try {
      resolved = resolvePeer(fd, (key) => manager.instanceOfNamespace(key), undefined, manager.kernel);
    } catch (error) {
      // Not knowing whether the peer is in a container must never let it in.
      logger.error("cannot read an admin peer's identity", { error: String(error) });
      allowed.set(socket, unreadablePeerError(error));
      return;
    }
    const { credentials, match, alive } = resolved;
    let verdict: ApolloError | true = true;
    if (match !== undefined) verdict = new ApolloError('forbidden', 'Forbidden: the admin API is not reachable from a container');
    // Gone before its identity was read: where it was can no longer be told, and whoever
    // holds its connection now (a child, a receiver of the descriptor) may be anywhere.
    else if (!alive) verdict = new ApolloError('forbidden', 'Forbidden: the process that connected has exited');
    else if (credentials.uid !== 0 && !inAdminGroup(credentials.pid, credentials.gid, adminGid)) {
      verdict = new ApolloError('forbidden', 'Forbidden: the admin API is for root and the admin group only');
    }
    if (verdict !== true) logger.warn('refused admin peer', { pid: credentials.pid, uid: credentials.uid });
    allowed.set(socket, verdict);
  });

  server.on('clientError', answerClientError);
  server.on('connect', refuseConnect);
  return server;
}
