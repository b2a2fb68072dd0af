/**
 * The host side of `devapollo exec`, as `lxc exec` does it: the command runs in a fresh
 * environment, on a pseudo-terminal allocated inside the container (libexec/exec.pl) or
 * on pipes, and this process relays bytes, window sizes and signals between the caller
 * and it.
 *
 * The helper is spawned with socket pairs made for this session (never the caller's own
 * descriptors), an environment of its own (never the caller's) and in a session of its
 * own (so that nothing it starts has the caller's terminal as controlling terminal).
 * The caller's terminal stays here, in raw mode while a pty is used (so that Ctrl-C and
 * the like reach the command as bytes through the container's pty), and is restored
 * whatever happens. Why this is the boundary it is: the comment at the top of exec.pl.
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import type { Duplex } from 'node:stream';
import type tty from 'node:tty';
import { fileURLToPath } from 'node:url';
import { ApolloError } from '../../shared/errors.js';
import { containerPath } from '../containers/launcher.js';

const execHelper = fileURLToPath(new URL('../../../libexec/exec.pl', import.meta.url));

export interface ExecRequest {
  /** The init's host pid and start time: the helper checks both before entering. */
  readonly pid: number;
  readonly startTime: string;
  readonly command: readonly string[];
  /** The command's whole environment. */
  readonly environment: ReadonlyMap<string, string>;
  /** Inside the container. */
  readonly cwd: string;
  /** A pseudo-terminal inside the container; else pipes. */
  readonly terminal: boolean;
}

/** Signals sent to this process reach the command. */
const forwardedSignals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'];

const envName = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * The command's environment: PATH, HOME=/root, USER=root, and TERM and LANG when the
 * caller has them, then every `--env KEY=VALUE` (which may replace any of these); no
 * other variable of the caller's.
 */
export function execEnvironment(caller: NodeJS.ProcessEnv, assignments: readonly string[]): Map<string, string> {
  const environment = new Map([
    ['PATH', containerPath],
    ['HOME', '/root'],
    ['USER', 'root'],
  ]);
  for (const name of ['TERM', 'LANG']) {
    const value = caller[name];
    if (value !== undefined && value !== '') environment.set(name, value);
  }
  for (const assignment of assignments) {
    const eq = assignment.indexOf('=');
    const name = eq === -1 ? assignment : assignment.slice(0, eq);
    if (eq === -1 || !envName.test(name)) {
      throw new ApolloError(
        'usage',
        `--env expects KEY=VALUE, KEY being letters, digits and "_" not starting with a digit; got ${JSON.stringify(assignment)}`,
      );
    }
    environment.set(name, assignment.slice(eq + 1));
  }
  return environment;
}

