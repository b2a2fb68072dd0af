/** Every guest command, one declarative object each: parse, call an operation, print. */
import type { ArgumentsCamelCase, Argv } from 'yargs';
import { stdinArgument } from '../../shared/cli.js';
import { type CommandBody, type CommandEntry, commandBody } from '../../shared/commands.js';
import { ApolloError } from '../../shared/errors.js';
import { isGuestWritableKey } from '../../shared/names.js';
import { render, renderEventLine, safeJson, writeOut, writeValue } from '../../shared/output.js';
import type { GuestInfoWire } from '../../shared/wire.js';
import { GuestClient } from '../api-client.js';
import { getValue, readAllValues, setGuestKey, setReady, unsetGuestKey, waitForKey, watchEvents, writeSeed } from '../operations.js';
import { fetchToken } from './token.js';

/** The options every guest command has (main declares them). */
export interface GuestGlobals {
  readonly socket: string | undefined;
  readonly 'connect-timeout': number;
}

/** A guest command's body: its builder starts from the global options. */
function guestCommand<A>(
  builder: (cli: Argv<GuestGlobals>) => Argv<A>,
  handler: (argv: ArgumentsCamelCase<A>) => Promise<number | void>,
): CommandBody<GuestGlobals> {
  return commandBody(builder, handler);
}

export function guestClient(argv: GuestGlobals): GuestClient {
  if (!(argv['connect-timeout'] > 0)) throw new ApolloError('usage', '--connect-timeout must be a positive number of seconds');
  return new GuestClient({ socketPath: argv.socket, connectTimeoutMs: argv['connect-timeout'] * 1000 });
}

const get: CommandEntry<GuestGlobals> = {
  command: 'get <key>',
  describe: "Print a config key's value, byte for byte",
  body: guestCommand(
    (y) =>
      y
        .positional('key', { type: 'string', demandOption: true })
        .example('$0 get user.foo', 'exit 3 when unset, 4 when not readable')
        .example('name=$($0 get user.name)', 'in a script'),
    async (argv) => {
      await writeValue(await getValue(guestClient(argv), argv.key));
    },
  ),
};

const config: CommandEntry<GuestGlobals> = {
  command: 'config',
  describe: 'Show every readable key and its value',
  body: guestCommand(
    (y) =>
      y
        .option('format', { alias: 'f', choices: ['table', 'json', 'yaml'] as const, default: 'table' as const })
        .example('$0 config', 'a table')
        .example('$0 config --format json', 'one object, KEY -> VALUE, sorted by key'),
    async (argv) => {
      const values = await readAllValues(guestClient(argv));
      await writeOut(await render(argv.format, values, () => ({ head: ['KEY', 'VALUE'], rows: Object.entries(values) })));
    },
  ),
};

const metadata: CommandEntry<GuestGlobals> = {
  command: 'metadata',
  aliases: ['meta-data'],
  describe: 'Print cloud-init meta-data exactly as served',
  body: guestCommand(
    (y) => y.example('$0 metadata > /var/lib/cloud/seed/nocloud/meta-data', 'for cloud-init'),
    async (argv) => {
      await writeOut(await guestClient(argv).getText('/1.0/meta-data'));
    },
  ),
};

const info: CommandEntry<GuestGlobals> = {
  command: 'info',
  describe: 'Show the API document (GET /1.0)',
  body: guestCommand(
    (y) =>
      y
        .option('format', { alias: 'f', choices: ['table', 'json'] as const, default: 'table' as const })
        .example('$0 info --format json', ''),
    async (argv) => {
      const doc = await guestClient(argv).getJson<GuestInfoWire>('/1.0');
      await writeOut(await render(argv.format, doc, () => ({ head: ['', ''], rows: Object.entries(doc).map(([k, v]) => [k, String(v)]) })));
    },
  ),
};

