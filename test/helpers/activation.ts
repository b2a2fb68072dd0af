/**
 * A daemon started as systemd's socket units start it: test/helpers/activate.pl holds the
 * guest and admin sockets listening and runs the daemon with them as fds 3 and 4. The
 * sockets stay open while the daemon is down; `restart` starts it again on them. Torn
 * down with every container it launched.
 */
import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { eventually, hostCli, type RunResult, repoRoot, run } from './daemon.js';

const activator = path.join(repoRoot, 'test/helpers/activate.pl');

export class ActivatedDaemon {
  /** Everything the daemons logged, and the holder's "started PID" lines. */
  log = '';
  private started = '';

  private constructor(
    readonly dir: string,
    private readonly holder: ChildProcessWithoutNullStreams,
  ) {
    holder.stderr.on('data', (c: Buffer) => (this.log += c.toString('utf8')));
    holder.stdout.on('data', (c: Buffer) => (this.started += c.toString('utf8')));
  }

  /** A fresh DIR with its DIR/devapollo, the sockets held, the daemon started on them. */
  static async start(): Promise<ActivatedDaemon> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'devapollo-activated-'));
    fs.mkdirSync(path.join(dir, 'devapollo'), { mode: 0o755 });
    const holder = spawn('perl', [
      activator,
      path.join(dir, 'devapollo/sock'),
      path.join(dir, 'unix.socket'),
      '--',
      process.execPath,
      hostCli,
      'serve',
      '--dir',
      dir,
    ]);
    const daemon = new ActivatedDaemon(dir, holder);
    await eventually(() => daemon.log.includes('devapollo started'), 'the daemon starts on inherited sockets');
    return daemon;
  }

  cli(args: readonly string[]): Promise<RunResult> {
    return run(process.execPath, [hostCli, '--dir', this.dir, ...args]);
  }

  /** SIGTERM to the daemon (the sockets stay held); resolves once it has stopped. */
  async stop(): Promise<void> {
    const pids = [...this.started.matchAll(/started (\d+)/g)];
    const from = this.log.length;
    process.kill(Number(pids[pids.length - 1]?.[1]), 'SIGTERM');
    await eventually(() => this.log.indexOf('devapollo stopped', from) !== -1, 'the daemon stops');
  }

  /** Starts the daemon again on the held sockets; resolves with where its log begins, once it has started. */
  async startAgain(): Promise<number> {
    const from = this.log.length;
    this.holder.stdin.write('start\n');
    await eventually(() => this.log.indexOf('devapollo started', from) !== -1, 'the daemon starts again');
    return from;
  }

  /** Ends the daemon and the holder, kills the containers it launched, removes DIR. */
  async destroy(): Promise<void> {
    this.holder.stdin.end();
    if (this.holder.exitCode === null) await new Promise((resolve) => this.holder.once('close', resolve));
    const containers = path.join(this.dir, 'containers');
    for (const entry of fs.existsSync(containers) ? fs.readdirSync(containers) : []) {
      const record = JSON.parse(fs.readFileSync(path.join(containers, entry), 'utf8')) as { init: { pid: number } | null };
      if (record.init !== null) spawnSync('kill', ['-9', String(record.init.pid)]);
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
