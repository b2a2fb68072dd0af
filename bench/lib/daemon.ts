/**
 * A real daemon in a temporary DIR for a benchmark, driven through its admin API (the
 * host CLI's own protocol, without a Node start-up per call), with containers entered
 * through libexec/exec.pl exactly as `devapollo exec` does. Teardown kills every
 * container it launched, the daemon, and removes DIR: at the end of the benchmark, on
 * failure, and on interruption.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execEnvironment } from '../../dist/server/cli/exec-session.js';
import type { ContainerWire, StatusWire } from '../../dist/shared/wire.js';
import { Agent } from './agent.js';
import { onCleanup } from './cleanup.js';
import { startTimeOf } from './proc.js';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const hostCli = path.join(repoRoot, 'bin/devapollo.js');
const execHelper = path.join(repoRoot, 'libexec/exec.pl');

let serveHelp: string | undefined;

/** Whether this build's `serve` has an option (the request rate limit came later). */
function serveHas(option: string): boolean {
  serveHelp ??= execFileSync(process.execPath, [hostCli, 'serve', '--help'], { encoding: 'utf8' });
  return serveHelp.includes(option);
}

/**
 * The node flags on bin/devapollo.js's `#!/usr/bin/env -S node ...` line: the daemon runs
 * with them when started as users start it (the executable, npm start, the systemd unit),
 * so the benchmarks start its node with them too.
 */
