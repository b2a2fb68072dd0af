/**
 * Keeps the daemon's sockets where containers and the host CLI look for them.
 * `DIR/devapollo/` is never to be deleted or replaced while containers run (README.md,
 * "Files"), but root can still `rm -rf` it, or remove or replace the socket file: the
 * daemon would go on listening on a socket nobody can reach, and every container
 * launched afterwards would fail to mount the directory.
 *
 * So once a second the keeper looks (lstat: device and inode) at the directory and each
 * socket path, and re-creates what went missing or was replaced: the directory (0755),
 * then a new listening socket at the path (its mode from the first instant), whose
 * connections go to the same HTTP server, through the same 'connection' handling
 * (identity at accept) as the first one's. A periodic stat rather than inotify: it sees
 * every way of losing the path (rm, mv, a mount over it, a replacement under the same
 * name) with no watch to re-arm once the watched directory itself is gone, in two stat
 * calls a second; a lost socket is unreachable anyway, so a second's delay loses nothing.
 *
 * A container that had the old directory bind-mounted at /dev/apollo keeps the old,
 * deleted directory: nothing can be put in it again, and it cannot reach the socket until
 * it is restarted. The keeper remembers which directory each instance started with, so
 * that `status` names them (`stranded`).
 */
import fs from 'node:fs';
import type http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import type { Instance } from './containers/container.js';
import type { ContainerManager } from './containers/manager.js';
import { type Logger, RateLimitedLog } from './log.js';

/** A socket path to keep bound, and who answers on it. */
export interface KeptSocket {
  readonly api: 'guest' | 'admin';
  readonly server: http.Server;
  readonly path: string;
  readonly mode: number;
  readonly gid?: number | undefined;
  /**
   * Given by a service manager (systemd socket activation). A missing one is re-created as
   * any other; one replaced by another socket is left as it is: that is the service
   * manager's new one (`systemctl restart devapollo.socket`), not to be fought over.
   */
  readonly inherited?: boolean;
}

/** What `status` says of the re-creations since the daemon started. */
export interface SocketRepairs {
  readonly count: number;
  readonly last_at: string | null;
  /** What was found the last time, e.g. "DIR/devapollo missing". */
  readonly last: string | null;
  /**
   * Running containers whose /dev/apollo is not the directory at DIR/devapollo now (it was
   * deleted or replaced since they started): a socket re-created there does not reach them.
   */
  readonly stranded_containers: readonly string[];
}

/** A file's identity: device and inode, or undefined when nothing is there. */
function identityOf(file: string, kind: 'directory' | 'socket'): string | undefined {
  try {
    const stat = fs.lstatSync(file);
    if (kind === 'directory' ? !stat.isDirectory() : !stat.isSocket()) return undefined;
    return `${stat.dev}:${stat.ino}`;
  } catch {
    return undefined;
  }
}

export class SocketKeeper {
  private readonly socketIds = new Map<KeptSocket, string | undefined>();
  /** Listening sockets made by re-creation; the server's own first one is not among them. */
  private readonly extra = new Map<KeptSocket, net.Server>();
  /** The identity of DIR/devapollo that each instance had mounted when it started (null: none mounted). */
  private readonly mounted = new WeakMap<Instance, string | null>();
  private directoryId: string | undefined;
  private count = 0;
  private lastAt: string | null = null;
  private last: string | null = null;
  private timer: NodeJS.Timeout | undefined;
  /** Repairs that failed, by what failed: logged once each until one succeeds again. */
  private readonly failing = new Set<string>();
  /** Accept failures of re-created sockets (out of descriptors), as for the first ones. */
  private readonly acceptFailures = new RateLimitedLog();

  constructor(
    private readonly options: {
      readonly directory: string;
      readonly directoryMode: number;
      readonly sockets: readonly KeptSocket[];
      readonly manager: ContainerManager;
      readonly logger: Logger;
      readonly intervalMs?: number;
    },
  ) {
    options.manager.on('event', (event, container) => {
      if (event.type === 'lifecycle' && event.metadata['action'] === 'started' && container.instance !== undefined) {
        this.remember(container.instance);
      }
    });
  }

  /**
   * Starts keeping. The containers already running were re-adopted from an earlier
   * daemon; `directoryWasMissing` says they cannot have the directory there is now.
   */
  start(directoryWasMissing: boolean): void {
    this.directoryId = identityOf(this.options.directory, 'directory');
    for (const container of this.options.manager.list()) {
      const instance = container.instance;
      if (instance?.running !== true) continue;
      if (directoryWasMissing) this.mounted.set(instance, container.record.config['security.devapollo'] === 'false' ? null : 'lost');
      else this.remember(instance);
    }
    if (directoryWasMissing) {
      const stranded = this.stranded().length;
      this.repaired(`${this.options.directory} missing at start`, { stranded_containers: stranded });
    }
    for (const socket of this.options.sockets) this.socketIds.set(socket, identityOf(socket.path, 'socket'));
    // An inherited socket whose path went missing before this start (or a first bind
    // that did not leave a socket there) is repaired at once, not in a second.
    this.check();
    this.timer = setInterval(() => this.check(), this.options.intervalMs ?? 1000);
    this.timer.unref();
  }

