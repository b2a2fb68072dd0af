/**
 * `devapollo`: the host CLI. Every command but `serve` and `completion` talks to the
 * daemon over DIR/unix.socket. Parse, call, print; errors become one `Error:` line and
 * an exit code in runCli, nowhere else.
 */
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { finishCli, parseOrComplete } from '../../shared/cli.js';
import { addCommands, type CommandOutcome, commandNames } from '../../shared/commands.js';
import { runCli } from '../../shared/output.js';
import { AdminClient } from '../admin/client.js';
import { resolveDir } from '../paths.js';
import { type HostGlobals, stdinArgument } from './commands/shared.js';
import { hostCommands } from './registry.js';

/** The host CLI with every command of the registry; a picked command's exit code goes to `outcome`. */
export function buildCli(argv: readonly string[], outcome: CommandOutcome = { exitCode: 0 }): Argv<HostGlobals> {
  // A lone "-" is `config set`'s "value from stdin", but only before "--": what follows
  // it is a command run inside a container (`exec`), passed through as typed.
  const dashes = argv.indexOf('--');
  const cli = yargs(argv.map((arg, i) => (arg === '-' && (dashes === -1 || i < dashes) ? stdinArgument : arg)))
    .scriptName('devapollo')
    .usage('$0 <command>\n\nServe /dev/apollo/sock to containers and manage them.')
    .option('dir', {
      type: 'string',
      describe: 'the daemon directory (env APOLLO_DIR)',
      defaultDescription: '/var/lib/apollo',
      global: true,
    })
    .parserConfiguration({ 'populate--': true, 'unknown-options-as-args': false });
  return finishCli(addCommands(cli, hostCommands, outcome), 'devapollo', completeFromDaemon, commandNames(hostCommands), argv);
}

const takesContainer = new Set(['exec', 'start', 'stop', 'restart', 'logs', 'delete', 'rm', 'monitor', 'status']);

/** Container names, and a container's keys, from the daemon (one second at most). */
async function completeFromDaemon(words: readonly string[], argv: Readonly<Record<string, unknown>>): Promise<string[]> {
  const [first, second, third] = words;
  const client = new AdminClient(resolveDir(typeof argv['dir'] === 'string' ? argv['dir'] : undefined), 1000);
  const names = async () => (await client.list()).map((c) => c.name);
  if (words.length === 1 && first !== undefined && takesContainer.has(first)) return names();
  if (first !== 'config' || second === undefined) return [];
  if (words.length === 2) return names();
  if (words.length === 3 && third !== undefined) {
    const keys = Object.keys((await client.container(third)).config);
    if (second === 'get' || second === 'unset') return keys;
    if (second === 'set') return keys.map((key) => `${key}=`);
  }
  return [];
}

export async function main(argv: readonly string[] = hideBin(process.argv)): Promise<void> {
  await runCli(async () => {
    const outcome: CommandOutcome = { exitCode: 0 };
    await parseOrComplete(buildCli(argv, outcome), argv);
    return outcome.exitCode;
  });
}
