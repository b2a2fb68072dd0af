// Descriptors the host side had open must never reach a container. Started with an fd
// open on a root-only file (a shell redirection, a leaky supervisor), the daemon used to
// pass it to every container's init, whose root then read the file with pidfd_getfd;
// `devapollo exec` passed its own caller's descriptors to the command the same way.
// Containers and exec'd commands get exactly fds 0-2.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe } from 'node:test';
import { guestScript, hostCli, TestDaemon } from '../helpers/daemon.js';
import { containersUnavailable, gatedTest } from '../helpers/env.js';

const secret = `root-only-${randomBytes(8).toString('hex')}`;

/**
 * Inside a container, as its root: takes every descriptor of the container's init (pid
 * 1) it can with pidfd_getfd and prints, for each, its number, what it is and, for a
 * file, its first bytes.
 */
const grabber = `
my $pidfd = syscall(434, 1, 0);
die "pidfd_open: $!\\n" if $pidfd < 0;
for my $fd (0 .. 255) {
    my $copy = syscall(438, $pidfd, $fd, 0);
    next if $copy < 0;
    my $target = readlink("/proc/self/fd/$copy") // '?';
    my $data = '';
    # Files only: a pipe's read end would block.
    if (-f "/proc/self/fd/$copy" && open(my $fh, '<&=', $copy)) { sysread($fh, $data, 200) }
    $data =~ s/[^ -~]/./g;
    print "GOT $fd $target $data\\n";
}
print "DONE\\n";
`;

/** "FD TARGET" for each descriptor of a process inside the container. */
const listFds = (pid: string) => ['sh', '-c', `for f in /proc/${pid}/fd/*; do echo "\${f##*/} $(readlink "$f")"; done`];

/**
 * The init's descriptors as they must be: /dev/null, the log pipe twice, and nothing
 * else but both ends of one pipe, its own wake-up pipe (a pipe with both ends in one
 * process was made by that process, inside the container).
 */
function assertInitDescriptors(lines: readonly string[], what: string): void {
  const targets = new Map(lines.map((l) => [Number(l.split(' ')[0]), l.split(' ')[1] ?? ''] as const));
  assert.equal(targets.get(0), '/dev/null', what);
  assert.match(targets.get(1) ?? '', /^pipe:\[\d+\]$/, what);
  assert.equal(targets.get(2), targets.get(1), what);
  const others = [...targets].filter(([fd]) => fd > 2).map(([, target]) => target);
  assert.equal(others.length, 2, `${what}: ${lines.join(', ')}`);
  assert.match(others[0] ?? '', /^pipe:\[\d+\]$/, what);
  assert.equal(others[1], others[0], `${what}: its own pipe, both ends`);
}

/** A spawn's stdio from fd 3 on, with `fd` at each of `at`. */
function leakedAt(fd: number, ...at: number[]): ('ignore' | number)[] {
  const stdio: ('ignore' | number)[] = [];
  for (let i = 3; i <= Math.max(...at); i++) stdio.push(at.includes(i) ? fd : 'ignore');
  return stdio;
}

describe('descriptors the daemon and the CLI inherit', () => {
  let daemon: TestDaemon;
  let secretDir: string;
  let secretFd: number;
  const test = gatedTest(containersUnavailable);

  before(async () => {
    if (containersUnavailable) return;
    secretDir = fs.mkdtempSync(path.join(os.tmpdir(), 'devapollo-secret-'));
    fs.chmodSync(secretDir, 0o700);
    const file = path.join(secretDir, 'secret');
    fs.writeFileSync(file, `${secret}\n`, { mode: 0o600 });
    secretFd = fs.openSync(file, 'r');
    // As `devapollo serve 5<secret 100<secret` would: without close-on-exec. (Node marks
    // the inherited descriptors from 0 up to the first gap above 15 close-on-exec
    // itself, libuv's uv_disable_stdio_inheritance; not those after a gap, such as 100.)
    daemon = await TestDaemon.start({ inherit: leakedAt(secretFd, 5, 100) });
    await daemon.launch('idle');
    await daemon.launch('busy', { command: ['sh', '-c', 'echo started; exec sleep 600'] });
  });

  after(async () => {
    await daemon?.destroy();
    if (secretFd !== undefined) fs.closeSync(secretFd);
    if (secretDir !== undefined) fs.rmSync(secretDir, { recursive: true, force: true });
  });

  test('the daemon keeps an inherited descriptor open but marks it close-on-exec', async () => {
    for (const fd of [5, 100]) {
      const fdinfo = fs.readFileSync(`/proc/${daemon.pid}/fdinfo/${fd}`, 'utf8');
      const flags = Number.parseInt(/^flags:\s+([0-7]+)$/m.exec(fdinfo)?.[1] ?? '0', 8);
      assert.ok((flags & 0o2000000) !== 0, `O_CLOEXEC set on the daemon's fd ${fd}: ${fdinfo}`);
    }
  });

  test("a container's init and its command hold exactly 0, 1 and 2", async () => {
    for (const name of ['idle', 'busy']) {
      const init = await daemon.exec(name, listFds('1'));
      assert.equal(init.code, 0, init.stderr);
      assertInitDescriptors(init.out.split('\n').filter(Boolean), `the init of ${name}`);
    }
    // The command is the init's only child: pid 2.
    const command = await daemon.exec('busy', listFds('2'));
    const fds = command.out.split('\n').filter(Boolean);
    assert.deepEqual(
      fds.map((l) => l.split(' ')[0]),
      ['0', '1', '2'],
      `the command of busy: ${fds.join(', ')}`,
    );
  });

  test("pidfd_getfd on the init from inside finds nothing of the host's", async (t) => {
    const script = guestScript('grab-fds.pl', grabber);
    for (const name of ['idle', 'busy']) {
      const r = await daemon.exec(name, ['perl', script]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.out, /DONE\n$/);
      t.diagnostic(`${name}: ${r.out.trim().split('\n').join('; ')}`);
      assert.ok(!r.out.includes(secret), `the root-only file reached container ${name}: ${r.out}`);
      const taken = r.out
        .split('\n')
        .filter((l) => l.startsWith('GOT '))
        .map((l) => l.split(' ').slice(1, 3).join(' '));
      assertInitDescriptors(taken, `what pidfd_getfd takes from ${name}'s init`);
    }
  });

  test("an exec'd command holds none of the CLI's descriptors", async () => {
    // The CLI started as `devapollo exec ... 100<secret` would be.
    const child = spawn(
      process.execPath,
      [hostCli, '--dir', daemon.dir, 'exec', 'idle', '--', 'sh', '-c', 'ls /proc/$$/fd; cat <&5; cat /proc/$$/fd/100'],
      {
        stdio: ['ignore', 'pipe', 'pipe', ...leakedAt(secretFd, 5, 100)],
      },
    );
    let out = '';
    let err = '';
    child.stdout?.on('data', (c: Buffer) => (out += c.toString('utf8')));
    child.stderr?.on('data', (c: Buffer) => (err += c.toString('utf8')));
    const code = await new Promise<number | null>((resolve) => child.once('close', (c) => resolve(c)));
    assert.notEqual(code, 0, 'cat <&5 fails: there is no fd 5');
    assert.ok(!out.includes(secret), out);
    assert.deepEqual(out.split('\n').filter(Boolean), ['0', '1', '2'], `${out} ${err}`);
    assert.match(err, /5: Bad file descriptor/);
    assert.match(err, /fd\/100: No such file or directory/);
  });
});
