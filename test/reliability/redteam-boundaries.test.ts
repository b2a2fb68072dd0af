// Red-team regression tests (redteam1): each attack below worked against the code of
// wave1 (exec as lxc exec, the monitor, security.idmap.isolated, create/start and the
// hooks) and fails on it; each test states what must hold against the attack, with real
// containers and runtimes. The attacks and their figures: docs/RELIABILITY.md.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { eventually, guestScript, hostCli, run, TestDaemon } from '../helpers/daemon.js';
import { containersUnavailable, gatedTest } from '../helpers/env.js';
import { devapolloCommand } from '../helpers/readme.js';
import { OciHost, ociRuntimeUnavailable, PodmanHost, podmanUnavailable, sharedTempDir, systemPython } from '../helpers/runtimes.js';
import { Terminal } from '../helpers/terminal.js';

/** Host pids whose command line holds `marker`. */
function pidsWith(marker: string): number[] {
  const pids: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(marker)) pids.push(Number(entry));
    } catch {
      // Gone.
    }
  }
  return pids;
}

/** Host pids whose parent is `parent`. */
function childrenOf(parent: number): number[] {
  const pids: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === parent) pids.push(Number(entry));
    } catch {
      // Gone.
    }
  }
  return pids;
}

function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^[ZX]$/.test(stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3));
  } catch {
    return false;
  }
}

function killAll(pids: readonly number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Gone.
    }
  }
}

// `devapollo exec` enters a registered container's namespaces as host root with every
// capability, no seccomp filter, no no_new_privs and the caller's cgroups: a rootful OCI
// container (capabilities dropped, seccomp) that planted a trojan binary got host root
// the moment an admin ran that binary with devapollo exec (it mounted the host's disk).
describe('red team: exec into a registered OCI container', () => {
  const unavailable = ociRuntimeUnavailable('runc');
  const test = gatedTest(unavailable);
  let daemon: TestDaemon;
  let oci: OciHost;

  before(async () => {
    if (unavailable) return;
    daemon = await TestDaemon.start();
    oci = new OciHost('runc');
    const r = await oci.run('confined', { dir: daemon.dir });
    assert.equal(r.code, 0, r.stderr);
  });

  after(async () => {
    await oci?.destroy();
    await daemon?.destroy();
  });

  test("is refused before anything runs in it, naming the runtime's own exec", async () => {
    const state = await oci.state('confined');
    assert.ok(state !== undefined && state.pid > 0);
    const marker = path.join(oci.root, 'rootfs', 'tmp', 'exec-ran');
    fs.rmSync(marker, { force: true });
    const r = await daemon.cli(['exec', 'confined', '-T', '--', '/bin/sh', '-c', 'echo ran > /tmp/exec-ran']);
    assert.equal(r.code, 4, `exec into a registered container must be refused (exit 4), got ${r.code}: ${r.stderr}`);
    assert.match(r.stderr, /^Error: container confined was started by another runtime.*crun exec/m);
    assert.equal(r.out, '');
    assert.equal(fs.existsSync(marker), false, 'the command ran in the container');
  });
});

