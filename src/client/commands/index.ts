/** Every guest command, one declarative object each. */
import type { CommandModule } from 'yargs';
import { ApolloError } from '../../shared/errors.js';
import { type OutputFormat, render, writeOut } from '../../shared/output.js';
import type { GuestInfoWire } from '../../shared/wire.js';
import { GuestClient } from '../api-client.js';

export interface GuestGlobals {
  socket?: string | undefined;
  'connect-timeout': number;
}

export function guestClient(argv: GuestGlobals): GuestClient {
  if (!(argv['connect-timeout'] > 0)) throw new ApolloError('usage', '--connect-timeout must be a positive number of seconds');
  return new GuestClient({ socketPath: argv.socket, connectTimeoutMs: argv['connect-timeout'] * 1000 });
}

/** Writes a value byte for byte; on a terminal a missing final newline is added for the prompt's sake. */
async function writeValue(value: Buffer): Promise<void> {
  await writeOut(value);
  if (process.stdout.isTTY && value.length > 0 && value[value.length - 1] !== 0x0a) await writeOut('\n');
}

const get: CommandModule<GuestGlobals, GuestGlobals & { key: string }> = {
  command: 'get <key>',
  describe: "Print a config key's value, byte for byte",
  builder: (y) =>
    y.positional('key', { type: 'string', demandOption: true }).example('$0 get user.foo', 'exit 3 when unset, 4 when not readable') as never,
  handler: async (argv) => {
    const value = await guestClient(argv).getText(`/1.0/config/${encodeURIComponent(argv.key)}`);
    await writeValue(value);
  },
};

const config: CommandModule<GuestGlobals, GuestGlobals & { format: OutputFormat }> = {
  command: 'config',
  describe: 'Show every readable key and its value',
  builder: (y) =>
    y
      .option('format', { alias: 'f', choices: ['table', 'json', 'yaml'] as const, default: (process.stdout.isTTY ? 'table' : 'json') as OutputFormat })
      .example('$0 config --format json', 'one object, KEY -> VALUE, sorted') as never,
  handler: async (argv) => {
    const client = guestClient(argv);
    const urls = await client.getJson<string[]>('/1.0/config');
    const values: Record<string, string> = {};
    for (const url of urls) {
      const key = url.slice('/1.0/config/'.length);
      try {
        values[key] = (await client.getText(`/1.0/config/${encodeURIComponent(key)}`)).toString('utf8');
      } catch (error) {
        // Unset between listing and reading: leave it out.
        if (!(error instanceof ApolloError && error.code === 'not-found')) throw error;
      }
    }
    await writeOut(await render(argv.format, values, () => ({ head: ['KEY', 'VALUE'], rows: Object.entries(values) })));
  },
};

const metadata: CommandModule<GuestGlobals, GuestGlobals> = {
  command: 'metadata',
  aliases: ['meta-data'],
  describe: 'Print cloud-init meta-data exactly as served',
  builder: (y) => y.example('$0 metadata > /var/lib/cloud/seed/nocloud/meta-data', '') as never,
  handler: async (argv) => {
    await writeOut(await guestClient(argv).getText('/1.0/meta-data'));
  },
};

const info: CommandModule<GuestGlobals, GuestGlobals & { format: 'table' | 'json' }> = {
  command: 'info',
  describe: 'Show the API document (GET /1.0)',
  builder: (y) => y.option('format', { alias: 'f', choices: ['table', 'json'] as const, default: 'table' as const }).example('$0 info --format json', '') as never,
  handler: async (argv) => {
    const doc = await guestClient(argv).getJson<GuestInfoWire>('/1.0');
    await writeOut(
      await render(argv.format, doc, () => ({ head: ['', ''], rows: Object.entries(doc).map(([k, v]) => [k, String(v)]) })),
    );
  },
};

export const guestCommands = [get, config, metadata, info] as unknown as CommandModule<object, object>[];
