/** Container commands: create, launch, exec, list, start, stop, delete, register. */
import type { Argv } from 'yargs';
import { ApolloError } from '../../../shared/errors.js';
import { render, writeOut } from '../../../shared/output.js';
import type { ContainerWire } from '../../../shared/wire.js';
import { execEnvironment, runExec } from '../exec-session.js';
import {
  adminClient,
  afterDashes,
  changeState,
  containerType,
  type HostGlobals,
  hostCommand,
  nameArg,
  note,
  parseAssignments,
  stopOptions,
} from './shared.js';

/** What create and launch both take: NAME, -c KEY=VALUE..., --privileged, -- CMD. */
const defineOptions = (y: Argv<HostGlobals>) =>
  nameArg(y)
    .option('config', { alias: 'c', type: 'string', array: true, default: [], describe: 'KEY=VALUE config (repeatable)' })
    .option('privileged', { type: 'boolean', default: false, describe: 'keep host root (no user namespace; no security boundary)' });

/** POST /1.0/containers: the same definition for both; `start` says whether it runs now. */
function defineContainer(
  argv: HostGlobals & { name: string; config: string[]; privileged: boolean; readonly [option: string]: unknown },
  start: boolean,
): Promise<ContainerWire> {
  const command = afterDashes(argv);
  const body = {
    name: argv.name,
    config: parseAssignments(argv.config),
    privileged: argv.privileged,
    command: command.length > 0 ? command : null,
    start,
  };
  return adminClient(argv).json<ContainerWire>('POST', '/1.0/containers', body);
}

/** `devapollo create`. */
export const create = hostCommand(
  (y) =>
    defineOptions(y)
      .usage(
        '$0 create <name> [-c KEY=VALUE]... [--privileged] [-- <command> [args...]]\n\n' +
          'Create a Stopped container whose keys can be set before anything runs\n\n' +
          "`devapollo start` runs it with devapollo's launcher (and its command, if given); without a " +
          'command, an LXC or OCI start hook with the same name may bind to it instead. The first start ' +
          'decides which of them runs it from then on.',
      )
      .example('$0 create web -c user.foo=bar', 'define it; set keys; start it later')
      .example('$0 config set web cloud-init.user-data - < ud.yaml', 'user-data before the first boot')
      .example('$0 start web', "then run it with devapollo's launcher")
      .example('lxc-start -n web', '...or with LXC, whose start hook binds to it'),
  async (argv) => {
    const container = await defineContainer(argv, false);
    note(`Created ${container.name}`);
  },
);

/** `devapollo launch`. */
export const launch = hostCommand(
  (y) =>
    defineOptions(y)
      .usage(
        '$0 launch <name> [-c KEY=VALUE]... [--privileged] [-- <command> [args...]]\n\nCreate and start a container; returns once it runs and is served',
      )
      .example('$0 launch web -c user.foo=bar', 'an idle container with one key')
      .example('$0 launch job -- sh -c "devapollo-guest get user.foo"', 'run a command as its init'),
  async (argv) => {
    const container = await defineContainer(argv, true);
    note(`Launched ${container.name} (init pid ${container.pid})`);
  },
);

