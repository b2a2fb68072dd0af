/** Every guest command, one declarative object each: parse, call an operation, print. */
import type { CommandModule } from 'yargs';
import { ApolloError } from '../../shared/errors.js';
import { type OutputFormat, render, renderEventLine, safeJson, writeOut, writeValue } from '../../shared/output.js';
import type { GuestInfoWire } from '../../shared/wire.js';
import { GuestClient } from '../api-client.js';
import { getValue, readAllValues, setGuestKey, setReady, unsetGuestKey, waitForKey, watchEvents, writeSeed } from '../operations.js';
import { isGuestWritableKey } from '../../shared/names.js';
import { stdinArgument } from '../../shared/cli.js';

export interface GuestGlobals {
  socket?: string | undefined;
  'connect-timeout': number;
}

export function guestClient(argv: GuestGlobals): GuestClient {
  if (!(argv['connect-timeout'] > 0)) throw new ApolloError('usage', '--connect-timeout must be a positive number of seconds');
  return new GuestClient({ socketPath: argv.socket, connectTimeoutMs: argv['connect-timeout'] * 1000 });
}

const get: CommandModule<GuestGlobals, GuestGlobals & { key: string }> = {
  command: 'get <key>',
  describe: "Print a config key's value, byte for byte",
  builder: (y) =>
    y
      .positional('key', { type: 'string', demandOption: true })
      .example('$0 get user.foo', 'exit 3 when unset, 4 when not readable')
      .example('name=$($0 get user.name)', 'in a script') as never,
  handler: async (argv) => {
    await writeValue(await getValue(guestClient(argv), argv.key));
  },
};

const config: CommandModule<GuestGlobals, GuestGlobals & { format: OutputFormat }> = {
  command: 'config',
  describe: 'Show every readable key and its value',
  builder: (y) =>
    y
      .option('format', { alias: 'f', choices: ['table', 'json', 'yaml'] as const, default: 'table' as const })
      .example('$0 config', 'a table')
      .example('$0 config --format json', 'one object, KEY -> VALUE, sorted by key') as never,
  handler: async (argv) => {
    const values = await readAllValues(guestClient(argv));
    await writeOut(await render(argv.format, values, () => ({ head: ['KEY', 'VALUE'], rows: Object.entries(values) })));
  },
};

const metadata: CommandModule<GuestGlobals, GuestGlobals> = {
  command: 'metadata',
  aliases: ['meta-data'],
  describe: 'Print cloud-init meta-data exactly as served',
  builder: (y) => y.example('$0 metadata > /var/lib/cloud/seed/nocloud/meta-data', 'for cloud-init') as never,
  handler: async (argv) => {
    await writeOut(await guestClient(argv).getText('/1.0/meta-data'));
  },
};

const info: CommandModule<GuestGlobals, GuestGlobals & { format: 'table' | 'json' }> = {
  command: 'info',
  describe: 'Show the API document (GET /1.0)',
  builder: (y) =>
    y
      .option('format', { alias: 'f', choices: ['table', 'json'] as const, default: 'table' as const })
      .example('$0 info --format json', '') as never,
  handler: async (argv) => {
    const doc = await guestClient(argv).getJson<GuestInfoWire>('/1.0');
    await writeOut(await render(argv.format, doc, () => ({ head: ['', ''], rows: Object.entries(doc).map(([k, v]) => [k, String(v)]) })));
  },
};

