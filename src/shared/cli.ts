/** What both CLIs share around yargs: the common tail of their set-up. */
import type { Argv } from 'yargs';
import { ApolloError } from './errors.js';
import { packageVersion } from './version.js';

/** Completion, help, version, strictness, and usage errors as ApolloErrors (exit 2). */
export function finishCli(cli: Argv, name: string): Argv {
  return cli
    .completion('completion', 'Print a bash/zsh completion script')
    .demandCommand(1, 'Pick a command')
    .recommendCommands()
    .strict()
    .version(packageVersion)
    .help()
    .alias('h', 'help')
    .wrap(Math.min(100, process.stdout.columns || 100))
    .fail((message, error) => {
      if (error) throw error;
      throw Object.assign(new ApolloError('usage', message ?? 'invalid usage'), { usage: `Run "${name} --help" for usage.` });
    });
}
