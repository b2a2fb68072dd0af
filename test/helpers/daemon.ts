/**
 * A real daemon in a temporary DIR, driven through the real CLIs, and torn down with
 * every container it started, even when a test fails or the daemon died.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const hostCli = path.join(repoRoot, 'bin/devapollo.js');
export const guestBundle = path.join(repoRoot, 'dist/devapollo-guest.cjs');

export interface RunResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: Buffer;
  readonly stderr: string;
  /** stdout as UTF-8. */
  readonly out: string;
}

export interface RunOptions {
  readonly input?: string | Buffer;
  readonly env?: NodeJS.ProcessEnv;
  /** A hang guard, not a deadline: generous by default. */
  readonly timeoutMs?: number;
  readonly cwd?: string;
}

/** Runs a command to completion, capturing stdout bytes and stderr. */
export function run(command: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      env: options.env ?? process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
      ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => stdout.push(c));
    child.stderr.on('data', (c: Buffer) => stderr.push(c));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const out = Buffer.concat(stdout);
      resolve({ code, signal, stdout: out, out: out.toString('utf8'), stderr: Buffer.concat(stderr).toString('utf8') });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.input);
  });
}

let guestCopy: string | undefined;

/**
 * The guest CLI where a container's unprivileged root can read it. The checkout may sit
 * in a directory only host root can enter (a clean clone under `mktemp -d`), so the test
 * copies the single-file bundle into a world-readable temporary directory.
 */
export function guestTool(): string {
  if (guestCopy === undefined) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'devapollo-guest-'));
    fs.chmodSync(dir, 0o755);
    guestCopy = path.join(dir, 'devapollo-guest.cjs');
    fs.copyFileSync(guestBundle, guestCopy);
    fs.chmodSync(guestCopy, 0o755);
    process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  }
  return guestCopy;
}

export interface LaunchOptions {
  readonly config?: Readonly<Record<string, string>>;
  readonly privileged?: boolean;
  readonly command?: readonly string[];
}

/** Daemons not yet destroyed: torn down even when the test runner kills this process. */
const live = new Set<TestDaemon>();

function tearDownAll(): void {
  for (const daemon of live) daemon.destroySync();
}
process.once('exit', tearDownAll);
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
  process.once(signal, () => {
    tearDownAll();
    process.exit(128 + (signal === 'SIGINT' ? 2 : signal === 'SIGHUP' ? 1 : 15));
  });
}

export class TestDaemon {
  private process: ChildProcess | undefined;
  private log = '';
  private exited: Promise<void> = Promise.resolve();

  private constructor(
    readonly dir: string,
    /** The daemon's environment, also when it is spawned again (default: the test's). */
    private readonly env?: NodeJS.ProcessEnv,
    /** Descriptors the daemon inherits from 3 on (a test's leak), at every start. */
    private readonly inherit: readonly ('ignore' | number)[] = [],
    /** The host CLI that serves and that `cli()` runs (default: the checkout's; an installed copy's). */
    private readonly hostCli: string = path.join(repoRoot, 'bin/devapollo.js'),
  ) {}

