/**
 * Other runtimes for the tests: real LXC and crun containers whose hooks call the real
 * `devapollo hook`, and what the machine must have for each. Every container a helper
 * creates is destroyed by its `destroy()`, even when a test failed half-way.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { guestTool, hostCli, type RunResult, repoRoot, run, type TestDaemon } from './daemon.js';
import { containersUnavailable, curlUnavailable } from './env.js';

function works(command: string, args: readonly string[]): boolean {
  return spawnSync(command, args, { stdio: 'ignore', timeout: 10_000 }).status === 0;
}

const installHint = 'scripts/install-test-deps.sh installs it';

/** Why LXC tests cannot run here, or false. */
export const lxcUnavailable: string | false =
  curlUnavailable ||
  (!works('lxc-create', ['--version'])
    ? `needs LXC (Debian's lxc package; ${installHint})`
    : !fs.existsSync('/usr/share/lxc/templates/lxc-busybox') || !works('busybox', ['true'])
      ? `needs LXC's busybox template and busybox (Debian's busybox-static; ${installHint})`
      : false);

/** The OCI runtimes the tests run bundles with. */
export type OciRuntime = 'crun' | 'runc';

/** Why tests of OCI runtime RUNTIME cannot run here, or false. */
export function ociRuntimeUnavailable(runtime: OciRuntime): string | false {
  return curlUnavailable || (!works(runtime, ['--version']) ? `needs ${runtime} (Debian's ${runtime} package; ${installHint})` : false);
}

/** Why crun tests cannot run here, or false. */
export const crunUnavailable: string | false = ociRuntimeUnavailable('crun');

/** Debian's cloud-init: its LXD datasource, run by the system python3 it is installed for. */
export const systemPython = '/usr/bin/python3';
export const lxdDatasource = '/usr/lib/python3/dist-packages/cloudinit/sources/DataSourceLXD.py';

/** Why cloud-init tests cannot run here, or false. */
export const cloudInitUnavailable: string | false =
  containersUnavailable ||
  (!fs.existsSync(lxdDatasource) || !works(systemPython, ['-c', 'import cloudinit.sources.DataSourceLXD'])
    ? `needs Debian's cloud-init package (${lxdDatasource}); ${installHint}`
    : false);

/** A container as `devapollo list --format json` shows it. */
export interface Listed {
  readonly name: string;
  readonly state: string;
  readonly guest_state: string;
  readonly pid: number;
  readonly origin: string;
  readonly command: readonly string[] | null;
  readonly config: Record<string, string>;
}