/** Runs the command through the helper; resolves with its exit code (128+N for signal N). */
export async function runExec(request: ExecRequest): Promise<number> {
  const strings = [...[...request.environment].map(([name, value]) => `${name}=${value}`), ...request.command];
  if (strings.some((s) => s.includes('\0'))) throw new ApolloError('usage', 'the command and the environment cannot hold NUL bytes');
  const child = spawn(
    'perl',
    [
      execHelper,
      '--pid',
      String(request.pid),
      '--start-time',
      request.startTime,
      '--cwd',
      request.cwd,
      '--mode',
      request.terminal ? 'pty' : 'pipe',
    ],
    { stdio: ['pipe', 'pipe', 'pipe', 'pipe'], env: { PATH: '/usr/bin:/bin' }, cwd: '/', detached: true },
  );
  const closed = new Promise<number>((resolve, reject) => {
    child.once('error', (error) => reject(new ApolloError('internal', `cannot run perl: ${error.message}`, { cause: error })));
    child.once('close', (code, signal) => resolve(code ?? 128 + (signal ? constants.signals[signal] : 0)));
  });
  const control = child.stdio[3] as Duplex | null;
  if (control === null || child.stdin === null || child.stdout === null || child.stderr === null) {
    await closed;
    throw new ApolloError('internal', 'cannot set up the exec session');
  }
  // Writes to a helper that has exited fail with EPIPE; its exit status says what happened.
  for (const stream of [control, child.stdin]) stream.on('error', () => undefined);
  control.write(`${request.environment.size} ${request.command.length}\n${strings.map((s) => `${s}\0`).join('')}`);

  const stdin = process.stdin;
  let restore: () => void = () => {};
  const sendWindowSize = () => control.write(`winsize ${windowSize().join(' ')}\n`);
  // Hanging up closes the control socket: the helper sends SIGHUP to the command's process
  // group, then SIGKILL, and the session ends. A command that ignores SIGHUP must not keep
  // a session (and this process) alive whose terminal has gone, as after an ssh drop.
  const hangUp = () => control.destroy();
  let interrupts = 0;
  const forward = (signal: NodeJS.Signals) => {
    child.kill(signal);
    if (signal === 'SIGHUP') hangUp();
    // A second Ctrl-C or SIGTERM ends the session even if the command ignores the first.
    else if ((signal === 'SIGINT' || signal === 'SIGTERM') && ++interrupts >= 2) hangUp();
  };
  // A terminal that went away reads as end of file or EIO: nobody is there any more. (In
  // raw mode Ctrl-D is a byte, not the end.) Pipes end as the command's stdin does.
  const onTerminalGone = () => hangUp();
  // Output to a terminal that went away fails with EIO: nobody is there to read it.
  const ignore = () => undefined;
  let finished = false;
  const relayOutput = () => {
    child.stdout.pipe(process.stdout, { end: false });
    child.stderr.pipe(process.stderr, { end: false });
  };
  try {
    if (request.terminal && stdin.isTTY) {
      // Raw once the command runs, so that an error before (not running, cannot run) is
      // printed on a terminal as usual. The output is relayed from then on: a first line
      // written before would go through the caller's terminal's own newline translation
      // a second time (\r\r\n). Until then the helper's pipes hold it.
      const { makeRaw } = await import('../kernel/terminal.js');
      void started(control).then((yes) => {
        if (yes && !finished) {
          restore = makeRaw(0) ?? restore;
          // A last resort should this process end any other way.
          process.once('exit', restore);
        }
        relayOutput();
      });
    } else {
      relayOutput();
    }
    if (request.terminal) {
      sendWindowSize();
      process.on('SIGWINCH', sendWindowSize);
    }
    for (const signal of forwardedSignals) process.on(signal, forward);
    process.stdout.on('error', ignore);
    process.stderr.on('error', ignore);
    if (stdin.isTTY) {
      stdin.once('end', onTerminalGone);
      stdin.once('error', onTerminalGone);
    }
    stdin.pipe(child.stdin);
    return await closed;
  } finally {
    finished = true;
    process.off('SIGWINCH', sendWindowSize);
    for (const signal of forwardedSignals) process.off(signal, forward);
    process.stdout.off('error', ignore);
    process.stderr.off('error', ignore);
    stdin.off('end', onTerminalGone);
    stdin.off('error', onTerminalGone);
    stdin.unpipe(child.stdin);
    stdin.pause();
    restore();
    process.off('exit', restore);
    control.destroy();
  }
}

/** Resolves true when the helper says the command runs, false if it ends first. */
function started(control: Duplex): Promise<boolean> {
  return new Promise((resolve) => {
    let text = '';
    const onData = (chunk: Buffer) => {
      text += chunk.toString('utf8');
      if (text.includes('started\n')) done(true);
    };
    const done = (yes: boolean) => {
      control.off('data', onData);
      control.off('close', onClose);
      resolve(yes);
    };
    const onClose = () => done(false);
    control.on('data', onData);
    control.once('close', onClose);
  });
}

/** Rows and columns of the caller's terminal; 24 by 80 without one. */
function windowSize(): [number, number] {
  for (const stream of [process.stdout, process.stderr]) {
    if (stream.isTTY) {
      const [columns, rows] = (stream as tty.WriteStream).getWindowSize();
      if (columns > 0 && rows > 0) return [rows, columns];
    }
  }
  return [24, 80];
}
