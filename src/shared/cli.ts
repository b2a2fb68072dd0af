/** What both CLIs share around yargs: the common tail of their set-up. */
import type { Argv } from 'yargs';
import { ApolloError } from './errors.js';
import { packageVersion } from './version.js';

/**
 * yargs drops a lone "-" argument; `config set NAME KEY -` and the guest's `set KEY -`
 * need it, so main passes it on as this marker (no real argument can hold a NUL byte).
 */
export const stdinArgument = '\u0000-';

/**
 * Completions beyond commands and options: given the words typed so far (after the
 * program's name) and the options, what may come next (container names, keys), from
 * the daemon. Failures give nothing: completion must never print an error.
 */
export type DynamicCompletion = (words: readonly string[], argv: Readonly<Record<string, unknown>>) => Promise<string[]>;

/** Completion, help, version, strictness, and usage errors as ApolloErrors (exit 2). */
export function finishCli<T>(cli: Argv<T>, name: string, dynamic?: DynamicCompletion): Argv<T> {
  return cli
    .completion('completion', 'Print a bash/zsh completion script (source it from your shell rc)', completeWith(dynamic))
    .demandCommand(1, 'Pick a command')
    .recommendCommands()
    .strict()
    .version(packageVersion)
    .help()
    .alias('h', 'help')
    .wrap(Math.min(100, process.stdout.columns || 100))
    .fail((message, error) => {
      if (error) throw error;
      throw Object.assign(new ApolloError('usage', oneLine(message ?? 'invalid usage')), { usage: `Run "${name} --help" for usage.` });
    });
}

/** One of yargs' lines for a value outside an option's `choices`. */
const invalidChoice = /^\s*Argument: (.+?), Given: (.+), Choices: (.+)$/;

/**
 * yargs' message in one line, as the error line must be: a value outside an option's
 * `choices` comes as "Invalid values:" with the option, the value and the choices on the
 * lines below, which a one-line error would drop; they become `--format "xml" is not one
 * of "table", "json"`.
 */
export function oneLine(message: string): string {
  const [first = '', ...rest] = message.split('\n').filter((line) => line.trim() !== '');
  if (rest.length === 0) return first;
  const choices = rest.map((line) => line.match(invalidChoice));
  if (choices.every((match) => match !== null)) {
    return choices
      .map((match) => {
        const [, option = '', given = '', allowed = ''] = match ?? [];
        return `${option.length === 1 ? '-' : '--'}${option} ${given} is not one of ${allowed}`;
      })
      .join('; ');
  }
  return [first, ...rest.map((line) => line.trim())].join(' ');
}

/**
 * Parses and runs a command, or answers the shell's completion request (the script that
 * `completion` prints calls `PROGRAM --get-yargs-completions PROGRAM WORDS...`). The
 * request is answered here, without a parse: a parse would validate the half-typed
 * command line while the completions are still being fetched from the daemon.
 */
export async function parseOrComplete<T>(cli: Argv<T>, argv: readonly string[]): Promise<void> {
  // Only before "--": what follows it belongs to a command run inside a container.
  const dashes = argv.indexOf('--');
  const request = argv.slice(0, dashes === -1 ? argv.length : dashes).indexOf('--get-yargs-completions');
  if (request !== -1) {
    const completions = await cli.getCompletion(argv.slice(request + 1));
    if (completions.length > 0) process.stdout.write(`${completions.join('\n')}\n`);
    return;
  }
  await cli.parseAsync();
}

/** yargs' completion hook: its own completions (commands, options), then the dynamic ones. */
function completeWith(dynamic: DynamicCompletion | undefined) {
  return (
    current: string,
    argv: { _: (string | number)[]; [option: string]: unknown },
    defaults: (onCompleted: (error: unknown, completions: string[] | undefined) => void) => void,
    done: (completions: string[]) => void,
  ): void => {
    defaults((_error, standard) => {
      // The shell passes the program's name first, and the word being completed last.
      const words = argv._.map(String).slice(1);
      if (words[words.length - 1] === current) words.pop();
      const extra = dynamic === undefined ? Promise.resolve([]) : dynamic(words, argv).catch(() => []);
      void extra.then((more) => done([...(standard ?? []), ...more.filter((word) => word.startsWith(current))]));
    });
  };
}
