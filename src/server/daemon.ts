/**
 * `devapollo serve`: the daemon. Owns DIR, holds its lock, listens on the guest and admin
 * sockets, re-adopts running containers, and shuts down cleanly on SIGINT/SIGTERM
 * without stopping a single container.
 */
import fs from 'node:fs';
import { ApolloError } from '../shared/errors.js';
import { packageVersion } from '../shared/version.js';
import type { StatusWire } from '../shared/wire.js';
import { groupId } from './admin/admin-group.js';
import { createAdminServer } from './admin/server.js';
import { subordinateRange } from './containers/idmap.js';
import { ContainerManager } from './containers/manager.js';
import { registerGauges } from './gauges.js';
import type { RateLimit } from './guest/limits.js';
import { createGuestServer, type GuestServerLimits } from './guest/server.js';
import { IdentityIssuer } from './identity/issuer.js';
import type { IdentitySettings } from './identity/settings.js';
import { checkPeerCredentials } from './kernel/credential-probe.js';
import { closeInheritedOnExec } from './kernel/descriptors.js';
import { ExitWatcher } from './kernel/exit-watcher.js';
import { processKernelFeatures } from './kernel/features.js';
import { closeServer, inheritedSockets, listenInherited, listenSocket } from './listening.js';
import { type LogFormat, Logger, type LogLevel, RateLimitedLog } from './log.js';
import { Metrics, type RequestObserver } from './metrics.js';
import { type DaemonPaths, daemonPaths } from './paths.js';
import { SocketKeeper } from './socket-keeper.js';
import { ContainerStore, StateFileError } from './state/container-store.js';
import { acquireLock, layOutDir } from './state/daemon-dir.js';
import { prepareRootDir } from './state/dir-check.js';

export interface ServeOptions {
  readonly dir: string;
  readonly logLevel: LogLevel;
  readonly logFormat: LogFormat;
  readonly maxValueBytes: number;
  /** Each container's output log is rotated at this size. */
  readonly maxLogBytes: number;
  readonly adminGroup: string | undefined;
  readonly stopTimeoutSeconds: number;
  readonly guestLimits: GuestServerLimits;
  /** One log line per request. */
  readonly logRequests: boolean;
  /** Who signs identity tokens (`--identity-issuer`, `--trust-domain`). */
  readonly identity: IdentitySettings;
  /** Identity tokens per container (`--token-rate`, `--token-burst`). */
  readonly tokenRate?: RateLimit;
}

/** A running daemon; `closed` settles once it has shut down. */
export interface Daemon {
  readonly paths: DaemonPaths;
  readonly closed: Promise<void>;
  shutdown(reason: string): Promise<void>;
}