export async function listContainers(daemon: TestDaemon): Promise<Listed[]> {
  const r = await daemon.cli(['list', '--format', 'json']);
  if (r.code !== 0) throw new Error(`devapollo list failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.out) as Listed[];
}

/** The container NAME as listed, or undefined. */
export async function listed(daemon: TestDaemon, name: string): Promise<Listed | undefined> {
  return (await listContainers(daemon)).find((c) => c.name === name);
}

/**
 * A container's keys without its claim (`volatile.devapollo.claim`, random, made with
 * every container a runtime's hook may bind to), which must be there.
 */
export function keysBesidesClaim(config: Readonly<Record<string, string>> | undefined): Record<string, string> {
  const { 'volatile.devapollo.claim': claim, ...keys } = config ?? {};
  if (!/^[0-9a-f]{64}$/.test(claim ?? '')) throw new Error(`no claim in ${JSON.stringify(config)}`);
  return keys;
}

/** A world-readable temporary directory: containers whose root is not host root can read it. */
export function sharedTempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  fs.chmodSync(dir, 0o755);
  return dir;
}

/** The argv that runs this checkout's `devapollo --dir DIR`, as a hook would. */
export function devapolloArgv(dir: string): string[] {
  return [process.execPath, hostCli, '--dir', dir];
}

/**
 * Quotes a word for sh (LXC runs hooks through `sh -c`), only when it needs it: LXC strips
 * quotes that wrap a whole config value, which would break a quoted first word.
 */
function shellWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

export interface LxcContainerOptions {
  /** The daemon directory the hooks and the mount use. */
  readonly dir: string;
  /** `-c KEY=VALUE` given to the start hook. */
  readonly config?: Readonly<Record<string, string>>;
  /** Which stop hook lets go (both work). */
  readonly stopHook?: 'stop' | 'post-stop';
  /** lxc.hook.version: 0 passes name and type as arguments, 1 only in the environment. */
  readonly hookVersion?: 0 | 1;
  /** An unprivileged container: `lxc.idmap` maps its root to host uid 1000000 (and gid). */
  readonly unprivileged?: boolean;
  /** Config lines added after devapollo's. */
  readonly extraLines?: readonly string[];
}

/** The id map of an unprivileged container, as the README's example has it. */
export const unprivilegedIdmap = ['lxc.idmap = u 0 1000000 65536', 'lxc.idmap = g 0 1000000 65536'];

/** Why tests that boot the Debian root filesystem of scripts/build-test-rootfs.sh cannot run here, or false. */
export const debianRootfsUnavailable: string | false =
  lxcUnavailable || (!works('debootstrap', ['--version']) ? `needs debootstrap to build a Debian root filesystem (${installHint})` : false);

/**
 * The Debian root filesystem with systemd and Debian's cloud-init, from the cache
 * (scripts/build-test-rootfs.sh builds it on first use, once for all tests at once). Never
 * written to: containers boot it through an overlay.
 */
export async function debianRootfs(): Promise<string> {
  const r = await run(path.join(repoRoot, 'scripts', 'build-test-rootfs.sh'), [], { timeoutMs: 30 * 60_000 });
  if (r.code !== 0) throw new Error(`scripts/build-test-rootfs.sh failed (${r.code}):\n${r.stderr}`);
  return r.out.trim();
}

/**
 * LXC containers in a private lxcpath, made with `lxc-create -t busybox` (offline), with
 * the host's /usr bound read-only so that curl and node run inside, the guest client's
 * directory, and DIR/devapollo at /dev/apollo, exactly as the README tells users.
 */
export class LxcHost {
  readonly lxcpath = fs.mkdtempSync(path.join(os.tmpdir(), 'devapollo-lxc-'));
  private readonly names = new Set<string>();
  private readonly systemContainers = new Set<string>();

  constructor() {
    // An unprivileged container's root must be able to pass through the lxcpath to its
    // root filesystem (LXC: "Could not access ...: Please grant it x access").
    fs.chmodSync(this.lxcpath, 0o711);
  }

  private lxc(command: string, args: readonly string[], timeoutMs = 60_000): Promise<RunResult> {
    return run(command, ['-P', this.lxcpath, ...args], { timeoutMs });
  }

  async create(name: string, options: LxcContainerOptions): Promise<void> {
    // Our own base config instead of /etc/lxc/default.conf: no network (no lxcbr0 needed),
    // and no AppArmor profile to generate (a no-op on hosts without AppArmor).
    const base = path.join(this.lxcpath, `${name}.base.conf`);
    const idmap = options.unprivileged ? unprivilegedIdmap : [];
    fs.writeFileSync(base, ['lxc.net.0.type = empty', 'lxc.apparmor.profile = unconfined', ...idmap, ''].join('\n'));
    this.names.add(name);
    const created = await this.lxc('lxc-create', ['-n', name, '-t', 'busybox', '-f', base]);
    if (created.code !== 0) throw new Error(`lxc-create ${name} failed (${created.code}): ${created.stderr}`);
    const hook = [...devapolloArgv(options.dir), 'hook', 'lxc'];
    const startHook = [...hook];
    for (const [key, value] of Object.entries(options.config ?? {})) startHook.push('-c', `${key}=${value}`);
    const guestDir = path.dirname(guestTool());
    const lines = [
      '',
      '# devapollo',
      'lxc.mount.entry = /usr usr none ro,bind 0 0',
      `lxc.mount.entry = ${guestDir} ${guestDir.slice(1)} none ro,bind,create=dir 0 0`,
      `lxc.mount.entry = ${path.join(options.dir, 'devapollo')} dev/apollo none ro,bind,create=dir 0 0`,
      `lxc.hook.version = ${options.hookVersion ?? 0}`,
      `lxc.hook.start-host = ${startHook.map(shellWord).join(' ')}`,
      `lxc.hook.${options.stopHook ?? 'post-stop'} = ${hook.map(shellWord).join(' ')}`,
      ...(options.extraLines ?? []),
      '',
    ];
    fs.appendFileSync(path.join(this.lxcpath, name, 'config'), lines.join('\n'));
  }

  /**
   * A system container booting `rootfs` (its /sbin/init) through an overlay whose upper
   * layer is the container's own, so the cached tree is never changed; `lines` are the
   * devapollo lines (the test takes them from the README). Privileged, no network.
   */
  createFromRootfs(name: string, rootfs: string, lines: string): void {
    const dir = path.join(this.lxcpath, name);
    fs.mkdirSync(path.join(dir, 'upper'), { recursive: true });
    this.systemContainers.add(name);
    const config = [
      'lxc.include = /usr/share/lxc/config/common.conf',
      `lxc.uts.name = ${name}`,
      `lxc.rootfs.path = overlay:${rootfs}:${path.join(dir, 'upper')}`,
      'lxc.net.0.type = empty',
      'lxc.apparmor.profile = unconfined',
      '',
      '# devapollo',
      lines,
      '',
    ];
    fs.writeFileSync(path.join(dir, 'config'), config.join('\n'));
  }

  /** Destroys `name` with the others in destroy(), for a container made by other means. */
  adopt(name: string): void {
    this.names.add(name);
  }

  /** lxc-start, daemonized; resolves with its result (a failing start hook fails it). Hooks inherit `env`. */
  start(name: string, env?: NodeJS.ProcessEnv): Promise<RunResult> {
    return run('lxc-start', ['-P', this.lxcpath, '-n', name, '-l', 'DEBUG', '-o', this.logFile(name)], {
      timeoutMs: 60_000,
      ...(env ? { env } : {}),
    });
  }

  stop(name: string): Promise<RunResult> {
    return this.lxc('lxc-stop', ['-n', name, '-t', '30']);
  }

  logFile(name: string): string {
    return path.join(this.lxcpath, `${name}.log`);
  }

  /** The container's state and init pid, from lxc-info. */
  async info(name: string): Promise<{ state: string; pid: number }> {
    const r = await this.lxc('lxc-info', ['-n', name, '-s', '-p']);
    const field = (label: string) => new RegExp(`^${label}:\\s*(.*)$`, 'm').exec(r.out)?.[1]?.trim() ?? '';
    return { state: field('State'), pid: Number(field('PID')) || 0 };
  }

  /** Runs a command inside with lxc-attach (`options.uid`/`gid`: as that user of the container). */
  attach(name: string, command: readonly string[], options: { uid?: number; gid?: number; timeoutMs?: number } = {}): Promise<RunResult> {
    const ids = [
      ...(options.uid === undefined ? [] : ['-u', String(options.uid)]),
      ...(options.gid === undefined ? [] : ['-g', String(options.gid)]),
    ];
    return this.lxc('lxc-attach', ['-n', name, ...ids, '--', ...command], options.timeoutMs);
  }

  /** curl on /dev/apollo/sock from inside. */
  curl(name: string, target: string): Promise<RunResult> {
    return this.attach(name, ['/usr/bin/curl', '-sS', '--unix-socket', '/dev/apollo/sock', `http://apollo${target}`]);
  }

  /** Stops and destroys every container made here, and the lxcpath. */
  async destroy(): Promise<void> {
    for (const name of this.names) await this.lxc('lxc-destroy', ['-n', name, '-f']).catch(() => undefined);
    // Not lxc-destroy: the overlay's lower layer is the cache; only the container's own
    // directory (upper layer, work directory, config) goes.
    for (const name of this.systemContainers) await this.lxc('lxc-stop', ['-n', name, '-k']).catch(() => undefined);
    fs.rmSync(this.lxcpath, { recursive: true, force: true });
  }
}