/** `devapollo exec`. */
export const exec = hostCommand(
  (y) =>
    nameArg(y)
      .usage(
        '$0 exec <name> [--env KEY=VALUE]... [--cwd DIR] [-t|-T] -- <command> [args...]\n\nRun a command in a running container, as its root, in a fresh environment\n\nIt gets PATH, HOME=/root, USER=root, TERM and LANG (when set here) and the --env variables, nothing else of yours. With a terminal on stdin (or -t) it runs on a new pseudo-terminal inside the container; otherwise (or -T) on pipes, byte for byte. Stdin, stdout, stderr, signals and the exit code (128+N for signal N) pass through; the command never holds your terminal or anything else of yours. Output reaches your terminal as written (escape sequences too; -T ... | cat -v shows them). Refused in containers another runtime started (use lxc-attach, podman exec, crun exec there).',
      )
      .option('env', { type: 'string', array: true, default: [], describe: "KEY=VALUE in the command's environment (repeatable)" })
      .option('cwd', { type: 'string', default: '/', describe: 'the directory to run it in, inside the container' })
      .option('force-interactive', {
        alias: 't',
        type: 'boolean',
        default: false,
        describe: 'a pseudo-terminal even when stdin is not a terminal',
      })
      .option('force-noninteractive', { alias: 'T', type: 'boolean', default: false, describe: 'pipes even when stdin is a terminal' })
      .example('$0 exec web -- curl -s --unix-socket /dev/apollo/sock http://apollo/1.0/config', 'ask the socket from inside')
      .example('$0 exec web -- sh', 'an interactive shell (on a terminal)')
      .example('$0 exec web --env DEBUG=1 --cwd /tmp -T -- ./run.sh < input > output', 'pipes, byte for byte'),
  async (argv) => {
    const command = afterDashes(argv);
    if (command.length === 0) throw new ApolloError('usage', 'exec needs a command after "--"');
    if (argv['force-interactive'] && argv['force-noninteractive']) throw new ApolloError('usage', '-t and -T cannot be used together');
    if (!argv.cwd.startsWith('/'))
      throw new ApolloError('usage', `--cwd must be an absolute path inside the container, got ${JSON.stringify(argv.cwd)}`);
    const environment = execEnvironment(process.env, argv.env);
    const terminal = argv['force-interactive'] || (!argv['force-noninteractive'] && process.stdin.isTTY === true);
    const container = await adminClient(argv).container(argv.name);
    if (container.state !== 'Running' || container.start_time === null) {
      throw new ApolloError('conflict', `container ${argv.name} is not running`);
    }
    // exec enters the namespaces as host root and nothing more: it confines a command as
    // devapollo's launcher confines its inits (a user namespace, or none when privileged),
    // not as another runtime does (dropped capabilities, seccomp, cgroups, an LSM profile).
    // A command run so in a rootful OCI or LXC container is host root inside a tree its
    // root controls (a planted /bin/true mounted the host's disk); that runtime's own exec
    // applies its confinement.
    if (container.origin === 'register') {
      throw new ApolloError(
        'forbidden',
        `container ${argv.name} was started by another runtime (it registered through a hook or "devapollo register"): ` +
          "devapollo exec would run the command as host root without that container's capabilities, seccomp filter, cgroups and " +
          `security profile; use the runtime's own exec (lxc-attach -n ${argv.name}, podman exec, crun exec or runc exec)`,
      );
    }
    return runExec({ pid: container.pid, startTime: container.start_time, command, environment, cwd: argv.cwd, terminal });
  },
);

/** `devapollo list`. */
export const list = hostCommand(
  (y) =>
    y
      .option('format', { alias: 'f', choices: ['table', 'json', 'yaml', 'csv'] as const, default: 'table' as const })
      .example('$0 list --format json', 'every container with its config'),
  async (argv) => {
    const containers = await adminClient(argv).list();
    // As LXD's `lxc list`: a stopped container has no pid and no guest to be in a state,
    // so the table leaves both empty; JSON and YAML keep pid 0 and guest_state (the contract).
    const output = await render(argv.format, containers, () => ({
      head: ['NAME', 'STATE', 'GUEST STATE', 'PID', 'TYPE'],
      rows: containers.map((c) => {
        const running = c.state === 'Running';
        return [c.name, c.state, running ? c.guest_state : '', running ? String(c.pid) : '', containerType(c)];
      }),
    }));
    await writeOut(output);
  },
);

/** `devapollo start`. */
export const start = hostCommand(
  (y) => nameArg(y).example('$0 start web', ''),
  async (argv) => {
    await adminClient(argv).json('PUT', `/1.0/containers/${encodeURIComponent(argv.name)}/state`, { action: 'start' });
  },
);

/** `devapollo stop`. */
export const stop = hostCommand(
  (y) =>
    stopOptions(nameArg(y))
      .usage(
        '$0 stop <name> [--force] [--timeout SECONDS]\n\nStop a container: SIGTERM to its init, SIGKILL after the timeout\n\n' +
          "Once asked, the stop is the daemon's: Ctrl-C here ends only this command. A second stop waits for the same end; " +
          'with --force it kills the init at once, so the container is not held busy until the first timeout.',
      )
      .example('$0 stop web', '')
      .example('$0 stop web --force', 'kill it now (also ends a stop under way)'),
  (argv) => changeState(argv, 'stop'),
);

/** `devapollo delete`. */
export const deleteContainer = hostCommand(
  (y) =>
    nameArg(y)
      .option('force', { alias: 'f', type: 'boolean', default: false, describe: 'kill it first if it runs' })
      .example('$0 delete web --force', ''),
  async (argv) => {
    await adminClient(argv).request('DELETE', `/1.0/containers/${encodeURIComponent(argv.name)}${argv.force ? '?force=true' : ''}`);
  },
);

/** `devapollo register`. */
export const register = hostCommand(
  (y) =>
    nameArg(y)
      .option('pid', { type: 'number', demandOption: true, describe: "the container init's pid on the host" })
      .option('config', { alias: 'c', type: 'string', array: true, default: [], describe: 'KEY=VALUE config (repeatable)' })
      .example('$0 register c1 --pid 4242', ''),
  async (argv) => {
    if (!Number.isSafeInteger(argv.pid) || argv.pid <= 0) throw new ApolloError('usage', '--pid must be a positive integer');
    await adminClient(argv).json('PUT', `/1.0/containers/${encodeURIComponent(argv.name)}/init`, {
      pid: argv.pid,
      config: parseAssignments(argv.config),
    });
  },
);