// podman copies an image's manifest annotations into the OCI state a hook reads, and the
// README's hook matches any `devapollo.name`: an image pulled from anywhere chose the
// name of another container (a `create`d one waiting for its runtime, or a registered
// one that is stopped), read its cloud-init user-data, and rewrote its keys for good
// (cloud-init.user-data, security.devapollo.users, with a new instance-id, so the real
// container runs the image's runcmd at its next boot).
describe("red team: a podman image's annotations", () => {
  const test = gatedTest(podmanUnavailable);
  let daemon: TestDaemon;
  let podman: PodmanHost;
  let scratch: string;

  before(async () => {
    if (podmanUnavailable) return;
    daemon = await TestDaemon.start();
    podman = new PodmanHost();
    scratch = sharedTempDir('devapollo-redteam-podman-');
    const devapollo = devapolloCommand(scratch, [process.execPath, hostCli, '--dir', daemon.dir]);
    fs.mkdirSync(path.join(scratch, 'hooks.d'));
    for (const stage of ['createRuntime', 'poststop']) {
      // The README's hook files.
      fs.writeFileSync(
        path.join(scratch, 'hooks.d', `devapollo-${stage}.json`),
        JSON.stringify({
          version: '1.0.0',
          stages: [stage],
          when: { annotations: { '^devapollo\\.name$': '.+' } },
          hook: { path: devapollo, args: ['devapollo', 'hook', 'oci', stage], env: ['PATH=/usr/local/bin:/usr/bin:/bin'] },
        }),
      );
    }
    const rootfs = path.join(scratch, 'rootfs');
    for (const dir of ['usr', 'proc', 'dev', 'sys', 'tmp', 'etc']) fs.mkdirSync(path.join(rootfs, dir), { recursive: true });
    for (const link of ['bin', 'sbin', 'lib', 'lib64']) fs.symlinkSync(`usr/${link}`, path.join(rootfs, link));
    const tar = path.join(scratch, 'rootfs.tar');
    assert.equal((await run('tar', ['-C', rootfs, '-cf', tar, '.'])).code, 0);
    const imported = await podman.podman(['import', tar, 'localhost/redteam-base']);
    assert.equal(imported.code, 0, imported.stderr);
    // The image an attacker publishes: annotations in its OCI manifest, nothing else.
    const context = path.join(scratch, 'context');
    fs.mkdirSync(context);
    fs.writeFileSync(path.join(context, 'Containerfile'), 'FROM localhost/redteam-base\nCMD ["sleep", "infinity"]\n');
    const built = await podman.podman([
      'build',
      '--format',
      'oci',
      '--no-cache',
      '--annotation',
      'devapollo.name=victim',
      '--annotation',
      'apollo.cloud-init.user-data=#cloud-config\nruncmd: [touch /pwned]\n',
      '--annotation',
      'apollo.security.devapollo.users=true',
      '-t',
      'localhost/redteam-evil',
      context,
    ]);
    assert.equal(built.code, 0, built.stderr);
  });

  after(async () => {
    await podman?.destroy();
    await daemon?.destroy();
    if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
  });

  const userData = '#cloud-config\npassword: admin-secret\n';
  let victimKeys: string;
  /** `podman run` of the image, as the admin types it, plus `args`. */
  const runImage = (name: string, args: readonly string[] = []) =>
    podman.podman([
      'run',
      ...PodmanHost.hostRunArgs,
      '--hooks-dir',
      path.join(scratch, 'hooks.d'),
      '-d',
      '--name',
      name,
      ...args,
      '-v',
      '/usr:/usr:ro',
      '-v',
      `${daemon.dir}/devapollo:/dev/apollo:ro`,
      'localhost/redteam-evil',
    ]);
  const victim = async () => {
    const list = JSON.parse((await daemon.cli(['list', '--format', 'json'])).out) as { name: string; state: string; pid: number }[];
    return list.find((c) => c.name === 'victim');
  };
  const keys = async () => (await daemon.cli(['config', 'show', 'victim', '--format', 'json'])).out;
  /** runc (podman's runtime on a hybrid-cgroup host) quotes a failing hook's stderr in podman's error; crun keeps nothing. */
  const quotesHookErrors = PodmanHost.hostRunArgs.includes('runc');

  test("cannot bind to another container's name nor change its keys", async () => {
    assert.equal((await daemon.cli(['create', 'victim', '-c', `cloud-init.user-data=${userData}`])).code, 0);
    victimKeys = await keys();
    // The admin runs the image with no devapollo annotation of its own.
    const r = await runImage('innocent');
    assert.notEqual(r.code, 0, 'podman does not run a container whose start hook refused it');
    if (quotesHookErrors) {
      assert.match(
        r.stderr,
        /Error: cannot register OCI container victim: container victim already exists, and a podman container's annotations may come from its image, so the name alone binds nothing: to bind this container to it, run it with --annotation devapollo\.claim=\$\(devapollo config get victim volatile\.devapollo\.claim\)/,
      );
    }
    assert.notEqual((await victim())?.state, 'Running', 'the image bound itself to victim');
    assert.equal(await keys(), victimKeys, "victim's keys changed");
    assert.match(daemon.stderr, /an OCI start hook was refused the name of an existing container/);
  });

  test("the admin's run with the claim binds; the image's annotations still change no key; the guest never reads the claim", async () => {
    const claim = (await daemon.cli(['config', 'get', 'victim', 'volatile.devapollo.claim'])).out;
    const r = await runImage('chosen', ['--annotation', `devapollo.claim=${claim}`]);
    assert.equal(r.code, 0, r.stderr);
    const pid = Number((await podman.podman(['inspect', '--format', '{{.State.Pid}}', 'chosen'])).out.trim());
    assert.deepEqual([(await victim())?.state, (await victim())?.pid], ['Running', pid]);
    assert.equal(await keys(), victimKeys, "the image's apollo.* annotations changed victim's keys");
    assert.equal((await podman.curl('chosen', '/1.0/config/cloud-init.user-data')).out, `${userData}\n200`);
    assert.match((await podman.curl('chosen', '/1.0/config/volatile.devapollo.claim')).out, /\n403$/);
    assert.doesNotMatch((await podman.curl('chosen', '/1.0/config')).out, /volatile/);
    assert.equal((await podman.curl('chosen', '/1.0/config/security.devapollo.users')).out.split('\n').at(-1), '403');
  });

  test('stopped, it binds again to the same podman container restarting, never to another run of the image', async () => {
    assert.equal((await podman.podman(['stop', '--time', '0', 'chosen'])).code, 0);
    assert.equal((await victim())?.state, 'Stopped');
    assert.notEqual((await runImage('second')).code, 0);
    assert.equal((await victim())?.state, 'Stopped');
    assert.equal(await keys(), victimKeys);
    const start = await podman.podman(['start', '--hooks-dir', path.join(scratch, 'hooks.d'), 'chosen']);
    assert.equal(start.code, 0, start.stderr);
    assert.equal((await victim())?.state, 'Running');
    assert.equal(await keys(), victimKeys);
  });
});

