/**
 * Starts a container through libexec/container.pl and walks it through the hand-shake:
 * the launcher reports the init's host pid, then "ready" once /dev, /proc and the
 * hostname are in place; the daemon registers the init (pidfd, namespace, state on disk)
 * and only then answers "go", so the container's first request is already served; the
 * launcher then says "running" once the command runs (or the init idles), or why the
 * command could not be executed.
 *
 * The container is detached from the daemon from the first instant: its own session, its
 * output written by its own monitor process (container.pl) to a capped log under DIR,
 * nothing on a pipe to the daemon, and the process the daemon spawns exits at once, so
 * the daemon holds nothing per container but the init's pidfd. Stopping, killing or
 * restarting the daemon never stops a container.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { ApolloError } from '../../shared/errors.js';
import { readLines } from '../../shared/lines.js';
import type { IdRange } from './idmap.js';

const launcherScript = fileURLToPath(new URL('../../../libexec/container.pl', import.meta.url));

export interface LaunchSpec {
  readonly name: string;
  readonly privileged: boolean;
  readonly command: readonly string[] | null;
  /** Bind-mount this directory (DIR/devapollo) at /dev/apollo; null: no socket at all. */
  readonly guestDir: string | null;
  readonly lxdCompat: boolean;
  readonly stageDir: string;
  /** DIR/logs/NAME.log; the monitor rotates it to NAME.log.1 at `maxLogBytes`. */
  readonly logFile: string;
  readonly maxLogBytes: number;
  readonly uids: IdRange;
  readonly gids: IdRange;
}

/** PATH inside containers, for their init and for `exec`. */
export const containerPath = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** The environment every container starts with; the host's is not leaked into it. */
const containerEnvironment = {
  PATH: containerPath,
  HOME: '/root',
  LANG: 'C.UTF-8',
  container: 'devapollo',
};

const handshakeTimeoutMs = 30_000;

/**
 * Makes the container's log (0600, kept if it is there: a restarted container appends)
 * before the monitor runs: the monitor only ever opens a log that exists, so one removed
 * with its container (a launch that failed, a delete) is never made again behind the
 * daemon's back. Best effort: a log that cannot be made only costs the output.
 */
function openLog(file: string): void {
  try {
    fs.closeSync(fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW, 0o600));
  } catch {
    // The monitor finds no log and drops the output.
  }
}

/**
 * One launch, walked through its hand-shake by the caller:
 *
 *     const launch = LaunchHandshake.start(spec);
 *     const pid = await launch.ready;   // the init is ready: pin it, register it
 *     await launch.go();                // now served: let it run its command
 *
 * and `abort()` on any failure in between (the launcher then kills the half-built
 * container; after `go` the caller must also undo its registration and kill the init).
 * Everything is bounded by one time limit from the start.
 */
export class LaunchHandshake {
  /** The init's host pid, once it is ready to be registered; the launcher keeps it unreaped until `go`. */
  readonly ready: Promise<number>;
  private readonly done: Promise<void>;
  private readonly control: (Readable & Writable) | null;
  private readonly child: ChildProcess;
  private allowGo!: () => void;
  private readonly goAllowed = new Promise<void>((resolve) => (this.allowGo = resolve));
  private timer: NodeJS.Timeout | undefined;
  private ended = false;

  private constructor(private readonly spec: LaunchSpec) {
    openLog(spec.logFile);
    this.child = spawn('perl', launcherArguments(spec), {
      detached: true,
      stdio: ['ignore', 'ignore', 'ignore', 'pipe'],
      env: { ...containerEnvironment, HOSTNAME: spec.name },
      cwd: '/',
    });
    // Listened for first: a spawn that fails (out of descriptors, no perl) says so with an
    // 'error' event on the next tick, and an 'error' nobody listens for ends the daemon.
    const spawnFailed = new Promise<never>((_, reject) => this.child.on('error', (error) => reject(cannotStart(spec.name, error))));
    // Without descriptors for its pipes, Node gives up before it sets up any stdio.
    this.control = (this.child.stdio?.[3] ?? null) as (Readable & Writable) | null;
    const timeout = new Promise<never>((_, reject) => {
      this.timer = setTimeout(
        () => reject(new ApolloError('internal', `container ${spec.name} did not start within ${handshakeTimeoutMs / 1000} s`)),
        handshakeTimeoutMs,
      );
    });
    let announceReady!: (pid: number) => void;
    const readyLine = new Promise<number>((resolve) => (announceReady = resolve));
    const dialogue =
      this.control === null
        ? spawnFailed.then(() => Promise.reject(new ApolloError('internal', 'the launcher has no control channel')))
        : this.converse(this.control, announceReady);
    // Whichever comes first ends the launch: the dialogue's end, a failed spawn, the limit.
    this.done = Promise.race([dialogue, spawnFailed, timeout]).then(
      () => this.finish(false),
      (error: unknown) => {
        this.finish(true);
        throw error;
      },
    );
    this.ready = Promise.race([
      readyLine,
      this.done.then(() => Promise.reject(new ApolloError('internal', `container ${spec.name} did not register`))),
    ]);
    // Each is awaited by the caller only at its step; a failure before then is not unhandled.
    this.ready.catch(() => undefined);
    this.done.catch(() => undefined);
  }

