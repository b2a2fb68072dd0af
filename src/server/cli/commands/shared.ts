/** Small helpers every host command uses. */
import type { ArgumentsCamelCase, Argv } from 'yargs';
import { type CommandBody, commandBody } from '../../../shared/commands.js';
import { ApolloError } from '../../../shared/errors.js';
import { keyMap } from '../../../shared/key-map.js';
import { visible } from '../../../shared/output.js';
import { sizeText } from '../../../shared/unix-http.js';
import { type ContainerWire, maxAdminBodyBytes } from '../../../shared/wire.js';
import { AdminClient } from '../../admin/client.js';
import { resolveDir } from '../../paths.js';

/** The options every host command has (main declares them). */
export interface HostGlobals {
  readonly dir: string | undefined;
}

/** A host command's body: its builder starts from the global options. */
export function hostCommand<A>(
  builder: (cli: Argv<HostGlobals>) => Argv<A>,
  handler: (argv: ArgumentsCamelCase<A>) => Promise<number | void> | number | void,
): CommandBody<HostGlobals> {
  return commandBody(builder, handler);
}

/** What follows "--" on the command line (a command to run in a container), as typed. */
export function afterDashes(argv: { readonly [option: string]: unknown }): string[] {
  const rest = argv['--'];
  return Array.isArray(rest) ? rest.map(String) : [];
}

export { stdinArgument } from '../../../shared/cli.js';

export function adminClient(argv: { dir?: string | undefined }, timeoutMs?: number): AdminClient {
  return new AdminClient(resolveDir(argv.dir), timeoutMs);
}

/**
 * Splits KEY=VALUE at the first "="; a missing "=" is a usage error, which says to join
 * KEY and VALUE with "=" (and to quote a value with spaces: the shell splits it).
 */
export function parseAssignment(text: string): [string, string] {
  const eq = text.indexOf('=');
  if (eq <= 0) {
    throw new ApolloError(
      'usage',
      `expected KEY=VALUE, got ${JSON.stringify(text)}: join a key and its value with "=" (KEY=VALUE), and quote a value with spaces (KEY="a b")`,
    );
  }
  return [text.slice(0, eq), text.slice(eq + 1)];
}

export function parseAssignments(texts: readonly string[]): Record<string, string> {
  const out = keyMap<string>();
  for (const text of texts) {
    const [key, value] = parseAssignment(text);
    out[key] = value;
  }
  return out;
}

/**
 * Reads all of stdin as UTF-8, refusing bytes that are not (values are UTF-8 text), and
 * more than `limitBytes` (the most the daemon takes in one request) without reading on:
 * a 200 MB file piped in is refused at once, for what it is, instead of being sent to a
 * daemon that must cut the connection.
 */
export async function readStdinText(limitBytes = maxAdminBodyBytes): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limitBytes) {
      process.stdin.destroy();
      throw new ApolloError(
        'payload-too-large',
        `the value on stdin is too large: more than ${sizeText(limitBytes)}, the most the daemon takes in one request ` +
          '(a value may be at most its serve --max-value-size, 1 MiB by default)',
      );
    }
    chunks.push(chunk);
  }
  const bytes = Buffer.concat(chunks);
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw new ApolloError('usage', 'the value on stdin is not valid UTF-8 (config values are UTF-8 text)');
  }
}

/** The container-name positional every command about one container takes. */
export const nameArg = <T>(y: Argv<T>) => y.positional('name', { type: 'string', demandOption: true, describe: 'container name' });

/** What stop and restart take: --force, --timeout SECONDS. */
export const stopOptions = <T>(y: Argv<T>) =>
  y
    .option('force', { alias: 'f', type: 'boolean', default: false, describe: 'SIGKILL at once' })
    .option('timeout', { type: 'number', default: 10, describe: 'seconds to wait before SIGKILL' });

/** PUT /1.0/containers/NAME/state with a stop-like action; the daemon goes on if this process is interrupted. */
export async function changeState(
  argv: { dir?: string | undefined; name: string; force: boolean; timeout: number },
  action: 'stop' | 'restart',
): Promise<void> {
  if (!(argv.timeout >= 0))
    throw new ApolloError('usage', `--timeout must be a number of seconds, got ${JSON.stringify(String(argv.timeout))}`);
  // Ctrl-C ends this command, not the stop: say so, and how to end it sooner.
  const interrupted = () => {
    if (process.stderr.isTTY) {
      process.stderr.write(
        `\nThe ${action} of ${visible(argv.name)} goes on in the daemon; "devapollo stop --force ${visible(argv.name)}" kills it now.\n`,
      );
    }
    process.kill(process.pid, 'SIGINT');
  };
  process.once('SIGINT', interrupted);
  try {
    await adminClient(argv).json('PUT', `/1.0/containers/${encodeURIComponent(argv.name)}/state`, {
      action,
      force: argv.force,
      timeout: argv.timeout,
    });
  } finally {
    process.off('SIGINT', interrupted);
  }
}

/** A short note for a person at a terminal; scripts see nothing. */
export function note(message: string): void {
  if (process.stderr.isTTY) process.stderr.write(`${visible(message)}\n`);
}

/** The TYPE column of `list`, and `status NAME`'s type. */
export function containerType(c: ContainerWire): string {
  if (c.origin === 'register') return 'registered';
  return c.privileged ? 'privileged' : 'unprivileged';
}
