/** `devapollo monitor [NAME]`: events as they happen, for one container or all. */
import { renderEventLine, safeJson, writeOut } from '../../../shared/output.js';
import { adminClient, hostCommand } from './shared.js';

/** `monitor`. */
export const monitor = hostCommand(
  (y) =>
    y
      .positional('name', { type: 'string', describe: 'only this container' })
      .option('type', { type: 'string', default: 'config,lifecycle', describe: 'config, lifecycle or both' })
      .option('format', { alias: 'f', choices: ['text', 'json'] as const, default: 'text' as const, describe: 'json: one object per line' })
      .example('$0 monitor web --type config', ''),
  async (argv) => {
    const query = new URLSearchParams({ type: argv.type });
    if (argv.name !== undefined) query.set('container', argv.name);
    let printing = Promise.resolve();
    await adminClient(argv).stream(`/1.0/events?${query}`, (line) => {
      printing = printing.then(async () => writeOut(argv.format === 'json' ? `${safeJson(JSON.parse(line))}\n` : await renderEventLine(JSON.parse(line))));
    });
    await printing;
  },
);
