/**
 * A real pseudo-terminal of the host for a command, as a terminal emulator gives one
 * (test/helpers/pty.pl): the command is a session leader with the pty as its controlling
 * terminal; the test types into it, resizes it and reads what it shows.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { repoRoot } from './daemon.js';

const ptyHelper = path.join(repoRoot, 'test/helpers/pty.pl');

/** The host pty's slave: its path and the device and inode numbers stat gives it. */
export interface Slave {
  readonly path: string;
  readonly dev: string;
  readonly ino: string;
}

export class Terminal {
  /** Everything the terminal showed so far (output and echo, \r\n line ends). */
  output = '';
  readonly exited: Promise<number>;
  readonly slave: Promise<Slave>;
  private readonly child: ChildProcess;

  constructor(command: readonly string[], options: { rows?: number; cols?: number; env?: NodeJS.ProcessEnv } = {}) {
    this.child = spawn('perl', [ptyHelper, String(options.rows ?? 24), String(options.cols ?? 80), '--', ...command], {
      stdio: ['pipe', 'pipe', 'pipe', 'pipe'],
      env: options.env ?? process.env,
    });
    this.child.stdout?.on('data', (c: Buffer) => (this.output += c.toString('utf8')));
    let stderr = '';
    this.slave = new Promise((resolve, reject) => {
      this.child.stderr?.on('data', (c: Buffer) => {
        stderr += c.toString('utf8');
        const match = /^pty (\S+) (\d+) (\d+)\n/.exec(stderr);
        if (match) resolve({ path: match[1] ?? '', dev: match[2] ?? '', ino: match[3] ?? '' });
      });
      this.child.once('exit', () => reject(new Error(`pty.pl exited before it opened a terminal: ${stderr}`)));
    });
    this.slave.catch(() => undefined);
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1))));
    for (const stream of [this.child.stdin, this.child.stdio[3] as Writable | null]) stream?.on('error', () => undefined);
  }

  /** Types bytes into the terminal. */
  write(text: string): void {
    this.child.stdin?.write(text);
  }

  /** Resizes the terminal: its foreground process group gets SIGWINCH. */
  resize(rows: number, cols: number): void {
    (this.child.stdio[3] as Writable).write(`winsize ${rows} ${cols}\n`);
  }

  /** Waits until the output matches (a hang guard, not a deadline). */
  async waitFor(pattern: RegExp, what: string, timeoutMs = 30_000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const match = pattern.exec(this.output);
      if (match) return match;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; the terminal showed ${JSON.stringify(this.output)}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** The exit code, killing the command if it does not end within the hang guard. */
  async exitCode(timeoutMs = 60_000): Promise<number> {
    const timer = setTimeout(() => this.kill(), timeoutMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  kill(): void {
    if (this.child.exitCode === null) this.child.kill('SIGKILL');
  }
}
