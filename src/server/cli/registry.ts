/**
 * Every `devapollo` command, in the order `--help` lists them. A command's module is
 * imported only when the command is picked: `devapollo --help` and `devapollo list` load
 * neither the daemon (`serve`) nor exec's terminal code nor the hooks.
 */
import type { CommandEntry } from '../../shared/commands.js';
import { ociStages } from '../admin/hooks/oci-hook.js';
import type { HostGlobals } from './commands/shared.js';

const containers = () => import('./commands/containers.js');
const config = () => import('./commands/config.js');
const hooks = () => import('./commands/hook.js');
const identity = () => import('./commands/identity.js');

export const hostCommands: readonly CommandEntry<HostGlobals>[] = [
  {
    command: 'serve',
    describe: 'Run the daemon in the foreground (SIGINT/SIGTERM stop it; containers keep running)',
    load: async () => (await import('./commands/serve.js')).serve,
  },
  {
    command: 'status [name]',
    describe: 'Show the daemon: version, uptime, sockets, counts; or one container: state, command, its last exit status',
    load: async () => (await import('./commands/status.js')).status,
  },
  {
    command: 'monitor [name]',
    describe: 'Show config and lifecycle events as they happen (all containers, or one)',
    load: async () => (await import('./commands/monitor.js')).monitor,
  },
  {
    command: 'hook',
    describe: 'Runtime hooks: register containers LXC or an OCI runtime starts, and let them go when they stop',
    subcommands: [
      {
        command: 'lxc [args..]',
        describe: 'For lxc.hook.start-host (register) and lxc.hook.stop / post-stop (let go, keeping the config)',
        load: async () => (await hooks()).lxc,
      },
      {
        command: 'oci <stage>',
        describe: `For OCI runtime hooks; STAGE is the hook's stage (${Object.keys(ociStages).join(', ')}); the state JSON comes on stdin`,
        load: async () => (await hooks()).oci,
      },
    ],
  },
  {
    command: 'identity <command>',
    describe: 'Workload identity tokens: the JWK Set, key rotation, verification',
    subcommands: [
      {
        command: 'jwks',
        describe: 'Print the JWK Set that verifies identity tokens (the current key and those not yet retired)',
        load: async () => (await identity()).jwks,
      },
      {
        command: 'rotate',
        describe: 'Make a new signing key; the old one stays in the JWK Set until every token it signed has expired',
        load: async () => (await identity()).rotate,
      },
      {
        command: 'verify <token>',
        describe: 'Check a token: print its claims (exit 0), or why it is not valid (exit 4)',
        load: async () => (await identity()).verify,
      },
    ],
  },
  {
    command: 'create <name>',
    describe: "Create a Stopped container: set its keys, then start it or let a runtime's hook bind it",
    load: async () => (await containers()).create,
  },
  {
    command: 'launch <name>',
    describe: 'Create and start a container; returns once it runs and is served',
    load: async () => (await containers()).launch,
  },
  {
    command: 'exec <name>',
    describe: 'Run a command in a running container, as its root, in a fresh environment',
    load: async () => (await containers()).exec,
  },
  {
    command: 'list',
    aliases: ['ls'],
    describe: 'List containers',
    load: async () => (await containers()).list,
  },
  {
    command: 'start <name>',
    describe: "Start a created or stopped container with devapollo's launcher",
    load: async () => (await containers()).start,
  },
  {
    command: 'stop <name>',
    describe: 'Stop a container: SIGTERM to its init, SIGKILL after the timeout',
    load: async () => (await containers()).stop,
  },
  {
    command: 'restart <name>',
    describe: "Stop a container (SIGTERM, SIGKILL after the timeout) and start it again with devapollo's launcher",
    load: async () => (await import('./commands/restart.js')).restart,
  },
  {
    command: 'logs <name>',
    describe: "Show a container's output (its init's stdout and stderr, from the capped log)",
    load: async () => (await import('./commands/logs.js')).logs,
  },
  {
    command: 'delete <name>',
    aliases: ['rm'],
    describe: 'Delete a stopped container (--force: a running one too)',
    load: async () => (await containers()).deleteContainer,
  },
  {
    command: 'register <name>',
    describe: 'Adopt a container another runtime started, by the host pid of its init',
    load: async () => (await containers()).register,
  },
  {
    command: 'config <command>',
    describe: 'Read and change container config',
    subcommands: [
      {
        command: 'set <name> <assignments..>',
        describe: 'Set config keys (KEY=VALUE..., or KEY - for the exact bytes of stdin); "" unsets',
        load: async () => (await config()).set,
      },
      {
        command: 'get <name> <key>',
        describe: "Print a key's value, byte for byte (exit 3 when it is not set)",
        load: async () => (await config()).get,
      },
      { command: 'unset <name> <key>', describe: 'Remove a key', load: async () => (await config()).unset },
      { command: 'show <name>', describe: "Show a container's config", load: async () => (await config()).show },
    ],
  },
];
