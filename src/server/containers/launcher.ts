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
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Readable, Writable } from 'node:stream';
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
 * Runs the launcher; `register(pid)` is called once the init is ready and must make the
 * daemon serve it. Resolves with the init's host pid once the command (if any) runs.
 * When it throws after `register` succeeded (the command could not be executed, the
 * init died), the caller must undo the registration; the launcher kills the init too.
 */
export async function launchContainer(spec: LaunchSpec, register: (pid: number) => Promise<void>): Promise<number> {
  const args = [launcherScript, '--name', spec.name, '--stage', spec.stageDir, '--log', spec.logFile, '--max-log-size', String(spec.maxLogBytes)];
  if (spec.guestDir !== null) args.push('--devapollo', spec.guestDir);
  if (spec.lxdCompat) args.push('--lxd-compat');
  if (!spec.privileged) {
    args.push('--uid-map', `${spec.uids.base}:${spec.uids.count}`, '--gid-map', `${spec.gids.base}:${spec.gids.count}`);
  }
  args.push('--', ...(spec.command ?? []));
  openLog(spec.logFile);

  const child = spawn('perl', args, {
    detached: true,
    stdio: ['ignore', 'ignore', 'ignore', 'pipe'],
    env: { ...containerEnvironment, HOSTNAME: spec.name },
    cwd: '/',
  });
  // Listened for first: a spawn that fails (out of descriptors, no perl) says so with an
  // 'error' event on the next tick, and an 'error' nobody listens for ends the daemon.
  const spawnFailed = new Promise<never>((_, reject) => child.on('error', (error) => reject(cannotStart(spec.name, error))));
  // Raced below; an error after the race is over must not become an unhandled rejection.
  spawnFailed.catch(() => undefined);
  // Without descriptors for its pipes, Node gives up before it sets up any stdio.
  const control = (child.stdio?.[3] ?? null) as (Readable & Writable) | null;
  if (control === null) {
    await spawnFailed;
    throw new ApolloError('internal', 'the launcher has no control channel');
  }

  // The launcher itself exits as soon as it has forked the monitor; its status matters
  // only when the hand-shake ends without a word (it died on its arguments).
  const exited = new Promise<number>((resolve) => child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1))));
  // A write to a launcher that has just exited fails with EPIPE: the handshake and the
  // exit code already tell what happened, so the stream's error is not news.
  control.on('error', () => undefined);

  let timer: NodeJS.Timeout | undefined;
  const handshake = (async () => {
    let pid = 0;
    let registered = false;
    // The channel stays open until the set-up process has said whether the command runs.
    for await (const line of readLines(control)) {
      if (line.startsWith('pid ')) {
        pid = Number(line.slice(4));
      } else if (line === 'ready' && !registered) {
        if (!(pid > 0)) throw new ApolloError('internal', 'the launcher reported no pid');
        await register(pid);
        registered = true;
        control.end('go\n');
      } else if (line === 'running' && registered) {
        return pid;
      } else if (line.startsWith('error ')) {
        // After "go" the only error is the command's own: the request named a command
        // that cannot be executed.
        throw new ApolloError(registered ? 'bad-request' : 'internal', `cannot start container ${spec.name}: ${line.slice(6)}`);
      }
    }
    if (registered) throw new ApolloError('internal', `cannot start container ${spec.name}: its init exited before it ran its command`);
    const code = await exited;
    throw new ApolloError('internal', `cannot start container ${spec.name}: the launcher exited with status ${code}`);
  })();
  handshake.catch(() => undefined);
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new ApolloError('internal', `container ${spec.name} did not start within ${handshakeTimeoutMs / 1000} s`)),
      handshakeTimeoutMs,
    );
  });

  try {
    return await Promise.race([handshake, spawnFailed, timeout]);
  } catch (error) {
    // Closing the channel makes the set-up kill the half-built container.
    control.destroy();
    if (child.exitCode === null && child.pid !== undefined) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

/** Why the launcher could not even be run: out of descriptors is worth a retry (503). */
function cannotStart(name: string, error: unknown): ApolloError {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'EMFILE' || code === 'ENFILE') {
    return new ApolloError('unavailable', `cannot start container ${name}: the daemon is out of file descriptors; try again`, { cause: error });
  }
  return new ApolloError('internal', `cannot start container ${name}: ${(error as Error).message}`, { cause: error });
}