// A container's root takes its init's stdout (the monitor's log pipe) with pidfd_getfd
// and hands it over an abstract Unix socket (containers share the host's network
// namespace) to a process of another container. The monitor then never sees the end of
// its pipe: it outlives its container (host root processes pile up, one per start), and
// once the container is deleted and a new one of that name launched, it rotates the new
// container's log and writes the old container's output into it.
describe('red team: a monitor whose log pipe is held outside its container', () => {
  const unavailable = containersUnavailable || (fs.existsSync(systemPython) ? false : 'needs python3 (fd passing inside the containers)');
  const test = gatedTest(unavailable);
  let daemon: TestDaemon;
  const socketName = `devapollo-redteam-${randomBytes(6).toString('hex')}`;
  const marker = `OLD-CONTAINER-${randomBytes(4).toString('hex')}`;
  // Unique on the machine: other daemons' monitors are found by name too.
  const victim = `v${randomBytes(6).toString('hex')}`;

  before(async () => {
    if (unavailable) return;
    daemon = await TestDaemon.start({ args: ['--max-log-size', '65536'] });
  });

  after(async () => {
    killAll(pidsWith(socketName));
    await daemon?.destroy();
  });

  test("ends with its container, and a new container of the same name never gets the old one's output", async (t) => {
    const holder = guestScript(
      'redteam-holder.py',
      [
        'import socket, sys, time, os',
        's = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)',
        "s.bind('\\0' + sys.argv[1]); s.listen(1)",
        'c, _ = s.accept()',
        '_, fds, _, _ = socket.recv_fds(c, 16, 4)',
        'while True:',
        "    os.write(fds[0], (sys.argv[2] + '\\n').encode() * 50)",
        '    time.sleep(0.05)',
      ].join('\n'),
    );
    const giver = guestScript(
      'redteam-giver.py',
      [
        'import socket, sys, os, ctypes',
        'libc = ctypes.CDLL(None, use_errno=True)',
        'fd = libc.syscall(438, os.pidfd_open(1), 1, 0)',
        'assert fd >= 0, ctypes.get_errno()',
        's = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)',
        "s.connect('\\0' + sys.argv[1])",
        "socket.send_fds(s, [b'x'], [fd])",
      ].join('\n'),
    );
    await daemon.launch(victim);
    await daemon.launch('holder');
    const holding = daemon.exec('holder', [systemPython, holder, socketName, marker]);
    holding.catch(() => undefined);
    await eventually(async () => (await daemon.exec(victim, [systemPython, giver, socketName])).code === 0, 'the pipe is handed over');
    const monitors = () => pidsWith(`devapollo-monitor ${victim}`);
    assert.equal(monitors().length, 1);
    const deleting = performance.now();
    assert.equal((await daemon.cli(['delete', '--force', victim])).code, 0);
    await eventually(() => monitors().length === 0, "the deleted container's monitor exits");
    t.diagnostic(`the monitor was gone ${Math.round(performance.now() - deleting)} ms after delete --force began`);
    await daemon.launch(victim);
    const log = path.join(daemon.dir, 'logs', `${victim}.log`);
    // Long enough for the old monitor to fill and rotate once (64 KiB at about 50 lines of 20 bytes each 50 ms).
    await new Promise((resolve) => setTimeout(resolve, 3000));
    for (const file of [log, `${log}.1`]) {
      const text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
      assert.ok(!text.includes(marker), `${path.basename(file)} holds the deleted container's output`);
    }
  });
});

