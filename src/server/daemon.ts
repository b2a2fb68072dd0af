/**
 * `devapollo serve`: the daemon. Owns DIR, holds its lock, listens on the guest and admin
 * sockets, re-adopts running containers, and shuts down cleanly on SIGINT/SIGTERM
 * without stopping a single container.
 */
import fs from 'node:fs';
import type http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { ApolloError } from '../shared/errors.js';
import { packageVersion } from '../shared/version.js';
import type { StatusWire } from '../shared/wire.js';
import { createAdminServer } from './admin/server.js';
import { ContainerManager } from './containers/manager.js';
import { subordinateRange } from './containers/idmap.js';
import type { EventHub } from './events/hub.js';
import { IdentityIssuer } from './identity/issuer.js';
import type { IdentitySettings } from './identity/settings.js';
import { listenOn } from './guest/listen.js';
import { createGuestServer, type GuestServer, type GuestServerLimits } from './guest/server.js';
import type { RateLimit } from './guest/limits.js';
import { Metrics, type RequestObserver } from './metrics.js';
import { ExitWatcher } from './kernel/exit-watcher.js';
import { closeInheritedOnExec } from './kernel/descriptors.js';
import { errno, Errno, flock } from './kernel/libc.js';
import { namespaceKeysAreIds } from './kernel/namespaces.js';
import { peerPidfdSupported, readPeerCredentials } from './kernel/peer.js';
import { boundPath } from './kernel/socket-path.js';
import { type LogFormat, Logger, type LogLevel, RateLimitedLog } from './log.js';
import { daemonPaths, type DaemonPaths } from './paths.js';
import { SocketKeeper } from './socket-keeper.js';
import { ContainerStore, StateFileError } from './state/container-store.js';
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

const LOCK_EX = 2;
const LOCK_NB = 4;

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
    let records;
    try {
      records = await store.load();
    } catch (error) {
      if (error instanceof StateFileError) throw new ApolloError('internal', error.message, { cause: error });
      throw error;
    }
    // Missing while containers may run, DIR/devapollo was deleted under them (the keeper
    // reports it); layOutDir above has just re-created it.
    const guestDirWasMissing = guestDirMissing && records.some((record) => record.init !== null);

    const features = await checkPeerCredentials(paths.dir);
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
      ...(debugInternals ? { internals: { ...manager.internals(), ...guestServer.internals(), metric_label_sets: metrics.labelSets, process_listeners: processListeners() } } : {}),
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

/**
 * The modes of PROTOCOL.md section 1, set on every start (whatever an earlier version or
 * a hand left): DIR 0711, so that an unprivileged runtime (LXC with lxc.idmap, whose
 * root is a mapped uid) can pass through it to bind-mount DIR/devapollo, but nobody can
 * list it; everything secret below it closed on its own (0700 directories, a 0600 lock,
 * 0600 state files); only DIR/devapollo (0755) and its socket (0666) open to all.
 */
function layOutDir(paths: DaemonPaths, lockFd: number): void {
  fs.chmodSync(paths.dir, 0o711);
  fs.fchmodSync(lockFd, 0o600);
  // DIR/devapollo is bind-mounted into running containers: fix its mode, never replace it.
  fs.mkdirSync(paths.guestDir, { recursive: true, mode: 0o755 });
  fs.chmodSync(paths.guestDir, 0o755);
  for (const dir of [paths.containersDir, paths.logsDir, paths.stageDir]) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    fs.chmodSync(dir, 0o700);
  }
}

/** One daemon per DIR: an flock on DIR/daemon.lock, released by the kernel if we die. */
function acquireLock(file: string): number {
  const fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
  if (flock(fd, LOCK_EX | LOCK_NB) !== 0) {
    const err = errno();
    let holder = '';
    try {
      holder = fs.readFileSync(file, 'utf8').trim();
    } catch {
      // Unreadable: say less.
    }
    fs.closeSync(fd);
    if (err === Errno.EWOULDBLOCK) {
      throw new ApolloError(
        'conflict',
        `another devapollo daemon is already serving ${path.dirname(file)}${holder ? ` (pid ${holder})` : ''}`,
      );
    }
    throw new ApolloError('internal', `cannot lock ${file} (errno ${err})`);
  }
  fs.ftruncateSync(fd);
  fs.writeSync(fd, `${process.pid}\n`, 0);
  return fd;
}

/**
 * Binds a Unix socket with its final mode from the first instant (umask around bind), so
 * no client ever sees it with the wrong permissions.
 */
async function listenSocket(server: http.Server, file: string, mode: number, gid?: number): Promise<void> {
  fs.rmSync(file, { force: true });
  const previous = process.umask(0o777 & ~mode);
  try {
    await listenOn(server, { path: file });
  } finally {
    process.umask(previous);
  }
  fs.chmodSync(file, mode);
  if (gid !== undefined) fs.chownSync(file, 0, gid);
}

/**
 * The listening sockets a service manager passed (systemd socket activation: fds from 3,
 * LISTEN_FDS of them, for this pid, named by LISTEN_FDNAMES "guest" and "admin"), or
 * undefined when started without them. The variables are removed so that no child sees them.
 */
function inheritedSockets(env: NodeJS.ProcessEnv = process.env): { guest: number; admin: number } | undefined {
  if (env['LISTEN_PID'] !== String(process.pid) || env['LISTEN_FDS'] === undefined) return undefined;
  const count = Number(env['LISTEN_FDS']);
  const names = (env['LISTEN_FDNAMES'] ?? '').split(':');
  for (const name of ['LISTEN_PID', 'LISTEN_FDS', 'LISTEN_FDNAMES']) delete env[name];
  const fds = new Map<string, number>();
  for (let i = 0; i < count; i++) fds.set(names[i] ?? '', 3 + i);
  const guest = fds.get('guest');
  const admin = fds.get('admin');
  if (guest === undefined || admin === undefined) {
    throw new ApolloError(
      'usage',
      `socket activation needs two sockets named "guest" and "admin" (FileDescriptorName=); got ${count} named ${JSON.stringify(names.join(':'))}`,
    );
  }
  return { guest, admin };
}