const watch: CommandModule<GuestGlobals, GuestGlobals & { type: string; format: 'text' | 'json' }> = {
  command: 'watch',
  describe: "Print this container's events as they happen (reconnects; misses nothing)",
  builder: (y) =>
    y
      .option('type', { type: 'string', default: 'config,lifecycle', describe: 'config, lifecycle or both' })
      .option('format', { alias: 'f', choices: ['text', 'json'] as const, default: 'text' as const, describe: 'json: one object per line' })
      .example('$0 watch --type config --format json', 'for a script') as never,
  handler: async (argv) => {
    const types = argv.type.split(',').map((t) => t.trim());
    for (const type of types) {
      if (type !== 'config' && type !== 'lifecycle') throw new ApolloError('usage', `unknown event type ${JSON.stringify(type)}: use config, lifecycle`);
    }
    const stop = new AbortController();
    const onSignal = () => stop.abort();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    let printing = Promise.resolve();
    try {
      await watchEvents(guestClient(argv), types as ('config' | 'lifecycle')[], (event) => {
        printing = printing.then(async () =>
          writeOut(argv.format === 'json' ? `${safeJson(event)}\n` : await renderEventLine(event)),
        );
      }, stop.signal);
      await printing;
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  },
};

const wait: CommandModule<GuestGlobals, GuestGlobals & { key: string; value?: string; timeout?: number }> = {
  command: 'wait <key>',
  describe: 'Wait until a key changes (or equals --value), then print its value',
  builder: (y) =>
    y
      .positional('key', { type: 'string', demandOption: true })
      .option('value', { type: 'string', describe: 'wait until the key has exactly this value' })
      .option('timeout', { type: 'number', describe: 'give up after this many seconds (exit 75)' })
      .example('$0 wait user.go --value yes --timeout 300', 'block a boot script until the host says go') as never,
  handler: async (argv) => {
    if (argv.timeout !== undefined && !(argv.timeout >= 0)) throw new ApolloError('usage', '--timeout must be a number of seconds');
    const value = await waitForKey(guestClient(argv), argv.key, {
      expected: argv.value,
      timeoutMs: argv.timeout === undefined ? undefined : argv.timeout * 1000,
    });
    if (value !== undefined) await writeValue(value);
  },
};

const ready: CommandModule<GuestGlobals, GuestGlobals> = {
  command: 'ready',
  describe: 'Tell the host this container is ready (its guest state becomes Ready)',
  builder: (y) => y.example('$0 ready', 'at the end of a boot script') as never,
  handler: async (argv) => {
    await setReady(guestClient(argv));
  },
};

const seed: CommandModule<GuestGlobals, GuestGlobals & { dir: string }> = {
  command: 'seed <dir>',
  describe: 'Write a cloud-init NoCloud seed (meta-data, user-data, vendor-data, network-config)',
  builder: (y) =>
    y
      .positional('dir', { type: 'string', demandOption: true })
      .example('$0 seed /var/lib/cloud/seed/nocloud', 'then cloud-init boots from devapollo data') as never,
  handler: async (argv) => {
    await writeSeed(guestClient(argv), argv.dir);
  },
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
    if (size > maxGuestValueBytes) throw new ApolloError('usage', `the value on stdin is larger than ${maxGuestValueBytes} bytes, the most a guest key may hold`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

const set: CommandModule<GuestGlobals, GuestGlobals & { key: string; value: string }> = {
  command: 'set <key> <value>',
  describe: 'Write a guest.* key for the host to read ("-": the exact bytes of stdin; "" unsets)',
  builder: (y) =>
    y
      .positional('key', { type: 'string', demandOption: true, describe: 'guest.NAME: the only keys a guest may write' })
      .positional('value', { type: 'string', demandOption: true })
      .example('$0 set guest.status ready', 'the host reads it with devapollo config get')
      .example('$0 set guest.ssh-fingerprint - < /etc/ssh/ssh_host_ed25519_key.pub', 'a value from stdin, byte for byte') as never,
  handler: async (argv) => {
    assertWritable(argv.key);
    const value = argv.value === stdinArgument ? await readStdinValue() : Buffer.from(String(argv.value), 'utf8');
    await setGuestKey(guestClient(argv), argv.key, value);
  },
};

const unset: CommandModule<GuestGlobals, GuestGlobals & { key: string }> = {
  command: 'unset <key>',
  describe: 'Remove a guest.* key (exit 3 when it is not set)',
  builder: (y) =>
    y.positional('key', { type: 'string', demandOption: true, describe: 'guest.NAME' }).example('$0 unset guest.status', '') as never,
  handler: async (argv) => {
    assertWritable(argv.key);
    await unsetGuestKey(guestClient(argv), argv.key);
  },
};

export const guestCommands = [get, config, metadata, info, watch, wait, ready, seed, set, unset] as unknown as CommandModule<object, object>[];
