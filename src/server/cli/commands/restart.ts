/** `devapollo restart NAME`: stop (as `stop` does) and start again, as one command. */
import { changeState, hostCommand, nameArg, stopOptions } from './shared.js';

/** `devapollo restart`. */
export const restart = hostCommand(
  (y) =>
    stopOptions(nameArg(y))
      .usage(
        "$0 restart <name> [--force] [--timeout SECONDS]\n\nStop a container (SIGTERM, SIGKILL after the timeout) and start it again with devapollo's launcher\n\n" +
          'The container stays busy from the stop to the start, so no other command slips in between. A stopped container ' +
          'is simply started. Containers another runtime started are restarted there.',
      )
      .example('$0 restart web', '')
      .example('$0 restart web --force', 'kill it rather than wait'),
  (argv) => changeState(argv, 'restart'),
);
