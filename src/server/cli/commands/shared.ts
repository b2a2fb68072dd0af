/** Small helpers every host command uses. */
import type { Argv } from 'yargs';
import { ApolloError } from '../../../shared/errors.js';
import { keyMap } from '../../../shared/key-map.js';
import { visible } from '../../../shared/output.js';
import { AdminClient } from '../admin-client.js';
import { resolveDir } from '../../paths.js';

/**
 * yargs drops a lone "-" argument; `config set NAME KEY -` needs it, so main passes it
 * on as this marker (no real argument can hold a NUL byte).
 */
export const stdinArgument = '\u0000-';

export function adminClient(argv: { dir?: string | undefined }, timeoutMs?: number): AdminClient {
  return new AdminClient(resolveDir(argv.dir), timeoutMs);
}

/** Splits KEY=VALUE at the first "="; a missing "=" is a usage error. */
export function parseAssignment(text: string): [string, string] {
  const eq = text.indexOf('=');
  if (eq <= 0) throw new ApolloError('usage', `expected KEY=VALUE, got ${JSON.stringify(text)}`);
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

/** Reads all of stdin as UTF-8, refusing bytes that are not (values are UTF-8 text). */
export async function readStdinText(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) chunks.push(chunk);
  const bytes = Buffer.concat(chunks);
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw new ApolloError('usage', 'the value on stdin is not valid UTF-8 (config values are UTF-8 text)');
  }
}

/** What stop and restart take: --force, --timeout SECONDS. */
export const stopOptions = (y: Argv) =>
  y
    .option('force', { alias: 'f', type: 'boolean', default: false, describe: 'SIGKILL at once' })
    .option('timeout', { type: 'number', default: 10, describe: 'seconds to wait before SIGKILL' });

/** PUT /1.0/containers/NAME/state with a stop-like action; the daemon goes on if this process is interrupted. */
export async function changeState(
  argv: { dir?: string | undefined; name: string; force: boolean; timeout: number },
  action: 'stop' | 'restart',
): Promise<void> {
  if (!(argv.timeout >= 0)) throw new ApolloError('usage', `--timeout must be a number of seconds, got ${JSON.stringify(String(argv.timeout))}`);
  // Ctrl-C ends this command, not the stop: say so, and how to end it sooner.
  const interrupted = () => {
    if (process.stderr.isTTY) {
      process.stderr.write(`\nThe ${action} of ${visible(argv.name)} goes on in the daemon; "devapollo stop --force ${visible(argv.name)}" kills it now.\n`);
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
