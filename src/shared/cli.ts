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

/**
 * Completion, help, version, strictness, and usage errors as ApolloErrors (exit 2), each
 * naming what was wrong: a missing argument by its name, with the command's usage line; a
 * word that is no command, with the nearest one. `commands` are the top-level command
 * names; `argv` the words as typed.
 */
export function finishCli<T>(
  cli: Argv<T>,
  name: string,
  dynamic: DynamicCompletion | undefined,
  commands: readonly string[],
  argv: readonly string[],
): Argv<T> {
  return cli
    .completion('completion', 'Print a bash/zsh completion script (source it from your shell rc)', completeWith(dynamic))
    .demandCommand(1, `Pick a command: ${commands.join(', ')}`)
    .strict()
    .version(packageVersion)
    .help()
    .alias('h', 'help')
    .wrap(Math.min(100, process.stdout.columns || 100))
    .fail((message, error, current) => {
      if (error) throw error;
      const help = commandHelp(current);
      const usageLine = commandUsage(help, name);
      const path = usageLine?.split(' ').filter((_, i, words) => words.slice(0, i + 1).every((w) => /^[a-z][\w-]*$/.test(w)));
      const subcommands = subcommandsOf(help, (path ?? []).join(' '));
      const missing = missingArguments(message ?? '', usageLine);
      const text =
        (usageLine === undefined ? unknownCommand(message ?? '', commands, argv) : unknownSubcommand(help, path ?? [], argv)) ??
        (missing === 'missing <command>' && subcommands.length > 0 ? `${missing}: one of ${subcommands.join(', ')}` : missing) ??
        oneLine(message ?? 'invalid usage');
      const usage =
        usageLine === undefined || path === undefined
          ? `Run "${name} --help" for usage.`
          : `Usage: ${usageLine}\nRun "${path.join(' ')} --help" for more.`;
      throw Object.assign(new ApolloError('usage', text), { usage });
    });
}

/** The help text of the command being parsed, or "" when yargs gives none. */
function commandHelp(current: Argv<unknown> | undefined): string {
  let help = '';
  try {
    current?.showHelp((text: string) => {
      help = text;
    });
  } catch {
    return '';
  }
  return help;
}

/** The first line of a command's help ("devapollo config get <name> <key>"), or undefined at the top level. */
function commandUsage(help: string, name: string): string | undefined {
  const line = help.split('\n')[0]?.trim() ?? '';
  return line.startsWith(`${name} `) && line !== `${name} <command>` ? line : undefined;
}

/** The commands of a group, from the "Commands:" section of its help, up to the blank line that ends it (examples follow). */
function subcommandsOf(help: string, group: string): string[] {
  const section = help.split('\nCommands:\n')[1]?.split('\n\n')[0] ?? '';
  const names: string[] = [];
  for (const line of section.split('\n')) {
    const entry = line.trimStart();
    if (entry.startsWith(`${group} `)) names.push(entry.slice(group.length + 1).split(' ')[0] ?? '');
  }
  return names;
}

/**
 * In a group of commands (`devapollo config <command>`), the word typed after the group's
 * name when it is none of the group's commands (listed in its help): `unknown command
 * "gte": did you mean get?`.
 */
function unknownSubcommand(help: string, path: readonly string[], argv: readonly string[]): string | undefined {
  const subcommands = subcommandsOf(help, path.join(' '));
  const last = path[path.length - 1];
  if (subcommands.length === 0 || last === undefined) return undefined;
  const typed = argv[argv.indexOf(last) + 1];
  if (typed === undefined || typed.startsWith('-') || subcommands.includes(typed)) return undefined;
  return nearestCommand(typed, subcommands);
}

/** yargs' "Not enough non-option arguments: got 1, need at least 2" as the names of the missing ones: `missing <key>`. */
function missingArguments(message: string, usageLine: string | undefined): string | undefined {
  const counts = message.match(/^Not enough non-option arguments: got (\d+), need at least (\d+)/);
  if (counts === null || usageLine === undefined) return undefined;
  const required = [...usageLine.matchAll(/<([^>]+)>/g)].map((m) => `<${m[1]}>`);
  const missing = required.slice(Number(counts[1]), Number(counts[2]));
  return missing.length === 0 ? undefined : `missing ${missing.join(' ')}`;
}

/**
 * "Unknown argument: lgos" at the top level, for a word typed as the command: `unknown
 * command "lgos": did you mean logs?`, the nearest command within two edits, as git does.
 */
function unknownCommand(message: string, commands: readonly string[], argv: readonly string[]): string | undefined {
  const word = message.match(/^Unknown arguments?: ([^,\s]+)/)?.[1];
  if (word === undefined || !argv.includes(word)) return undefined;
  return nearestCommand(word, commands);
}

/** `unknown command "WORD"`, with the nearest of `commands` within two edits, as git names one. */
function nearestCommand(word: string, commands: readonly string[]): string {
  let nearest: string | undefined;
  let best = 3;
  for (const command of commands) {
    const distance = editDistance(word, command);
    if (distance < best) [nearest, best] = [command, distance];
  }
  return `unknown command ${JSON.stringify(word)}${nearest === undefined ? '' : `: did you mean ${nearest}?`}`;
}

/** Levenshtein distance, for the nearest command to a mistyped one. */
function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      next[j] = Math.min((row[j] ?? 0) + 1, (next[j - 1] ?? 0) + 1, (row[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    row = next;
  }
  return row[b.length] ?? 0;
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