function daemonNodeFlags(): string[] {
  const first = fs.readFileSync(hostCli, 'utf8').split('\n', 1)[0] ?? '';
  const words = first
    .replace(/^#!\S*env\s+(-S\s+)?/, '')
    .split(/\s+/)
    .filter(Boolean);
  return words.slice(1).filter((w) => w.startsWith('--'));
}

export interface AdminError extends Error {
  status: number;
}

export class BenchDaemon {
  private child: ChildProcess | undefined;
  private log = '';
  private exited: Promise<void> = Promise.resolve();
  /** Init pid and start time of every container launched, for exec and teardown. */
  readonly inits = new Map<string, { pid: number; startTime: string }>();
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  readonly destroy: () => void;

  private constructor(
    readonly dir: string,
    /** Extra flags for the daemon's node (e.g. --cpu-prof for profiling). */
    private readonly nodeArgs: readonly string[],
    /** A file for the daemon's standard output (V8's --trace-gc writes there), else none. */
    private readonly stdoutFile: string | undefined,
    /** Keep the request and identity token rates at their defaults (else off: the daemon, not its limiter). */
    private readonly shippedLimits: boolean,
  ) {
    this.destroy = onCleanup(() => this.teardown());
  }

  get adminSocket(): string {
    return path.join(this.dir, 'unix.socket');
  }

  get guestSocket(): string {
    return path.join(this.dir, 'devapollo/sock');
  }

  get pid(): number {
    const pid = this.child?.pid;
    if (pid === undefined) throw new Error('the daemon is not running');
    return pid;
  }

  /** A daemon on a fresh DIR, answering on its admin socket. */
  static async start(options: { nodeArgs?: readonly string[]; stdoutFile?: string; shippedLimits?: boolean } = {}): Promise<BenchDaemon> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'devapollo-bench-'));
    const daemon = new BenchDaemon(dir, options.nodeArgs ?? [], options.stdoutFile, options.shippedLimits === true);
    await daemon.spawn();
    return daemon;
  }

  /**
   * Starts the daemon process (again); resolves once the admin API answers, that is once
   * every running container has been re-adopted (the sockets open after that).
   */
  async spawn(): Promise<void> {
    const args = [...daemonNodeFlags(), ...this.nodeArgs, hostCli, 'serve', '--dir', this.dir, '--log-level', 'warn'];
    // Benchmarks push one container far past any sane rate: measure the daemon, not its limiter.
    if (serveHas('--rate-limit') && !this.shippedLimits) args.push('--rate-limit', '0');
    if (serveHas('--guest-write-rate') && !this.shippedLimits) args.push('--guest-write-rate', '0');
    if (serveHas('--max-container-connections')) args.push('--max-container-connections', '4096');
    if (serveHas('--max-connections')) args.push('--max-connections', '16384');
    if (serveHas('--token-rate') && !this.shippedLimits) args.push('--token-rate', '0');
    const stdout = this.stdoutFile === undefined ? 'ignore' : fs.openSync(this.stdoutFile, 'a');
    const child = spawn(process.execPath, args, { stdio: ['ignore', stdout, 'pipe'], detached: true });
    if (typeof stdout === 'number') fs.closeSync(stdout);
    this.child = child;
    child.stderr?.on('data', (c: Buffer) => {
      if (this.log.length < 256 * 1024) this.log += c.toString('utf8');
    });
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    const deadline = Date.now() + 600_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`the daemon exited with ${child.exitCode}:\n${this.log}`);
      try {
        await this.status();
        return;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    }
    throw new Error(`the daemon did not start:\n${this.log}`);
  }

  /** SIGTERM and wait for the daemon to exit (containers keep running). */
  async stop(): Promise<void> {
    if (this.child === undefined || this.child.exitCode !== null) return;
    this.agent.destroy();
    this.child.kill('SIGTERM');
    await this.exited;
  }

  /** One admin API call; non-2xx answers throw with the daemon's message. */
  admin<T>(method: string, target: string, body?: unknown): Promise<T> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          socketPath: this.adminSocket,
          method,
          path: target,
          agent: this.agent,
          headers: payload ? { 'Content-Type': 'application/json', 'Content-Length': payload.length } : {},
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.once('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            if ((res.statusCode ?? 0) >= 300) {
              reject(Object.assign(new Error(`${method} ${target}: ${res.statusCode} ${text}`), { status: res.statusCode }));
              return;
            }
            resolve((text === '' ? undefined : JSON.parse(text)) as T);
          });
          res.on('error', reject);
        },
      );
      // `on`, not `once`: a connection the daemon resets may report more than one error.
      req.on('error', reject);
      req.end(payload);
    });
  }

  status(): Promise<StatusWire> {
    return this.admin('GET', '/1.0');
  }

  /** Launches a container through the admin API; returns once it runs and is served. */
  async launch(name: string, options: { config?: Record<string, string>; privileged?: boolean } = {}): Promise<ContainerWire> {
    const container = await this.admin<ContainerWire>('POST', '/1.0/containers', {
      name,
      config: options.config ?? {},
      privileged: options.privileged === true,
      command: null,
    });
    if (container.start_time === null) {
      const said = this.log.trim().split('\n').slice(-3).join(' / ');
      throw new Error(`${name} was created but its init had already exited${said === '' ? '' : ` (the daemon said: ${said})`}`);
    }
    this.inits.set(name, { pid: container.pid, startTime: container.start_time });
    return container;
  }

  setConfig(name: string, changes: Record<string, string | null>): Promise<ContainerWire> {
    return this.admin('PATCH', `/1.0/containers/${name}/config`, changes);
  }

  /**
   * Runs a command inside a container as `devapollo exec` does (pipes, the environment
   * exec gives, cwd /), as an Agent.
   */
  spawnIn(name: string, label: string, command: readonly string[]): Agent {
    const init = this.inits.get(name);
    if (init === undefined) throw new Error(`no container ${name}`);
    const environment = execEnvironment(process.env, []);
    const strings = [...[...environment].map(([key, value]) => `${key}=${value}`), ...command];
    const control = `${environment.size} ${command.length}\n${strings.map((s) => `${s}\0`).join('')}`;
    const args = [execHelper, '--pid', String(init.pid), '--start-time', init.startTime, '--cwd', '/', '--mode', 'pipe'];
    return new Agent(label, 'perl', args, { env: { PATH: '/usr/bin:/bin' }, control });
  }

  /** Kills every container launched here, then the daemon, and removes DIR. */
  private teardown(): void {
    this.agent.destroy();
    if (this.child?.pid !== undefined && this.child.exitCode === null) {
      try {
        process.kill(this.child.pid, 'SIGKILL');
      } catch {
        // Gone already.
      }
    }
    const pids: number[] = [];
    for (const { pid, startTime } of this.inits.values()) {
      if (startTimeOf(pid) !== startTime) continue;
      try {
        process.kill(pid, 'SIGKILL');
        pids.push(pid);
      } catch {
        // Gone already.
      }
    }
    // Killing an init tears its whole pid namespace down; wait (bounded) so that the next
    // benchmark does not run while the kernel reclaims thousands of namespaces.
    const deadline = Date.now() + 120_000;
    let left = pids;
    while (left.length > 0 && Date.now() < deadline) {
      left = left.filter((pid) => fs.existsSync(`/proc/${pid}`) && startTimeOf(pid) !== undefined);
      if (left.length > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Launches `names` with at most `concurrency` launches in flight. A launch that fails is
 * deleted and tried once more (other work on the machine may get in the way); a second
 * failure stops the launching. `retried` lists the first failures.
 */
export async function launchMany(
  daemon: BenchDaemon,
  names: readonly string[],
  concurrency: number,
  configOf: (name: string) => Record<string, string>,
): Promise<{ launched: number; error: string | undefined; retried: string[] }> {
  let next = 0;
  let launched = 0;
  let error: string | undefined;
  const retried: string[] = [];
  const worker = async () => {
    while (error === undefined && next < names.length) {
      const name = names[next++] as string;
      for (let attempt = 1; ; attempt++) {
        try {
          await daemon.launch(name, { config: configOf(name) });
          launched++;
          break;
        } catch (e) {
          const message = `${name}: ${(e as Error).message}`;
          if (attempt === 2) {
            error ??= message;
            break;
          }
          retried.push(message);
          await daemon.admin('DELETE', `/1.0/containers/${name}?force=true`).catch(() => undefined);
        }
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { launched, error, retried };
}