// Two records naming the same own range (a state file copied to clone a container, a
// restored backup): both containers started with it, and each read the other's files.
describe('red team: isolated ranges from the state files', () => {
  const test = gatedTest(containersUnavailable);
  let daemon: TestDaemon;

  before(async () => {
    if (containersUnavailable) return;
    daemon = await TestDaemon.start();
  });

  after(async () => {
    await daemon?.destroy();
  });

  test('two containers never run with the same own range, whatever the records say; both records are kept', async () => {
    await daemon.launch('first', { config: { 'security.idmap.isolated': 'true' } });
    await daemon.signal('SIGTERM');
    const dir = path.join(daemon.dir, 'containers');
    const record = JSON.parse(fs.readFileSync(path.join(dir, 'first.json'), 'utf8')) as Record<string, unknown>;
    const cloneFile = path.join(dir, 'clone.json');
    fs.writeFileSync(cloneFile, JSON.stringify({ ...record, name: 'clone', uuid: randomBytes(16).toString('hex'), init: null }), {
      mode: 0o600,
    });
    const cloned = fs.readFileSync(cloneFile, 'utf8');
    await daemon.spawn();
    assert.match(
      daemon.stderr,
      /a container's own id range overlaps another's: it is refused at start until one of them is deleted container=clone .*overlaps="container first's/,
    );
    const start = await daemon.cli(['start', 'clone']);
    assert.equal(start.code, 1, start.stderr);
    assert.match(
      start.stderr,
      /^Error: container clone cannot start: its own id range \(uids \d+-\d+, gids \d+-\d+\) overlaps container first's \(uids \d+-\d+, gids \d+-\d+\); two containers must never share ids .*delete one of them/,
    );
    assert.equal(fs.readFileSync(cloneFile, 'utf8'), cloned, 'the refused record is kept as it was');
    const map = async (name: string) => (await daemon.exec(name, ['cat', '/proc/self/uid_map'])).out.trim();
    const firstMap = await map('first');
    assert.match(firstMap, /^0\s+\d+\s+65536$/, 'first (re-adopted) still runs');
    // A new isolated container is given a range neither record holds.
    await daemon.launch('third', { config: { 'security.idmap.isolated': 'true' } });
    assert.notEqual(await map('third'), firstMap);
    // Once the clone is gone, the range is first's alone again.
    assert.equal((await daemon.cli(['delete', 'clone'])).code, 0);
    assert.equal((await daemon.cli(['stop', 'first'])).code, 0);
    assert.equal((await daemon.cli(['start', 'first'])).code, 0);
    assert.equal(await map('first'), firstMap);
  });
});