export interface OciBundleOptions {
  /** The daemon directory the hooks and the mount use. */
  readonly dir: string;
  readonly annotations?: Readonly<Record<string, string>>;
  /** false: share the host's pid namespace (no container init for the hook to register). */
  readonly pidNamespace?: boolean;
  /** The hooks' environment besides PATH (an OCI hook gets only what config.json gives it). */
  readonly hookEnv?: Readonly<Record<string, string>>;
}

/**
 * crun or runc containers with their own state root. Each bundle's config.json has the
 * hooks and the /dev/apollo mount a user writes; the root filesystem is a few symlinks into
 * the host's /usr, bound read-only.
 */
export class OciHost {
  readonly root: string;
  private readonly ids = new Set<string>();

  constructor(readonly runtime: OciRuntime = 'crun') {
    this.root = fs.mkdtempSync(path.join(os.tmpdir(), `devapollo-${runtime}-`));
    const rootfs = path.join(this.root, 'rootfs');
    for (const dir of ['usr', 'proc', 'dev', 'sys', 'tmp', 'etc', 'opt/guest']) fs.mkdirSync(path.join(rootfs, dir), { recursive: true });
    for (const link of ['bin', 'sbin', 'lib', 'lib64']) fs.symlinkSync(`usr/${link}`, path.join(rootfs, link));
  }

