/**
 * A process the benchmark talks to line by line: a load generator, a watcher or a
 * baseline server, usually inside a container. Its stdout is read as lines; its stdin
 * takes commands ("go"); it is killed at cleanup if it is still running.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Duplex } from 'node:stream';
import { onCleanup } from './cleanup.js';

export class Agent {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly lines: string[] = [];
  private waiters: (() => void)[] = [];
  private stderr = '';
  private exitCode: number | null | undefined;
  readonly exited: Promise<number | null>;
  private readonly kill: () => void;
  /** Called for every line as it arrives, before it is queued (when set, lines are not queued). */
  onLine: ((line: string) => void) | undefined;

  constructor(
    readonly label: string,
    command: string,
    args: readonly string[],
    /**
     * `control`: written to a fourth descriptor (fd 3) that stays open while the process
     * runs, as libexec/exec.pl reads its session (environment and command) there.
     */
    options: { env?: NodeJS.ProcessEnv; control?: string } = {},
  ) {
    const stdio: 'pipe'[] = options.control === undefined ? ['pipe', 'pipe', 'pipe'] : ['pipe', 'pipe', 'pipe', 'pipe'];
    // Three pipes at least, so the first three streams are there whatever the fourth.
    this.child = spawn(command, args, { stdio, env: options.env ?? process.env, detached: true }) as ChildProcessWithoutNullStreams;
    if (options.control !== undefined) {
      const control = this.child.stdio[3] as unknown as Duplex;
      control.on('error', () => undefined);
      control.write(options.control);
    }
    this.kill = onCleanup(() => {
      if (this.exitCode === undefined && this.child.pid !== undefined) {
        try {
          process.kill(-this.child.pid, 'SIGKILL');
        } catch {
          // Gone already.
        }
      }
    });
    this.child.stdin.on('error', () => undefined);
    this.child.stderr.on('data', (c: Buffer) => {
      if (this.stderr.length < 64 * 1024) this.stderr += c.toString('utf8');
    });
    createInterface({ input: this.child.stdout }).on('line', (line) => {
      if (this.onLine) this.onLine(line);
      else this.lines.push(line);
      this.wake();
    });
    this.exited = new Promise((resolve) => {
      this.child.once('error', (error) => {
        this.stderr += String(error);
        this.exitCode = null;
        this.wake();
        resolve(null);
      });
      this.child.once('close', (code) => {
        this.exitCode = code;
        this.kill();
        this.wake();
        resolve(code);
      });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  /** The next line of stdout; throws when the process exits first or after `timeoutMs`. */
  async nextLine(timeoutMs = 60_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const line = this.lines.shift();
      if (line !== undefined) return line;
      if (this.exitCode !== undefined) throw new Error(`${this.label} exited (${this.exitCode}) early: ${this.stderr.trim()}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.label}: no answer within ${timeoutMs / 1000} s: ${this.stderr.trim()}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Waits for a line that starts with `prefix` (other lines are an error). */
  async expect(prefix: string, timeoutMs = 60_000): Promise<string> {
    const line = await this.nextLine(timeoutMs);
    if (!line.startsWith(prefix)) throw new Error(`${this.label}: expected "${prefix}…", got: ${line} ${this.stderr.trim()}`);
    return line;
  }

  send(line: string): void {
    this.child.stdin.write(`${line}\n`);
  }

  /** Closes stdin (agents exit on it) and waits; kills after `graceMs`. */
  async stop(graceMs = 10_000): Promise<void> {
    this.child.stdin.end();
    const timer = setTimeout(() => this.kill(), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  get errors(): string {
    return this.stderr;
  }
}