  /** Runs the launcher for `spec`. */
  static start(spec: LaunchSpec): LaunchHandshake {
    return new LaunchHandshake(spec);
  }

  /** Tells the launcher the init is served; resolves once its command runs (or the init idles). */
  go(): Promise<void> {
    this.allowGo();
    return this.done;
  }

  /** Ends a launch that will not go on: closing the channel makes the set-up kill the container. */
  abort(): void {
    this.finish(true);
  }

  /** The launcher's lines, in order, until the command runs; throws why it did not. */
  private async converse(control: Readable & Writable, announceReady: (pid: number) => void): Promise<void> {
    // A write to a launcher that has just exited fails with EPIPE: the handshake and the
    // exit code already tell what happened, so the stream's error is not news.
    control.on('error', () => undefined);
    // The launcher itself exits as soon as it has forked the monitor; its status matters
    // only when the hand-shake ends without a word (it died on its arguments).
    const exited = new Promise<number>((resolve) => this.child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1))));
    let pid = 0;
    let registered = false;
    // The channel stays open until the set-up process has said whether the command runs.
    for await (const line of readLines(control)) {
      if (line.startsWith('pid ')) {
        pid = Number(line.slice(4));
      } else if (line === 'ready' && !registered) {
        if (!(pid > 0)) throw new ApolloError('internal', 'the launcher reported no pid');
        announceReady(pid);
        await this.goAllowed;
        // Aborted instead: the channel is closed, nothing more is said.
        if (this.ended) return;
        registered = true;
        control.end('go\n');
      } else if (line === 'running' && registered) {
        return;
      } else if (line.startsWith('error ')) {
        // After "go" the only error is the command's own: the request named a command
        // that cannot be executed.
        throw new ApolloError(registered ? 'bad-request' : 'internal', `cannot start container ${this.spec.name}: ${line.slice(6)}`);
      }
    }
    if (registered)
      throw new ApolloError('internal', `cannot start container ${this.spec.name}: its init exited before it ran its command`);
    const code = await exited;
    throw new ApolloError('internal', `cannot start container ${this.spec.name}: the launcher exited with status ${code}`);
  }

  /** Stops the clock; on failure closes the channel and kills the launcher's process group. */
  private finish(failed: boolean): void {
    clearTimeout(this.timer);
    if (this.ended) return;
    this.ended = true;
    if (!failed) return;
    this.allowGo();
    this.control?.destroy();
    if (this.child.exitCode === null && this.child.pid !== undefined) {
      try {
        process.kill(-this.child.pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
  }
}

function launcherArguments(spec: LaunchSpec): string[] {
  const args = [
    launcherScript,
    '--name',
    spec.name,
    '--stage',
    spec.stageDir,
    '--log',
    spec.logFile,
    '--max-log-size',
    String(spec.maxLogBytes),
  ];
  if (spec.guestDir !== null) args.push('--devapollo', spec.guestDir);
  if (spec.lxdCompat) args.push('--lxd-compat');
  if (!spec.privileged) {
    args.push('--uid-map', `${spec.uids.base}:${spec.uids.count}`, '--gid-map', `${spec.gids.base}:${spec.gids.count}`);
  }
  args.push('--', ...(spec.command ?? []));
  return args;
}

/** Why the launcher could not even be run: out of descriptors is worth a retry (503). */
function cannotStart(name: string, error: unknown): ApolloError {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'EMFILE' || code === 'ENFILE') {
    return new ApolloError('unavailable', `cannot start container ${name}: the daemon is out of file descriptors; try again`, {
      cause: error,
    });
  }
  return new ApolloError('internal', `cannot start container ${name}: ${(error as Error).message}`, { cause: error });
}
