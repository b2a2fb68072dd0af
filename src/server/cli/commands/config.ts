/** `devapollo config set|get|unset|show`. */
import type { Argv, CommandModule } from 'yargs';
import { ApolloError } from '../../../shared/errors.js';
import { keyMap } from '../../../shared/key-map.js';
import { type OutputFormat, render, writeOut, writeValue } from '../../../shared/output.js';
import { adminClient, parseAssignment, readStdinText, stdinArgument } from './shared.js';

type Global = { dir?: string | undefined };

const configPath = (name: string) => `/1.0/containers/${encodeURIComponent(name)}/config`;

const set: CommandModule<Global, Global & { name: string; assignments: string[] }> = {
  command: 'set <name> <assignments..>',
  describe: 'Set config keys (KEY=VALUE..., or KEY - for the exact bytes of stdin); "" unsets',
  builder: (y) =>
    y
      .positional('name', { type: 'string', demandOption: true })
      .positional('assignments', { type: 'string', array: true, demandOption: true, describe: 'KEY=VALUE... | KEY - | KEY VALUE' })
      .example('$0 config set web user.foo=bar user.n=1', '')
      .example('$0 config set web cloud-init.user-data - < user-data.yaml', 'a value from stdin, byte for byte') as never,
  handler: async (argv) => {
    const args = argv.assignments.map(String);
    const changes = keyMap<string>();
    if (args.length === 2 && !(args[0] as string).includes('=')) {
      const [key, value] = args as [string, string];
      changes[key] = value === stdinArgument ? await readStdinText() : value;
    } else {
      for (const arg of args) {
        const [key, value] = parseAssignment(arg);
        changes[key] = value;
      }
    }
    await adminClient(argv).json('PATCH', configPath(argv.name), changes);
  },
};

const get: CommandModule<Global, Global & { name: string; key: string }> = {
  command: 'get <name> <key>',
  describe: "Print a key's value, byte for byte (exit 3 when it is not set)",
  builder: (y) =>
    y
      .positional('name', { type: 'string', demandOption: true })
      .positional('key', { type: 'string', demandOption: true })
      .example('$0 config get web user.foo', '') as never,
  handler: async (argv) => {
    const { body } = await adminClient(argv).request('GET', `${configPath(argv.name)}/${encodeURIComponent(argv.key)}`);
    await writeValue(body);
  },
};

const unset: CommandModule<Global, Global & { name: string; key: string }> = {
  command: 'unset <name> <key>',
  describe: 'Remove a key',
  builder: (y) =>
    y
      .positional('name', { type: 'string', demandOption: true })
      .positional('key', { type: 'string', demandOption: true })
      .example('$0 config unset web user.foo', '') as never,
  handler: async (argv) => {
    await adminClient(argv).json('PATCH', configPath(argv.name), keyMap([[argv.key, null]]));
  },
};

const show: CommandModule<Global, Global & { name: string; format: OutputFormat }> = {
  command: 'show <name>',
  describe: "Show a container's config",
  builder: (y) =>
    y
      .positional('name', { type: 'string', demandOption: true })
      .option('format', { alias: 'f', choices: ['table', 'json', 'yaml'] as const, default: 'table' as const })
      .example('$0 config show web --format json', '') as never,
  handler: async (argv) => {
    const container = await adminClient(argv).container(argv.name);
    const config = container.config;
    await writeOut(
      await render(argv.format, config, () => ({ head: ['KEY', 'VALUE'], rows: Object.entries(config) })),
    );
  },
};

export const configCommand: CommandModule<Global, Global> = {
  command: 'config <command>',
  describe: 'Read and change container config',
  builder: (y: Argv<Global>) =>
    y
      .command(set as never)
      .command(get as never)
      .command(unset as never)
      .command(show as never)
      .demandCommand(1, 'Pick a config command'),
  handler: () => {
    throw new ApolloError('usage', 'pick a config command');
  },
};
