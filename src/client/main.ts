/**
 * `devapollo-guest`: reads this container's config and meta-data through /dev/apollo/sock.
 * Parse, call, print; errors become one `Error:` line and an exit code in runCli.
 */
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { type DynamicCompletion, finishCli, parseOrComplete, stdinArgument } from '../shared/cli.js';
import { addCommands, type CommandOutcome, commandNames } from '../shared/commands.js';
import { runCli } from '../shared/output.js';
import { GuestClient } from './api-client.js';
import { type GuestGlobals, guestCommands } from './commands/index.js';

/** The guest CLI with every command; a picked command's exit code goes to `outcome`. */
export function buildGuestCli(argv: readonly string[], outcome: CommandOutcome = { exitCode: 0 }): Argv<GuestGlobals> {
  // A lone "-" is `set KEY -`'s "value from stdin" (yargs would drop it).
  const cli = yargs(argv.map((arg) => (arg === '-' ? stdinArgument : arg)))
    .scriptName('devapollo-guest')
    .usage("$0 <command>\n\nRead this container's config and meta-data from the devapollo socket, and write its guest.* keys for the host.")
    .option('socket', { type: 'string', global: true, describe: 'the socket (env APOLLO_SOCKET)', defaultDescription: '/dev/apollo/sock' })
    .option('connect-timeout', {
      type: 'number',
      global: true,
      default: 5,
      describe: 'seconds an answer may take, body included (a wait adds its own time)',
    });
  return finishCli(addCommands(cli, guestCommands, outcome), 'devapollo-guest', complete, commandNames(guestCommands), argv);
}

/** Keys, for `get` and `wait`. */
const complete: DynamicCompletion = async (words, argv) => {
  if (words.length !== 1 || (words[0] !== 'get' && words[0] !== 'wait')) return [];
  const socketPath = typeof argv['socket'] === 'string' ? argv['socket'] : undefined;
  const urls = await new GuestClient({ socketPath, connectTimeoutMs: 1000 }).getJson<string[]>('/1.0/config');
  return urls.map((url) => decodeURIComponent(url.slice('/1.0/config/'.length)));
};

export async function main(argv: readonly string[] = hideBin(process.argv)): Promise<void> {
  await runCli(async () => {
    const outcome: CommandOutcome = { exitCode: 0 };
    await parseOrComplete(buildGuestCli(argv, outcome), argv);
    return outcome.exitCode;
  });
}