  /** Starts a daemon on a fresh temporary DIR (or the given one) and waits until it answers. */
  static async start(
    options: {
      dir?: string;
      args?: readonly string[];
      env?: NodeJS.ProcessEnv;
      inherit?: readonly ('ignore' | number)[];
      cli?: string;
    } = {},
  ): Promise<TestDaemon> {
    const dir = options.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'devapollo-test-'));
    const daemon = new TestDaemon(dir, options.env, options.inherit, options.cli);
    live.add(daemon);
    await daemon.spawn(options.args ?? []);
    return daemon;
  }

  get pid(): number | undefined {
    return this.process?.pid;
  }

  /** Everything the daemon logged so far. */
  get stderr(): string {
    return this.log;
  }

  /** Starts the daemon process (again) and waits for its admin socket to answer. */
  async spawn(args: readonly string[] = []): Promise<void> {
    const child = spawn(process.execPath, [this.hostCli, 'serve', '--dir', this.dir, ...args], {
      stdio: ['ignore', 'ignore', 'pipe', ...this.inherit],
      detached: true,
      env: this.env ?? process.env,
    });
    this.process = child;
    const from = this.log.length;
    child.stderr?.on('data', (c: Buffer) => (this.log += c.toString('utf8')));
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`the daemon exited with ${child.exitCode}:\n${this.log}`);
      // Started: it said so, or (with a quieter log level) its admin socket answers as this pid.
      if (this.log.indexOf('devapollo started', from) !== -1 || (await this.statusPid()) === child.pid) return;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    throw new Error(`the daemon did not start:\n${this.log}`);
  }

  /** The pid in the admin API's status, or undefined when nobody answers. */
  private statusPid(): Promise<number | undefined> {
    return new Promise((resolve) => {
      const req = http.get({ socketPath: path.join(this.dir, 'unix.socket'), path: '/1.0' }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString('utf8')));
        res.on('end', () => {
          try {
            resolve((JSON.parse(body) as { pid?: number }).pid);
          } catch {
            resolve(undefined);
          }
        });
      });
      req.on('error', () => resolve(undefined));
    });
  }

  /** Sends a signal to the daemon (or its whole process group) and waits for it to exit. */
  async signal(signal: NodeJS.Signals, options: { group?: boolean } = {}): Promise<void> {
    const pid = this.process?.pid;
    if (pid === undefined || this.process?.exitCode !== null) return;
    try {
      process.kill(options.group ? -pid : pid, signal);
    } catch {
      // Already gone.
    }
    await this.exited;
  }

  cli(args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    return run(process.execPath, [this.hostCli, '--dir', this.dir, ...args], options);
  }

  async launch(name: string, options: LaunchOptions = {}): Promise<void> {
    const args = ['launch', name];
    for (const [key, value] of Object.entries(options.config ?? {})) args.push('-c', `${key}=${value}`);
    if (options.privileged) args.push('--privileged');
    if (options.command) args.push('--', ...options.command);
    const result = await this.cli(args);
    if (result.code !== 0) throw new Error(`launch ${name} failed (${result.code}): ${result.stderr}`);
  }

  exec(name: string, command: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    return this.cli(['exec', name, '--', ...command], options);
  }

  /** Runs devapollo-guest inside the container. */
  guest(name: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    return this.exec(name, [process.execPath, guestTool(), ...args], options);
  }

  /** curl on /dev/apollo/sock inside the container; `-w` appends the status on its own line. */
  curl(name: string, target: string, extra: readonly string[] = []): Promise<RunResult> {
    return this.exec(name, ['curl', '-sS', '--unix-socket', '/dev/apollo/sock', ...extra, `http://apollo${target}`]);
  }

  /** Every container's init pid that still runs, from the state files (works without a daemon). */
  runningInits(): number[] {
    const pids: number[] = [];
    const dir = path.join(this.dir, 'containers');
    for (const entry of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
      if (!entry.endsWith('.json')) continue;
      try {
        const record = JSON.parse(fs.readFileSync(path.join(dir, entry), 'utf8')) as {
          init: { pid: number; start_time: string } | null;
        };
        if (record.init !== null && startTimeOf(record.init.pid) === record.init.start_time) pids.push(record.init.pid);
      } catch {
        // A test may have corrupted it on purpose.
      }
    }
    return pids;
  }

  /**
   * Inits whose mount namespace holds this DIR's guest directory (at /dev/apollo): found
   * even when a test corrupted the state files that name them.
   */
  private initsByMount(): number[] {
    const guestDir = ` ${path.join(this.dir, 'devapollo')} `;
    const pids: number[] = [];
    for (const entry of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const nspid =
          /^NSpid:\s+(.*)$/m
            .exec(fs.readFileSync(`/proc/${entry}/status`, 'utf8'))?.[1]
            ?.trim()
            .split(/\s+/) ?? [];
        if (nspid.length < 2 || nspid[nspid.length - 1] !== '1') continue;
        if (fs.readFileSync(`/proc/${entry}/mountinfo`, 'utf8').includes(guestDir)) pids.push(Number(entry));
      } catch {
        // Gone, or not ours to read.
      }
    }
    return pids;
  }

  /** Kills every container, stops the daemon and removes DIR. */
  async destroy(): Promise<void> {
    this.killContainers();
    await this.signal('SIGKILL');
    fs.rmSync(this.dir, { recursive: true, force: true });
    live.delete(this);
  }

  /** The same, synchronously, for a test process that is being killed. */
  destroySync(): void {
    this.killContainers();
    try {
      if (this.process?.pid !== undefined && this.process.exitCode === null) process.kill(this.process.pid, 'SIGKILL');
    } catch {
      // Gone already.
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
    live.delete(this);
  }

  private killContainers(): void {
    for (const pid of new Set([...this.runningInits(), ...this.initsByMount()])) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Gone already.
      }
    }
  }
}

/**
 * Field 22 of /proc/PID/stat, or undefined when the process is gone or has exited (a
 * zombie waiting for the host's init to reap it counts as gone).
 */
export function startTimeOf(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z' || fields[0] === 'X') return undefined;
    return fields[19];
  } catch {
    return undefined;
  }
}

/** Waits until `check` is true, polling; throws after the hang guard. */
export async function eventually(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`timed out waiting until ${what}`);
}

/** Writes a script where a container's root can read it (beside the guest tool); returns its path. */
export function guestScript(name: string, source: string): string {
  const file = path.join(path.dirname(guestTool()), name);
  fs.writeFileSync(file, source, { mode: 0o644 });
  return file;
}

/** A daemon's resident set size in bytes, from /proc. */
export function rssOf(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0) * 1024;
}
