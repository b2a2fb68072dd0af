/**
 * The shape of a command, for both CLIs: a head that `--help` lists (the command, its
 * aliases, one line) and a body that runs once the command is picked (its options and its
 * handler). The host CLI's registry loads each body lazily, so that `devapollo --help` and
 * `devapollo list` never load `serve`'s daemon or `exec`'s terminal code; the guest CLI is
 * one bundled file, whose bodies sit beside their heads.
 *
 * A handler returns the exit code it ends with (exec relays its command's) or nothing for
 * 0, or throws: only the CLI's main sets the process's exit code.
 */
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';

/** What `--help` lists, known without loading the command's module. */
export interface CommandHead {
  /** yargs' command string: the name and its positionals (`launch <name>`). */
  readonly command: string;
  readonly describe: string;
  readonly aliases?: readonly string[];
}

/** A command's options and handler, its argument types erased for the registry's list. */
export interface CommandBody<G> {
  readonly builder: (cli: Argv<G>) => Argv<unknown>;
  readonly handler: (argv: ArgumentsCamelCase<unknown>) => Promise<number | void> | number | void;
}

/**
 * A registry entry: a head with its body, with a loader of its body, or with the
 * sub-commands of a group (`config set`, `hook lxc`).
 */
export type CommandEntry<G> = CommandHead &
  (
    | { readonly body: CommandBody<G> }
    | { readonly load: () => Promise<CommandBody<G>> }
    | { readonly subcommands: readonly CommandEntry<G>[] }
  );

/**
 * A command body whose handler's arguments are typed from what its builder declares
 * (`positional`, `option`), so no command needs a cast. yargs' types cannot hold commands
 * of different arguments in one list; this is the one place their types are erased, and
 * it is sound because yargs calls the handler with what that same builder parsed.
 */
export function commandBody<G, A>(
  builder: (cli: Argv<G>) => Argv<A>,
  handler: (argv: ArgumentsCamelCase<A>) => Promise<number | void> | number | void,
): CommandBody<G> {
  return {
    builder: builder as (cli: Argv<G>) => Argv<unknown>,
    handler: handler as (argv: ArgumentsCamelCase<unknown>) => Promise<number | void> | number | void,
  };
}

/** Where a picked command's handler leaves its exit code, for main to set. */
export interface CommandOutcome {
  exitCode: number;
}

/** The names of the entries (the top-level commands, without aliases), and yargs' own `completion`. */
export function commandNames<G>(entries: readonly CommandEntry<G>[]): string[] {
  return [...entries.map((entry) => entry.command.split(' ')[0] ?? ''), 'completion'];
}

/** Registers every entry on `cli`; a body is loaded only when its command is picked. */
export function addCommands<G>(cli: Argv<G>, entries: readonly CommandEntry<G>[], outcome: CommandOutcome): Argv<G> {
  for (const entry of entries) cli = cli.command(toModule(entry, outcome));
  return cli;
}

function toModule<G>(entry: CommandEntry<G>, outcome: CommandOutcome): CommandModule<G, unknown> {
  const head = {
    command: entry.command,
    describe: entry.describe,
    ...(entry.aliases === undefined ? {} : { aliases: entry.aliases }),
  };
  if ('subcommands' in entry) {
    const names = entry.subcommands.map((sub) => sub.command.split(' ')[0]).join(', ');
    return {
      ...head,
      builder: (cli: Argv<G>) => addCommands(cli, entry.subcommands, outcome).demandCommand(1, `Pick a command: ${names}`),
      // Never reached: a group without a sub-command is a usage error (demandCommand).
      handler: () => undefined,
    };
  }
  let loaded: Promise<CommandBody<G>> | undefined;
  const body = (): Promise<CommandBody<G>> => (loaded ??= 'body' in entry ? Promise.resolve(entry.body) : entry.load());
  return {
    ...head,
    // yargs awaits a builder that returns a promise, before it parses the command's options.
    builder: async (cli: Argv<G>) => (await body()).builder(cli),
    handler: async (argv) => {
      const code = await (await body()).handler(argv);
      if (typeof code === 'number') outcome.exitCode = code;
    },
  };
}
