/**
 * `devapollo-guest`: reads this container's config and meta-data through /dev/apollo/sock.
 * Parse, call, print; errors become one `Error:` line and an exit code in runCli.
 */
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { finishCli, parseOrComplete, stdinArgument } from '../shared/cli.js';
import { runCli } from '../shared/output.js';
import { GuestClient } from './api-client.js';
import { guestCommands } from './commands/index.js';

export function buildGuestCli(argv: readonly string[]): Argv {
  // A lone "-" is `set KEY -`'s "value from stdin" (yargs would drop it).
  let cli = yargs(argv.map((arg) => (arg === '-' ? stdinArgument : arg)))
    .scriptName('devapollo-guest')
    .usage('$0 <command>\n\nRead this container\'s config and meta-data from the devapollo socket, and write its guest.* keys for the host.')
    .option('socket', { type: 'string', global: true, describe: 'the socket (env APOLLO_SOCKET)', defaultDescription: '/dev/apollo/sock' })
    .option('connect-timeout', { type: 'number', global: true, default: 5, describe: 'seconds an answer may take, body included (a wait adds its own time)' });
  for (const command of guestCommands) cli = cli.command(command);
  return finishCli(cli, 'devapollo-guest', async (words, argv) => {
    if (words.length !== 1 || (words[0] !== 'get' && words[0] !== 'wait')) return [];
    const socketPath = typeof argv['socket'] === 'string' ? argv['socket'] : undefined;
    const urls = await new GuestClient({ socketPath, connectTimeoutMs: 1000 }).getJson<string[]>('/1.0/config');
    return urls.map((url) => decodeURIComponent(url.slice('/1.0/config/'.length)));
  });
}

export async function main(argv: readonly string[] = hideBin(process.argv)): Promise<void> {
  await runCli(async () => {
    await parseOrComplete(buildGuestCli(argv), argv);
  });
}