export async function serve(options: ServeOptions): Promise<Daemon> {
  // Before anything is started: no container may get a descriptor the daemon inherited.
  const inheritedFds = closeInheritedOnExec();
  const logger = new Logger(options.logLevel, options.logFormat);
  if (inheritedFds.length > 0) logger.debug('inherited descriptors marked close-on-exec', { fds: inheritedFds.join(',') });
  const paths = daemonPaths(options.dir);
  const startedAt = new Date();

  const adminGid = options.adminGroup === undefined ? undefined : groupId(options.adminGroup);
  // Nothing is changed in DIR before the lock is ours: a second daemon that the lock
  // refuses must leave the first one's DIR exactly as it found it. Creating a missing DIR
  // (the lock file lives in it) is the one thing done before.
  prepareRootDir(paths.dir, 0o711);
  const lockFd = acquireLock(paths.lockFile);

  try {
    if (adminGid !== undefined) {
      logger.warn('the admin group has host root: its members can launch privileged containers and exec into them', {
        admin_group: options.adminGroup,
        gid: adminGid,
      });
    }
    const guestDirMissing = !fs.existsSync(paths.guestDir);
    layOutDir(paths, lockFd);
    const store = new ContainerStore(paths.containersDir);
    let records: Awaited<ReturnType<ContainerStore['load']>>;
    try {
      records = await store.load();
    } catch (error) {
      if (error instanceof StateFileError) throw new ApolloError('internal', error.message, { cause: error });
      throw error;
    }
    // Missing while containers may run, DIR/devapollo was deleted under them (the keeper
    // reports it); layOutDir above has just re-created it.
    const guestDirWasMissing = guestDirMissing && records.some((record) => record.init !== null);

    // The kernel's features, once: every peer lookup and the registry use this answer.
    const kernel = processKernelFeatures();
    const features = await checkPeerCredentials(paths.dir, kernel);
    // Before any container is adopted: a key file it refuses stops the daemon with nothing held.
    const identity = await IdentityIssuer.open({
      identityDir: paths.identityDir,
      publicDir: paths.publicDir,
      settings: options.identity,
      logger,
      tokenRate: options.tokenRate,
    });

    const watcher = new ExitWatcher();
    const manager = new ContainerManager({
      paths,
      store,
      watcher,
      logger,
      kernel,
      maxValueBytes: options.maxValueBytes,
      uids: subordinateRange('/etc/subuid'),
      gids: subordinateRange('/etc/subgid'),
      stopTimeoutMs: options.stopTimeoutSeconds * 1000,
      maxLogBytes: options.maxLogBytes,
    });
    await manager.restore(records);

    const metrics = new Metrics();
    const observer: RequestObserver = { metrics, logger, logRequests: options.logRequests };
    const guestServer = createGuestServer(manager, observer, options.guestLimits, undefined, identity);
    const { server: guest, events, openConnections } = guestServer;
    registerGauges(metrics, manager, guestServer, options.guestLimits);
    const inherited = inheritedSockets();
    const status = (): StatusWire => ({
      version: packageVersion,
      pid: process.pid,
      started_at: startedAt.toISOString(),
      uptime_seconds: Math.round((Date.now() - startedAt.getTime()) / 1000),
      dir: paths.dir,
      guest_socket: paths.guestSocket,
      admin_socket: paths.adminSocket,
      containers: manager.counts(),
      connections: {
        guest: openConnections(),
        event_listeners: events.size,
        admin_event_listeners: events.adminSize,
        change_waits: guestServer.pendingWaits(),
        paused: guestServer.pausedConnections(),
      },
      limits: guestLimitsWire(options.guestLimits),
      identity: features,
      socket_activation: inherited !== undefined,
      socket_repairs: keeper.repairs(),
      ...(debugInternals
        ? {
            internals: {
              ...manager.internals(),
              ...guestServer.internals(),
              metric_label_sets: metrics.labelSets,
              process_listeners: processListeners(),
            },
          }
        : {}),
    });
    const admin = createAdminServer({ manager, events, status, metrics: () => metrics.render(), identity }, manager, observer, adminGid);
    // Read by status() only once the daemon answers, after this line.
    const keeper = new SocketKeeper({
      directory: paths.guestDir,
      directoryMode: 0o755,
      sockets: [
        { api: 'guest', server: guest, path: paths.guestSocket, mode: 0o666, inherited: inherited !== undefined },
        { api: 'admin', server: admin, path: paths.adminSocket, mode: 0o660, gid: adminGid, inherited: inherited !== undefined },
      ],
      manager,
      logger,
    });

    if (inherited !== undefined) {
      // Sockets from the service manager: listen on them as they are, never unlink them.
      await listenInherited(guest, inherited.guest, paths.guestSocket);
      await listenInherited(admin, inherited.admin, paths.adminSocket);
    } else {
      // We hold the lock, so sockets left behind are a crashed daemon's: remove them.
      await listenSocket(guest, paths.guestSocket, 0o666);
      await listenSocket(admin, paths.adminSocket, 0o660, adminGid);
    }

    keeper.start(guestDirWasMissing);

    // Once listening, a server emits 'error' only when an accept fails (out of descriptors
    // with libuv's reserve descriptor gone, out of memory). Unheard, that event would end
    // the daemon; it is logged, and the server keeps listening.
    const acceptFailures = new RateLimitedLog();
    for (const [api, server] of [
      ['guest', guest],
      ['admin', admin],
    ] as const) {
      server.on('error', (error) =>
        acceptFailures.attempt((suppressed) =>
          logger.error('accept failed', { api, error: String(error), suppressed: suppressed || undefined }),
        ),
      );
    }

    const counts = manager.counts();
    logger.info('devapollo started', {
      version: packageVersion,
      dir: paths.dir,
      pid: process.pid,
      containers: counts.total,
      running: counts.running,
      socket_activation: inherited !== undefined,
    });
    identity.logStarted();

    let resolveClosed!: () => void;
    const closed = new Promise<void>((resolve) => (resolveClosed = resolve));
    let shuttingDown: Promise<void> | undefined;
    const shutdown = (reason: string): Promise<void> => {
      shuttingDown ??= (async () => {
        logger.info('devapollo stopping', { reason });
        // The backstop: whatever holds the process (a bug, a handle nobody closed) must not
        // keep a stopping daemon alive past the stop timeout. It does not keep the process
        // alive itself; if the daemon has stopped cleanly and nothing else is left, the
        // process has exited long before it fires.
        let stopped = false;
        const stopTimeoutMs = Math.max(1000, options.stopTimeoutSeconds * 1000);
        setTimeout(() => {
          logger.error(stopped ? 'devapollo stopped but did not exit in time; exiting' : 'devapollo did not stop in time; exiting', {
            stop_timeout_seconds: stopTimeoutMs / 1000,
          });
          process.exit(stopped ? 0 : 1);
        }, stopTimeoutMs).unref();
        const { running } = manager.counts();
        keeper.close();
        const closing = [closeServer(guest), closeServer(admin)];
        // Every stream, change-wait and queued request ends with its connection.
        guestServer.closeAllConnections();
        admin.closeAllConnections();
        await Promise.all(closing);
        manager.close();
        identity.close();
        await watcher.close();
        fs.closeSync(lockFd);
        stopped = true;
        logger.info('devapollo stopped', { containers_left_running: running });
        resolveClosed();
      })();
      return shuttingDown;
    };
    return { paths, closed, shutdown };
  } catch (error) {
    fs.closeSync(lockFd);
    throw error;
  }
}

/** The guest socket's limits as `status` shows them. */
function guestLimitsWire(limits: GuestServerLimits): StatusWire['limits'] {
  return {
    requests_per_second: limits.rate.perSecond,
    request_burst: limits.rate.burst,
    connections_per_container: limits.maxConnectionsPerContainer,
    connections: limits.maxConnections,
    event_streams_per_container: limits.events.maxListenersPerContainer,
    change_waits_per_container: limits.maxWaitsPerContainer,
    pipelined_requests_per_connection: limits.maxPipelinedRequests,
    guest_writes_per_second: limits.guestKeys.rate.perSecond,
    guest_write_burst: limits.guestKeys.rate.burst,
    guest_keys_per_container: limits.guestKeys.maxKeys,
    guest_key_bytes_per_container: limits.guestKeys.maxTotalBytes,
    guest_value_bytes: limits.guestKeys.maxValueBytes,
  };
}

/** Whether `status` shows its `internals` (a switch for tests and debugging: StatusWire['internals']). */
const debugInternals = process.env['DEVAPOLLO_DEBUG_INTERNALS'] === '1';

/** Listeners on `process`, all events together (signals, exit, warnings). */
function processListeners(): number {
  return process.eventNames().reduce((sum, name) => sum + process.listenerCount(name), 0);
}
