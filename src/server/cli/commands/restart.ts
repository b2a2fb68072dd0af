/** `devapollo restart NAME`: stop (as `stop` does) and start again, as one command. */
import type { CommandModule } from 'yargs';
import { changeState, stopOptions } from './shared.js';

type Global = { dir?: string | undefined };

export const restartCommand: CommandModule<Global, Global & { name: string; force: boolean; timeout: number }> = {
  command: 'restart <name>',
  describe: "Stop a container (SIGTERM, SIGKILL after the timeout) and start it again with devapollo's launcher",
  builder: (y) =>
    stopOptions(y.positional('name', { type: 'string', demandOption: true, describe: 'container name' }))
      .usage(
        "$0 restart <name> [--force] [--timeout SECONDS]\n\nStop a container (SIGTERM, SIGKILL after the timeout) and start it again with devapollo's launcher\n\n" +
          'The container stays busy from the stop to the start, so no other command slips in between. A stopped container ' +
          'is simply started. Containers another runtime started are restarted there.',
      )
      .example('$0 restart web', '')
      .example('$0 restart web --force', 'kill it rather than wait') as never,
  handler: (argv) => changeState(argv, 'restart'),
};