/** Listens on an inherited descriptor, after checking it is the socket at `expected`. */
async function listenInherited(server: http.Server, fd: number, expected: string): Promise<void> {
  const address = boundPath(fd);
  if (address !== expected) {
    throw new ApolloError('usage', `the inherited socket on fd ${fd} is ${JSON.stringify(address ?? null)}, expected ${expected} (check --dir)`);
  }
  await listenOn(server, { fd });
}

/** What /metrics reads at scrape time. */
function registerGauges(metrics: Metrics, manager: ContainerManager, guest: GuestServer, limits: GuestServerLimits): void {
  const events: EventHub = guest.events;
  metrics.register('devapollo_guest_connections', 'gauge', 'Open connections on the guest socket.', () => [{ value: guest.openConnections() }]);
  metrics.register('devapollo_guest_paused_connections', 'gauge', 'Guest connections not being read (behind a request being answered, or over the rate).', () => [
    { value: guest.pausedConnections() },
  ]);
  metrics.register('devapollo_change_waits', 'gauge', 'Change-waits pending on the guest socket, all containers.', () => [{ value: guest.pendingWaits() }]);
  metrics.register('devapollo_change_waits_per_container_limit', 'gauge', 'Change-waits a container may have pending at once.', () => [
    { value: limits.maxWaitsPerContainer },
  ]);
  metrics.register('devapollo_containers', 'gauge', 'Containers by state.', () => {
    const { total, running } = manager.counts();
    return [
      { labels: { state: 'Running' }, value: running },
      { labels: { state: 'Stopped' }, value: total - running },
    ];
  });
  metrics.register('devapollo_event_listeners', 'gauge', 'Open guest event streams.', () => [{ value: events.size }]);
  metrics.register('devapollo_events_delivered_total', 'counter', 'Events sent to guest streams.', () => [{ value: events.stats.guest.delivered }]);
  metrics.register('devapollo_events_dropped_total', 'counter', 'Guest streams dropped for falling behind.', () => [{ value: events.stats.guest.dropped }]);
  metrics.register('devapollo_admin_event_listeners', 'gauge', 'Open admin event streams (devapollo monitor).', () => [{ value: events.adminSize }]);
  metrics.register('devapollo_admin_events_delivered_total', 'counter', 'Events sent to admin streams.', () => [{ value: events.stats.admin.delivered }]);
  metrics.register('devapollo_admin_events_dropped_total', 'counter', 'Admin streams dropped for falling behind.', () => [{ value: events.stats.admin.dropped }]);
  // The usual process figures, under the names Prometheus' client libraries give them.
  metrics.register('process_resident_memory_bytes', 'gauge', 'Resident memory of the daemon.', () => [{ value: process.memoryUsage.rss() }]);
  metrics.register('process_open_fds', 'gauge', 'Open file descriptors of the daemon.', () => [{ value: fs.readdirSync('/proc/self/fd').length }]);
  metrics.register('nodejs_heap_size_used_bytes', 'gauge', 'Used size of the JavaScript heap.', () => [{ value: process.memoryUsage().heapUsed }]);
  metrics.register('nodejs_external_memory_bytes', 'gauge', 'Memory of Buffers and other objects outside the heap.', () => [{ value: process.memoryUsage().external }]);
}

/** Whether `status` shows its `internals` (a switch for tests and debugging: StatusWire['internals']). */
const debugInternals = process.env['DEVAPOLLO_DEBUG_INTERNALS'] === '1';

/** Listeners on `process`, all events together (signals, exit, warnings). */
function processListeners(): number {
  return process.eventNames().reduce((sum, name) => sum + process.listenerCount(name), 0);
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

function closeServer(server: http.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/**
 * Peer credentials are the whole security model: check at start-up, not at the first
 * request, that an accepted socket's descriptor can be had and read, and which kernel
 * features (SO_PEERPIDFD, NS_GET_ID) this machine has.
 */
async function checkPeerCredentials(dir: string): Promise<StatusWire['identity']> {
  const probe = path.join(dir, `.probe-${process.pid}.sock`);
  fs.rmSync(probe, { force: true });
  const server = net.createServer();
  // 0600 from the first instant: nothing in DIR but DIR/devapollo is open to others.
  const previous = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(probe, resolve));
  } finally {
    process.umask(previous);
  }
  try {
    const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
    const client = net.connect(probe);
    const socket = await accepted;
    const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
    if (fd === undefined || fd < 0) {
      throw new ApolloError('internal', 'cannot get the descriptor of an accepted socket: peer credentials are unavailable');
    }
    const credentials = readPeerCredentials(fd);
    if (credentials.pid !== process.pid) {
      throw new ApolloError('internal', `SO_PEERCRED gave pid ${credentials.pid}, expected ${process.pid}`);
    }
    const peerPidfd = peerPidfdSupported(fd);
    client.destroy();
    socket.destroy();
    return { peer_pidfd: peerPidfd, namespace_ids: namespaceKeysAreIds() };
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

function groupId(name: string): number {
  if (/^\d+$/.test(name)) return Number(name);
  const line = fs
    .readFileSync('/etc/group', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${name}:`));
  const gid = line?.split(':')[2];
  if (gid === undefined) throw new ApolloError('bad-request', `no group named ${name}`);
  return Number(gid);
}