  /** Runs the runtime with this host's state root; crun as hybridCgroupWrapped() says. */
  runtimeCommand(args: readonly string[]): Promise<RunResult> {
    const command = [this.runtime, '--root', path.join(this.root, 'state'), ...args];
    const [file, ...rest] = this.runtime === 'crun' ? hybridCgroupWrapped(command) : command;
    return runToFiles(file ?? this.runtime, rest);
  }

  /** Writes a bundle for `id` and runs it detached; resolves with crun's result. */
  async run(id: string, options: OciBundleOptions): Promise<RunResult> {
    const bundle = path.join(this.root, 'bundles', id);
    fs.mkdirSync(bundle, { recursive: true });
    fs.writeFileSync(path.join(bundle, 'config.json'), JSON.stringify(this.config(id, options), null, 2));
    this.ids.add(id);
    return this.runtimeCommand(['run', '--detach', '--bundle', bundle, id]);
  }

  exec(id: string, command: readonly string[]): Promise<RunResult> {
    return this.runtimeCommand(['exec', id, ...command]);
  }

  curl(id: string, target: string): Promise<RunResult> {
    return this.exec(id, ['/usr/bin/curl', '-sS', '--unix-socket', '/dev/apollo/sock', `http://apollo${target}`]);
  }

  /** The container's state as crun reports it, or undefined when crun knows no such container. */
  async state(id: string): Promise<{ status: string; pid: number } | undefined> {
    const r = await this.runtimeCommand(['state', id]);
    if (r.code !== 0) return undefined;
    return JSON.parse(r.out) as { status: string; pid: number };
  }

  /** Kills the container's process; it stays, stopped, until deleted (no poststop yet). */
  kill(id: string): Promise<RunResult> {
    return this.runtimeCommand(['kill', id, 'KILL']);
  }

  /** Kills the container and deletes it: the runtime runs the poststop hooks on delete. */
  delete(id: string): Promise<RunResult> {
    return this.runtimeCommand(['delete', '--force', id]);
  }

