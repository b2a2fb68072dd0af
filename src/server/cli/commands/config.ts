/** `devapollo config set|get|unset|show`. */
import { keyMap } from '../../../shared/key-map.js';
import { render, writeOut, writeValue } from '../../../shared/output.js';
import { adminClient, hostCommand, parseAssignment, readStdinText, stdinArgument } from './shared.js';

const configPath = (name: string) => `/1.0/containers/${encodeURIComponent(name)}/config`;

/** `set`. */
export const set = hostCommand(
  (y) =>
    y
      .positional('name', { type: 'string', demandOption: true })
      .positional('assignments', { type: 'string', array: true, demandOption: true, describe: 'KEY=VALUE... | KEY - | KEY VALUE' })
      .example('$0 config set web user.foo=bar user.n=1', '')
      .example('$0 config set web cloud-init.user-data - < user-data.yaml', 'a value from stdin, byte for byte'),
  async (argv) => {
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
);

/** `get`. */
export const get = hostCommand(
  (y) =>
    y
      .positional('name', { type: 'string', demandOption: true })
      .positional('key', { type: 'string', demandOption: true })
      .example('$0 config get web user.foo', ''),
  async (argv) => {
    const { body } = await adminClient(argv).request('GET', `${configPath(argv.name)}/${encodeURIComponent(argv.key)}`);
    await writeValue(body);
  },
);

/** `unset`. */
export const unset = hostCommand(
  (y) =>
    y
      .positional('name', { type: 'string', demandOption: true })
      .positional('key', { type: 'string', demandOption: true })
      .example('$0 config unset web user.foo', ''),
  async (argv) => {
    await adminClient(argv).json('PATCH', configPath(argv.name), keyMap([[argv.key, null]]));
  },
);

/** `show`. */
export const show = hostCommand(
  (y) =>
    y
      .positional('name', { type: 'string', demandOption: true })
      .option('format', { alias: 'f', choices: ['table', 'json', 'yaml'] as const, default: 'table' as const })
      .example('$0 config show web --format json', ''),
  async (argv) => {
    const container = await adminClient(argv).container(argv.name);
    const config = container.config;
    await writeOut(
      await render(argv.format, config, () => ({ head: ['KEY', 'VALUE'], rows: Object.entries(config) })),
    );
  },
);