  /** Looks at the directory and every socket path, and re-creates what is missing or replaced. */
  check(): void {
    const { directory, directoryMode } = this.options;
    const directoryNow = identityOf(directory, 'directory');
    if (directoryNow === undefined || directoryNow !== this.directoryId) {
      const what = directoryNow === undefined ? 'missing' : 'replaced';
      const made = this.attempt('directory', () => {
        if (directoryNow === undefined) {
          // Something else under the name (a file, a symlink) goes; a missing parent (DIR itself) is not made here.
          fs.rmSync(directory, { force: true });
          fs.mkdirSync(directory, { mode: directoryMode });
        }
        // Synchronous from mkdir on: no container is launched before the mode is right.
        fs.chmodSync(directory, directoryMode);
        fs.chownSync(directory, 0, 0);
      });
      if (!made) return;
      this.directoryId = identityOf(directory, 'directory');
      this.repaired(`${directory} ${what}`, { stranded_containers: this.stranded().length });
    }
    for (const socket of this.options.sockets) {
      // DIR itself gone is more than a lost socket (the state went with it): nothing to bind in.
      if (identityOf(path.dirname(socket.path), 'directory') === undefined) continue;
      const now = identityOf(socket.path, 'socket');
      if (now !== undefined && now === this.socketIds.get(socket)) continue;
      if (now !== undefined && socket.inherited === true) {
        this.socketIds.set(socket, now);
        this.options.logger.warn('a socket from the service manager was replaced by another socket; left as it is', { path: socket.path });
        continue;
      }
      this.rebind(socket, now === undefined && !fs.existsSync(socket.path) ? 'missing' : 'replaced');
    }
  }

  /** What `status` shows. */
  repairs(): SocketRepairs {
    return { count: this.count, last_at: this.lastAt, last: this.last, stranded_containers: this.stranded() };
  }

  close(): void {
    clearInterval(this.timer);
    for (const server of this.extra.values()) server.close();
    this.extra.clear();
  }

  private remember(instance: Instance): void {
    const off = instance.container.record.config['security.devapollo'] === 'false';
    this.mounted.set(instance, off ? null : (this.directoryId ?? identityOf(this.options.directory, 'directory') ?? 'lost'));
  }

  private stranded(): string[] {
    const names: string[] = [];
    for (const container of this.options.manager.list()) {
      const instance = container.instance;
      if (instance?.running !== true) continue;
      const had = this.mounted.get(instance);
      if (had !== undefined && had !== null && had !== this.directoryId) names.push(container.name);
    }
    return names;
  }

  /** Binds a new listening socket at the path, mode set from the first instant; its connections go to the server. */
  private rebind(socket: KeptSocket, what: 'missing' | 'replaced'): void {
    const made = this.attempt(`socket ${socket.path}`, () => {
      // A listening socket unlinks its path when it closes (libuv), whatever is there by
      // then: the one made at the last re-creation is closed before the path is bound again.
      this.extra.get(socket)?.close();
      this.extra.delete(socket);
      fs.rmSync(socket.path, { force: true });
      const listener = net.createServer((connection) => socket.server.emit('connection', connection));
      // Once listening, 'error' means an accept failed: logged (rate-limited), still listening.
      listener.on('error', (error) =>
        this.acceptFailures.attempt((suppressed) =>
          this.options.logger.error('accept failed', {
            api: socket.api,
            path: socket.path,
            error: String(error),
            suppressed: suppressed || undefined,
          }),
        ),
      );
      const previous = process.umask(0o777 & ~socket.mode);
      try {
        // The bind is done within listen(), synchronously: the umask is ours only meanwhile.
        listener.listen({ path: socket.path, backlog: 4096 });
      } finally {
        process.umask(previous);
      }
      fs.chmodSync(socket.path, socket.mode);
      if (socket.gid !== undefined) fs.chownSync(socket.path, 0, socket.gid);
      this.extra.set(socket, listener);
    });
    if (!made) return;
    this.socketIds.set(socket, identityOf(socket.path, 'socket'));
    this.repaired(`${socket.path} ${what}`, { api: socket.api });
  }

  /** Runs a repair; a failure is logged once until that repair works again. */
  private attempt(what: string, repair: () => void): boolean {
    try {
      repair();
      this.failing.delete(what);
      return true;
    } catch (error) {
      if (!this.failing.has(what)) {
        this.failing.add(what);
        this.options.logger.error('cannot re-create a missing socket path', { what, error: String(error) });
      }
      return false;
    }
  }

  private repaired(what: string, fields: Readonly<Record<string, string | number>>): void {
    this.count++;
    this.lastAt = new Date().toISOString();
    this.last = what;
    this.options.logger.warn('re-created a socket path that went missing or was replaced', { what, repairs: this.count, ...fields });
  }
}