const watch: CommandEntry<GuestGlobals> = {
  command: 'watch',
  describe: "Print this container's events as they happen (reconnects; misses nothing)",
  body: guestCommand(
    (y) =>
      y
        .option('type', { type: 'string', default: 'config,lifecycle', describe: 'config, lifecycle or both' })
        .option('format', {
          alias: 'f',
          choices: ['text', 'json'] as const,
          default: 'text' as const,
          describe: 'json: one object per line',
        })
        .example('$0 watch --type config --format json', 'for a script'),
    async (argv) => {
      const types = argv.type.split(',').map((t) => t.trim());
      for (const type of types) {
        if (type !== 'config' && type !== 'lifecycle')
          throw new ApolloError('usage', `unknown event type ${JSON.stringify(type)}: use config, lifecycle`);
      }
      const stop = new AbortController();
      const onSignal = () => stop.abort();
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      let printing = Promise.resolve();
      try {
        await watchEvents(
          guestClient(argv),
          types as ('config' | 'lifecycle')[],
          (event) => {
            printing = printing.then(async () => writeOut(argv.format === 'json' ? `${safeJson(event)}\n` : await renderEventLine(event)));
          },
          stop.signal,
        );
        await printing;
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
    },
  ),
};

const wait: CommandEntry<GuestGlobals> = {
  command: 'wait <key>',
  describe: 'Wait until a key changes (or equals --value), then print its value',
  body: guestCommand(
    (y) =>
      y
        .positional('key', { type: 'string', demandOption: true })
        .option('value', { type: 'string', describe: 'wait until the key has exactly this value' })
        .option('timeout', { type: 'number', describe: 'give up after this many seconds (exit 75)' })
        .example('$0 wait user.go --value yes --timeout 300', 'block a boot script until the host says go'),
    async (argv) => {
      if (argv.timeout !== undefined && !(argv.timeout >= 0)) throw new ApolloError('usage', '--timeout must be a number of seconds');
      const value = await waitForKey(guestClient(argv), argv.key, {
        expected: argv.value,
        timeoutMs: argv.timeout === undefined ? undefined : argv.timeout * 1000,
      });
      if (value !== undefined) await writeValue(value);
    },
  ),
};

const ready: CommandEntry<GuestGlobals> = {
  command: 'ready',
  describe: 'Tell the host this container is ready (its guest state becomes Ready)',
  body: guestCommand(
    (y) => y.example('$0 ready', 'at the end of a boot script'),
    async (argv) => {
      await setReady(guestClient(argv));
    },
  ),
};

const seed: CommandEntry<GuestGlobals> = {
  command: 'seed <dir>',
  describe: 'Write a cloud-init NoCloud seed (meta-data, user-data, vendor-data, network-config)',
  body: guestCommand(
    (y) =>
      y
        .positional('dir', { type: 'string', demandOption: true })
        .example('$0 seed /var/lib/cloud/seed/nocloud', 'then cloud-init boots from devapollo data'),
    async (argv) => {
      await writeSeed(guestClient(argv), argv.dir);
    },
  ),
};

const token: CommandEntry<GuestGlobals> = {
  command: 'token',
  describe: 'Print a signed, short-lived identity token (JWT) for this container',
  body: guestCommand(
    (y) =>
      y
        .option('audience', { type: 'string', demandOption: true, describe: 'who the token is for (its aud); the relying party checks it' })
        .option('ttl', { type: 'string', describe: 'lifetime in seconds, 1 to 3600 (default 300)' })
        .example('$0 token --audience vault', 'for `vault write auth/jwt/login role=... jwt=...`')
        .example('TOKEN=$($0 token --audience https://api.example.com --ttl 60)', 'in a script'),
    async (argv) => {
      if (argv.audience === '') throw new ApolloError('usage', '--audience must not be empty');
      await writeOut(`${await fetchToken(guestClient(argv), argv.audience, argv.ttl)}\n`);
    },
  ),
};

/** The most of stdin `set KEY -` reads: the largest value a guest may write (PROTOCOL.md section 3a). */
const maxGuestValueBytes = 64 * 1024;

/** A usage error unless the guest may write `key`. */
function assertWritable(key: string): void {
  if (!isGuestWritableKey(key)) {
    throw new ApolloError('usage', `a guest may write only keys under guest. (guest.NAME), not ${JSON.stringify(key)}`);
  }
}

/** Stdin's exact bytes, at most maxGuestValueBytes (more is a usage error, not read on). */
async function readStdinValue(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxGuestValueBytes)
      throw new ApolloError('usage', `the value on stdin is larger than ${maxGuestValueBytes} bytes, the most a guest key may hold`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

const set: CommandEntry<GuestGlobals> = {
  command: 'set <key> <value>',
  describe: 'Write a guest.* key for the host to read ("-": the exact bytes of stdin; "" unsets)',
  body: guestCommand(
    (y) =>
      y
        .positional('key', { type: 'string', demandOption: true, describe: 'guest.NAME: the only keys a guest may write' })
        .positional('value', { type: 'string', demandOption: true })
        .example('$0 set guest.status ready', 'the host reads it with devapollo config get')
        .example('$0 set guest.ssh-fingerprint - < /etc/ssh/ssh_host_ed25519_key.pub', 'a value from stdin, byte for byte'),
    async (argv) => {
      assertWritable(argv.key);
      const value = argv.value === stdinArgument ? await readStdinValue() : Buffer.from(String(argv.value), 'utf8');
      await setGuestKey(guestClient(argv), argv.key, value);
    },
  ),
};

const unset: CommandEntry<GuestGlobals> = {
  command: 'unset <key>',
  describe: 'Remove a guest.* key (exit 3 when it is not set)',
  body: guestCommand(
    (y) => y.positional('key', { type: 'string', demandOption: true, describe: 'guest.NAME' }).example('$0 unset guest.status', ''),
    async (argv) => {
      assertWritable(argv.key);
      await unsetGuestKey(guestClient(argv), argv.key);
    },
  ),
};

/**
 * Every `devapollo-guest` command, in the order `--help` lists them. The bodies sit
 * beside their heads: the CLI is one bundled file, compiled whole on its first use (and
 * `get` never loads it: src/client/entry.ts).
 */
export const guestCommands: readonly CommandEntry<GuestGlobals>[] = [
  get,
  config,
  metadata,
  info,
  watch,
  wait,
  ready,
  seed,
  set,
  unset,
  token,
];
