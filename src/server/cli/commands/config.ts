/** `devapollo config set|get|unset|show`. */
import { keyMap } from '../../../shared/key-map.js';
import { guestKeyPrefix } from '../../../shared/names.js';
import { render, visible, writeOut, writeValue } from '../../../shared/output.js';
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
    // A guest.* value is the container's to choose: on a terminal its control characters
    // are shown escaped (\x1b, \u202e), never acted on; piped, it is its exact bytes.
    if (process.stdout.isTTY && argv.key.startsWith(guestKeyPrefix)) {
      await writeValue(Buffer.from(body.toString('utf8').split('\n').map(visible).join('\n'), 'utf8'));
      return;
    }
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
    await writeOut(await render(argv.format, config, () => ({ head: ['KEY', 'VALUE'], rows: Object.entries(config) })));
  },
);
