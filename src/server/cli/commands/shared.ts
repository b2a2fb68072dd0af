/** Small helpers every host command uses. */
import { ApolloError } from '../../../shared/errors.js';
import { keyMap } from '../../../shared/key-map.js';
import { visible } from '../../../shared/output.js';
import { AdminClient } from '../admin-client.js';
import { resolveDir } from '../../paths.js';

export { stdinArgument } from '../../../shared/cli.js';

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

/** A short note for a person at a terminal; scripts see nothing. */
export function note(message: string): void {
  if (process.stderr.isTTY) process.stderr.write(`${visible(message)}\n`);
}