  /**
   * What the hooks of `id` printed on stderr (its Error: and Warning: lines): crun writes
   * it to the file its annotation names; runc quotes it in its own log line on stderr
   * (`... error running hook: exit status 2, stdout: , stderr: Error: ...\n"`).
   */
  hookStderr(id: string, result?: RunResult): string {
    if (this.runtime === 'runc') {
      const quoted = [...(result?.stderr ?? '').matchAll(/, stderr: (.*)"$/gm)].at(-1)?.[1];
      return quoted === undefined ? '' : (JSON.parse(`"${quoted}"`) as string);
    }
    try {
      return fs.readFileSync(this.hookStderrFile(id), 'utf8');
    } catch {
      return '';
    }
  }

  private hookStderrFile(id: string): string {
    return path.join(this.root, 'bundles', id, 'hooks.stderr');
  }

  async destroy(): Promise<void> {
    for (const id of this.ids) await this.delete(id).catch(() => undefined);
    fs.rmSync(this.root, { recursive: true, force: true });
  }

  private config(id: string, options: OciBundleOptions): unknown {
    const env = Object.entries(options.hookEnv ?? {}).map(([key, value]) => `${key}=${value}`);
    const hook = (stage: string) => {
      const [node, ...args] = [...devapolloArgv(options.dir), 'hook', 'oci', stage];
      return [{ path: node, args: [node, ...args], ...(env.length > 0 ? { env } : {}) }];
    };
    const namespaces = ['pid', 'ipc', 'uts', 'mount'].filter((ns) => ns !== 'pid' || options.pidNamespace !== false);
    return {
      ociVersion: '1.0.2',
      process: {
        terminal: false,
        user: { uid: 0, gid: 0 },
        args: ['/usr/bin/sleep', 'infinity'],
        env: ['PATH=/usr/bin:/bin'],
        cwd: '/',
        capabilities: { bounding: ['CAP_KILL'], effective: ['CAP_KILL'], permitted: ['CAP_KILL'] },
        noNewPrivileges: true,
      },
      root: { path: path.join(this.root, 'rootfs'), readonly: true },
      hostname: id,
      // crun throws away what hooks print unless told where to write it.
      annotations: { 'run.oci.hooks.stderr': this.hookStderrFile(id), ...options.annotations },
      mounts: [
        { destination: '/proc', type: 'proc', source: 'proc' },
        { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
        { destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev'] },
        { destination: '/usr', type: 'bind', source: '/usr', options: ['rbind', 'ro'] },
        { destination: '/opt/guest', type: 'bind', source: path.dirname(guestTool()), options: ['bind', 'ro'] },
        // What the README tells users to add: the daemon's directory, read-only, at /dev/apollo.
        { destination: '/dev/apollo', type: 'bind', source: path.join(options.dir, 'devapollo'), options: ['bind', 'ro'] },
      ],
      hooks: { createRuntime: hook('createRuntime'), poststop: hook('poststop') },
      linux: { namespaces: namespaces.map((type) => ({ type })) },
    };
  }
}

/** Why podman tests cannot run here, or false. */
export const podmanUnavailable: string | false =
  curlUnavailable ||
  (!works('podman', ['--version'])
    ? `needs podman (Debian's podman package; ${installHint})`
    : isHybridCgroupHost() && !works('runc', ['--version'])
      ? `needs runc on this hybrid-cgroup host, where podman's crun cannot run containers (${installHint})`
      : false);

/** Whether this process may raise its resource limits (CAP_SYS_RESOURCE, bit 24). */
function canRaiseLimits(): boolean {
  const effective = /^CapEff:\s*([0-9a-f]+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '0';
  return (BigInt(`0x${effective}`) & (1n << 24n)) !== 0n;
}

/**
 * podman with a store of its own (`--root`, `--runroot`, `--tmpdir` in a temporary
 * directory), so that the tests neither see nor touch other containers and images on the
 * machine, and leave nothing behind: destroy() removes every container and image made
 * here, then the store.
 */
export class PodmanHost {
  readonly root = fs.mkdtempSync(path.join(os.tmpdir(), 'devapollo-podman-'));

  /** podman's global options for this store. */
  readonly globalArgs = [
    '--root',
    path.join(this.root, 'storage'),
    '--runroot',
    path.join(this.root, 'run'),
    '--tmpdir',
    path.join(this.root, 'tmp'),
    '--cgroup-manager',
    'cgroupfs',
    '--events-backend',
    'none',
  ];

  /**
   * What `podman run` needs on this machine beyond what a user types: no network (podman's
   * default bridge would change the host's network, which others share), runc where crun
   * cannot run (hybrid cgroups, as the README says), and, where root may not raise its
   * limits (no CAP_SYS_RESOURCE, as in a container), modest limits instead of podman's
   * defaults (a million open files and more processes than podman's own processes may have
   * here: the runtime fails with "setrlimit: operation not permitted").
   */
  static readonly hostRunArgs: readonly string[] = [
    '--network',
    'none',
    ...(isHybridCgroupHost() ? ['--runtime', 'runc'] : []),
    ...(canRaiseLimits() ? [] : ['--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024']),
  ];

  podman(args: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<RunResult> {
    return runToFiles('podman', [...this.globalArgs, ...args], env);
  }

  /** The shell word that runs this host's podman: README examples call `podman` through it. */
  get command(): string {
    return ['podman', ...this.globalArgs].join(' ');
  }

  /** curl on /dev/apollo/sock from inside; `-w` gives the status on a line of its own. */
  curl(name: string, target: string): Promise<RunResult> {
    return this.podman([
      'exec',
      name,
      'curl',
      '-sS',
      '-w',
      '\n%{http_code}',
      '--unix-socket',
      '/dev/apollo/sock',
      `http://apollo${target}`,
    ]);
  }

  async destroy(): Promise<void> {
    await this.podman(['rm', '--all', '--force', '--time', '0']).catch(() => undefined);
    await this.podman(['rmi', '--all', '--force']).catch(() => undefined);
    // Whatever podman left mounted in its store (nothing, when the two above worked).
    const mounts = fs
      .readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((line) => line.split(' ')[4] ?? '');
    for (const mount of mounts.filter((m) => m.startsWith(`${this.root}/`)).reverse()) {
      await run('umount', ['-l', mount]).catch(() => undefined);
    }
    fs.rmSync(this.root, { recursive: true, force: true });
  }
}

/**
 * A real syslog daemon on a socket of its own: Debian's static busybox syslogd, chrooted
 * into a temporary directory, so that its /dev/log is DIR/dev/log and its log file
 * DIR/messages, and nothing of the host's is touched.
 */
export class BusyboxSyslog {
  readonly root = fs.mkdtempSync(path.join(os.tmpdir(), 'devapollo-syslog-'));
  readonly socket = path.join(this.root, 'dev/log');
  private child: ChildProcess | undefined;

  /** Starts syslogd and waits until its socket exists. */
  async start(): Promise<this> {
    fs.copyFileSync(busyboxPath, path.join(this.root, 'busybox'));
    fs.chmodSync(path.join(this.root, 'busybox'), 0o755);
    fs.mkdirSync(path.join(this.root, 'dev'));
    this.child = spawn('chroot', [this.root, '/busybox', 'syslogd', '-n', '-O', '/messages'], { stdio: 'ignore' });
    const deadline = Date.now() + 20_000;
    while (!fs.existsSync(this.socket)) {
      if (Date.now() > deadline || this.child.exitCode !== null) throw new Error('busybox syslogd did not start');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return this;
  }

  /** The log file's lines that contain `text`. */
  lines(text: string): string[] {
    let log = '';
    try {
      log = fs.readFileSync(path.join(this.root, 'messages'), 'utf8');
    } catch {
      // Nothing logged yet.
    }
    return log.split('\n').filter((line) => line.includes(text));
  }

  async stop(): Promise<void> {
    if (this.child !== undefined && this.child.exitCode === null) {
      this.child.kill('SIGKILL');
      await once(this.child, 'exit');
    }
    fs.rmSync(this.root, { recursive: true, force: true });
  }
}

const busyboxPath = '/bin/busybox';

/** Why busybox syslogd cannot be run here, or false. */
export const syslogUnavailable: string | false =
  containersUnavailable ||
  (!fs.existsSync(busyboxPath) || !works(busyboxPath, ['syslogd', '--help'])
    ? `needs a static busybox with syslogd at ${busyboxPath} (Debian's busybox-static; ${installHint})`
    : false);

/**
 * Like run(), but with stdout and stderr in files and waiting for the exit, not for the
 * pipes to close: a detached container inherits its runtime's stdio and would hold pipes
 * open.
 */
export async function runToFiles(command: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<RunResult> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'devapollo-out-'));
  const outFile = path.join(dir, 'stdout');
  const errFile = path.join(dir, 'stderr');
  const out = fs.openSync(outFile, 'w');
  const err = fs.openSync(errFile, 'w');
  try {
    const child = spawn(command, args, { stdio: ['ignore', out, err], env });
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
    clearTimeout(timer);
    const stdout = fs.readFileSync(outFile);
    return { code, signal, stdout, out: stdout.toString('utf8'), stderr: fs.readFileSync(errFile, 'utf8') };
  } finally {
    fs.closeSync(out);
    fs.closeSync(err);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function isHybridCgroupHost(): boolean {
  try {
    const mounts = fs.readFileSync('/proc/self/mountinfo', 'utf8');
    return mounts.split('\n').some((line) => line.split(' ')[4] === '/sys/fs/cgroup/unified');
  } catch {
    return false;
  }
}

/**
 * Whether this host has hybrid cgroups: v1 controllers plus an empty v2 hierarchy at
 * /sys/fs/cgroup/unified. crun refuses to run any container there ("cgroups in hybrid mode
 * not supported"); runc runs.
 */
export const hybridCgroupHost = isHybridCgroupHost();

/**
 * A crun command line as the README tells users to run crun on a hybrid-cgroup host: in a
 * private mount namespace without the v2 mount. Elsewhere, the command unchanged.
 */
export function hybridCgroupWrapped(command: readonly string[]): string[] {
  if (!hybridCgroupHost) return [...command];
  return ['unshare', '-m', '--propagation', 'private', 'sh', '-c', 'umount /sys/fs/cgroup/unified && exec "$0" "$@"', ...command];
}
