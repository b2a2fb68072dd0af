import path from 'node:path';

/** Where a daemon keeps its sockets and state (README.md, "Files"). */
export interface DaemonPaths {
  readonly dir: string;
  /** Bind-mounted read-only at /dev/apollo in every container; never replaced. */
  readonly guestDir: string;
  readonly guestSocket: string;
  readonly adminSocket: string;
  readonly lockFile: string;
  readonly containersDir: string;
  readonly logsDir: string;
  /** The identity signing keys (0700), and their public half for a web server to publish (0755). */
  readonly identityDir: string;
  readonly publicDir: string;
  /** An empty directory the launcher mounts a container's /dev on while building it. */
  readonly stageDir: string;
}

export const defaultDir = '/var/lib/apollo';

/** `--dir` wins, then APOLLO_DIR, then the default. */
export function resolveDir(flag: string | undefined): string {
  return path.resolve(flag ?? process.env['APOLLO_DIR'] ?? defaultDir);
}

export function daemonPaths(dir: string): DaemonPaths {
  const guestDir = path.join(dir, 'devapollo');
  return {
    dir,
    guestDir,
    guestSocket: path.join(guestDir, 'sock'),
    adminSocket: path.join(dir, 'unix.socket'),
    lockFile: path.join(dir, 'daemon.lock'),
    containersDir: path.join(dir, 'containers'),
    logsDir: path.join(dir, 'logs'),
    stageDir: path.join(dir, 'stage'),
    identityDir: path.join(dir, 'identity'),
    publicDir: path.join(dir, 'public'),
  };
}
