// `devapollo exec` as an attacker inside the container sees it: the command runs as the
// container's root, which every process of the container may ptrace. It must hold
// nothing of the caller's: not the caller's terminal (with TIOCSTI a process in the
// container could type commands into the admin's root shell), not the caller's
// environment, not the caller's other descriptors. Interactive use still works, as with
// `lxc exec`: a pty inside the container, raw mode, window size, Ctrl-C, exit codes.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe } from 'node:test';
import { eventually, guestScript, hostCli, TestDaemon } from '../helpers/daemon.js';
import { containersUnavailable, gatedTest } from '../helpers/env.js';
import { Terminal } from '../helpers/terminal.js';

const secret = `exec-secret-${randomBytes(6).toString('hex')}`;
/** The caller's environment: a secret exported, and a terminal type and language. */
const callerEnv = { ...process.env, APOLLO_EXEC_SECRET: secret, TERM: 'xterm-256color', LANG: 'C.UTF-8' };

describe('exec on a terminal', () => {
  let daemon: TestDaemon;
  let scratch: string;
  const test = gatedTest(containersUnavailable);
  const execArgs = (...rest: string[]) => [process.execPath, hostCli, '--dir', daemon.dir, 'exec', 'term', ...rest];
  const terminals: Terminal[] = [];
  const terminal = (command: readonly string[], options: { rows?: number; cols?: number } = {}) => {
    const t = new Terminal(command, { ...options, env: callerEnv });
    terminals.push(t);
    return t;
  };
  /** A shell line that quotes each word. */
  const shell = (words: readonly string[]) => words.map((w) => `'${w.replaceAll("'", "'\\''")}'`).join(' ');

  before(async () => {
    if (containersUnavailable) return;
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'devapollo-exec-'));
    daemon = await TestDaemon.start();
    await daemon.launch('term');
  });

  after(async () => {
    for (const t of terminals) t.kill();
    await daemon?.destroy();
    if (scratch !== undefined) fs.rmSync(scratch, { recursive: true, force: true });
  });

  test("the command gets a pty of the container's own, never the caller's terminal, and none of the caller's environment", async (t) => {
    const probe = guestScript(
      'exec-probe.sh',
      [
        'echo "TTY $(tty)"',
        // The shell's own descriptors and environment: $$, not self (a subshell's).
        'for fd in 0 1 2; do echo "FD $fd $(stat -L -c "%d %i" /proc/$$/fd/$fd) $(readlink /proc/$$/fd/$fd)"; done',
        'tr "\\0" "\\n" < /proc/$$/environ | sed "s/^/ENV /"',
        'echo "SIZE $(stty size)"',
        'echo "CWD $(pwd)"',
        'echo "ID $(id -u)"',
        'echo DONE',
      ].join('\n'),
    );
    // The outer shell records its terminal's settings before and after: raw mode must
    // not outlive exec.
    const before = path.join(scratch, 'stty.before');
    const afterFile = path.join(scratch, 'stty.after');
    const term = terminal(
      ['sh', '-c', `stty -g > ${before}; ${shell(execArgs('--', 'sh', probe))}; code=$?; stty -g > ${afterFile}; exit $code`],
      { rows: 31, cols: 97 },
    );
    const slave = await term.slave;
    assert.equal(await term.exitCode(), 0, term.output);
    const lines = term.output.split('\r\n');
    const tty = lines.find((l) => l.startsWith('TTY '));
    assert.match(tty ?? '', /^TTY \/dev\/pts\/\d+$/, term.output);
    const fds = lines.filter((l) => l.startsWith('FD '));
    assert.equal(fds.length, 3, term.output);
    for (const line of fds) {
      const [, fd, dev, ino, target] = line.split(' ');
      t.diagnostic(
        `inside fd ${fd}: device ${dev} inode ${ino} (${target}); the caller's terminal: device ${slave.dev} inode ${slave.ino} (${slave.path})`,
      );
      assert.notEqual(`${dev}:${ino}`, `${slave.dev}:${slave.ino}`, `fd ${fd} is the caller's terminal`);
      assert.match(target ?? '', /^\/dev\/pts\/\d+$/);
    }
    const env = new Map(
      lines.filter((l) => l.startsWith('ENV ')).map((l) => [l.slice(4, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as const),
    );
    assert.deepEqual([...env.keys()].sort(), ['HOME', 'LANG', 'PATH', 'TERM', 'USER'], term.output);
    assert.equal(env.get('HOME'), '/root');
    assert.equal(env.get('USER'), 'root');
    assert.equal(env.get('TERM'), 'xterm-256color');
    assert.equal(env.get('LANG'), 'C.UTF-8');
    assert.ok(!term.output.includes(secret), 'the exported secret never reaches the container');
    assert.ok(lines.includes('SIZE 31 97'), `the window size is the caller's: ${term.output}`);
    assert.ok(lines.includes('CWD /'), term.output);
    assert.ok(lines.includes('ID 0'), term.output);
    assert.equal(fs.readFileSync(afterFile, 'utf8'), fs.readFileSync(before, 'utf8'), 'the terminal is restored');
  });

  test("TIOCSTI from inside the container types into its own pty only, never into the caller's shell", async () => {
    // The attack: push a command into the input queue of fd 0 and of /dev/tty, as a
    // process of the container that found the admin's terminal would.
    const attack = guestScript(
      'tiocsti.pl',
      [
        'my $line = "echo INJECTED\\n";',
        'my @targets = (\\*STDIN);',
        'push @targets, $tty if open(my $tty, "+<", "/dev/tty");',
        'my $typed = 0;',
        'for my $fh (@targets) { for my $c (split //, $line) { my $b = $c; $typed++ if ioctl($fh, 0x5412, $b) } }',
        'print "TYPED $typed\\n";',
      ].join('\n'),
    );
    const term = terminal(['sh', '-c', `${shell(execArgs('--', 'perl', attack))}; echo EXEC-DONE; read -r line; echo "HOST-READ:$line"`]);
    await term.waitFor(/EXEC-DONE/, 'exec to finish');
    // Whatever the shell reads next is either what the container injected or this line.
    term.write('sentinel\n');
    const [, read] = await term.waitFor(/HOST-READ:([^\r\n]*)/, 'the host shell to read a line');
    assert.equal(read, 'sentinel', `the container typed into the caller's terminal: ${term.output}`);
    assert.equal(await term.exitCode(), 0);
  });

  test('an interactive shell: what is typed runs, and its exit code comes back', async () => {
    const term = terminal(execArgs('--', 'sh'));
    await term.waitFor(/# $/, 'the prompt');
    term.write('echo "answer $((6 * 7))"\n');
    await term.waitFor(/answer 42/, 'the answer');
    term.write('exit 5\n');
    assert.equal(await term.exitCode(), 5, term.output);
  });

  test('a resize reaches the command as SIGWINCH, Ctrl-C interrupts it through its pty, and 128+N comes back', async () => {
    const loop = guestScript(
      'winch.sh',
      ['trap \'echo "WINCH $(stty size)"\' WINCH', 'echo READY', 'while :; do sleep 0.05; done'].join('\n'),
    );
    const term = terminal(execArgs('--', 'sh', loop), { rows: 24, cols: 80 });
    await term.waitFor(/READY/, 'the loop to start');
    term.resize(50, 132);
    await term.waitFor(/WINCH 50 132/, 'the new size inside');
    term.write('\u0003');
    assert.equal(await term.exitCode(), 130, term.output);
  });

  test('-t without a local terminal still gives a pty (24 by 80); -T on a terminal gives pipes and no controlling terminal', async () => {
    const forced = await daemon.cli(['exec', 'term', '-t', '--', 'sh', '-c', 'tty; stty size']);
    assert.equal(forced.code, 0, forced.stderr);
    assert.match(forced.out, /^\/dev\/pts\/\d+\r\n24 80\r\n$/);
    const term = terminal(
      execArgs(
        '-T',
        '--',
        'sh',
        '-c',
        'tty; if (exec 3</dev/tty) 2>/dev/null; then echo HAS-CTTY; else echo NO-CTTY; fi; echo READY; while :; do sleep 0.05; done',
      ),
    );
    await term.waitFor(/READY/, 'the command');
    assert.match(term.output, /not a tty/);
    assert.match(term.output, /NO-CTTY/);
    // The terminal is not in raw mode: Ctrl-C is SIGINT to exec, which forwards it.
    term.write('\u0003');
    assert.equal(await term.exitCode(), 130, term.output);
  });

  test('bad arguments are usage errors', async () => {
    for (const [args, message] of [
      [['-t', '-T', '--', 'true'], /-t and -T cannot be used together/],
      [['--env', 'NOEQUALS', '--', 'true'], /--env expects KEY=VALUE.*"NOEQUALS"/],
      [['--env', '1X=y', '--', 'true'], /--env expects KEY=VALUE/],
      [['--cwd', 'relative', '--', 'true'], /--cwd must be an absolute path/],
    ] as const) {
      const r = await daemon.cli(['exec', 'term', ...args]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
    }
    const missing = await daemon.cli(['exec', 'term', '--cwd', '/no/such/dir', '--', 'true']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^Error: cannot change to directory \/no\/such\/dir in the container: No such file or directory\n$/);
  });
});

describe('exec on pipes', () => {
  let daemon: TestDaemon;
  const test = gatedTest(containersUnavailable);

  before(async () => {
    if (containersUnavailable) return;
    daemon = await TestDaemon.start();
    await daemon.launch('pipes');
  });

  after(async () => {
    await daemon?.destroy();
  });

  test('stdin, stdout and stderr byte for byte, --env and --cwd', async () => {
    const input = randomBytes(3 * 1024 * 1024 + 17);
    const r = await daemon.cli(['exec', 'pipes', '--', 'sh', '-c', 'cat; printf "to\\0stderr" >&2; exit 3'], { input });
    assert.equal(r.code, 3);
    assert.ok(r.stdout.equals(input), `stdout is stdin, byte for byte (${r.stdout.length} of ${input.length} bytes)`);
    assert.equal(r.stderr, 'to\u0000stderr');
    const env = await daemon.cli(
      [
        'exec',
        'pipes',
        '--env',
        'A=1',
        '--env',
        'B=two words=x',
        '--env',
        'PATH=/bin',
        '--cwd',
        '/tmp',
        '--',
        'sh',
        '-c',
        'echo "$A|$B|$PATH|$(pwd)"',
      ],
      {
        env: callerEnv,
      },
    );
    assert.equal(env.out, '1|two words=x|/bin|/tmp\n', env.stderr);
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the container's shell expands it
    const none = await daemon.cli(['exec', 'pipes', '--', 'sh', '-c', 'echo "[${APOLLO_EXEC_SECRET-unset}]"'], { env: callerEnv });
    assert.equal(none.out, '[unset]\n');
  });

  test('every forwarded signal reaches the command', async () => {
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'] as const) {
      const name = signal.slice(3);
      const child = spawn(
        process.execPath,
        [
          hostCli,
          '--dir',
          daemon.dir,
          'exec',
          'pipes',
          '--',
          'sh',
          '-c',
          `trap 'echo GOT-${name}; exit 9' ${name}; echo READY; while :; do sleep 0.05; done`,
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let out = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      await eventually(() => out.includes('READY'), `the command runs (${signal})`);
      child.kill(signal);
      assert.equal(await exited, 9, signal);
      assert.equal(out, `READY\nGOT-${name}\n`);
    }
  });

  test('the session ends with the command, whatever it left behind holding its output', async () => {
    const r = await daemon.cli(['exec', 'pipes', '--', 'sh', '-c', 'sleep 600 & echo "started $!"'], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.signal, null, 'exec returned by itself');
    const [, pid] = /^started (\d+)\n$/.exec(r.out) ?? [];
    assert.ok(pid !== undefined, r.out);
    await daemon.exec('pipes', ['kill', pid]);
  });
});