// The command ignores SIGHUP, SIGTERM and SIGINT (its root may make it do so, ptracing
// it): the CLI forwards those signals and nothing else, so a hung-up terminal (a closed
// ssh session) leaves the CLI (about 65 MB) and its helper running for as long as the
// container wants, and the helper outlives even a SIGKILL of the CLI.
describe("red team: exec when the caller's terminal hangs up", () => {
  const test = gatedTest(containersUnavailable);
  let daemon: TestDaemon;
  const marker = `redteam-hup-${randomBytes(6).toString('hex')}`;

  before(async () => {
    if (containersUnavailable) return;
    daemon = await TestDaemon.start();
    await daemon.launch('hup');
  });

  after(async () => {
    const clis = pidsWith(marker);
    killAll([...clis.flatMap(childrenOf), ...clis]);
    await daemon?.destroy();
  });

  test('the CLI and its helper end, even if the command ignores SIGHUP', async () => {
    const terminal = new Terminal([
      process.execPath,
      hostCli,
      '--dir',
      daemon.dir,
      'exec',
      'hup',
      '-t',
      '--',
      'sh',
      '-c',
      `trap "" HUP TERM INT QUIT; echo READY; exec sleep 100000 # ${marker}`,
    ]);
    try {
      await terminal.waitFor(/READY/, 'the command to run');
      // The CLI itself, not pty.pl, whose command line holds the same words.
      const clis = pidsWith(marker).filter((pid) => fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith(`${process.execPath}\0`));
      assert.equal(clis.length, 1);
      const helpers = childrenOf(clis[0] ?? 0);
      assert.ok(helpers.length > 0, 'the helper runs');
      const commands = helpers.flatMap(childrenOf);
      assert.ok(commands.length > 0, 'the command runs');
      // The terminal goes away, as when an ssh session drops.
      terminal.kill();
      await eventually(
        () => [...clis, ...helpers, ...commands].every((pid) => !alive(pid)),
        'the CLI, its helper and the command end',
        30_000,
      );
    } finally {
      terminal.kill();
    }
  });

  test('on pipes, a second SIGTERM ends the session of a command that ignores the first', async () => {
    const child = spawn(
      process.execPath,
      [
        hostCli,
        '--dir',
        daemon.dir,
        'exec',
        'hup',
        '-T',
        '--',
        'sh',
        '-c',
        `trap "" HUP TERM INT QUIT; echo READY; exec sleep 100000 # ${marker}-pipe`,
      ],
      { stdio: ['pipe', 'pipe', 'pipe'] },
    );
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      let out = '';
      child.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString();
      });
      await eventually(() => out.includes('READY'), 'the command to run', 30_000);
      const helpers = childrenOf(child.pid ?? 0);
      const commands = helpers.flatMap(childrenOf);
      assert.ok(commands.length > 0, 'the command runs');
      child.kill('SIGTERM');
      // Two signals sent at once may arrive as one (standard signals are not queued).
      await delay(500);
      child.kill('SIGTERM');
      assert.equal(await exited, 128 + 9, 'the command was killed after the hang-up');
      await eventually(() => [...helpers, ...commands].every((pid) => !alive(pid)), 'the helper and the command end', 30_000);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
