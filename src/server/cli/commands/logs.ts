/** `devapollo logs NAME`: a container's output, as it wrote it. */
import { ApolloError } from '../../../shared/errors.js';
import { adminClient, hostCommand } from './shared.js';

/** `devapollo logs`. */
export const logs = hostCommand(
  (y) =>
    y
      .positional('name', { type: 'string', demandOption: true, describe: 'container name' })
      .usage(
        "$0 logs <name> [--lines N] [--follow]\n\nShow a container's output (its init's stdout and stderr, from the capped log)\n\n" +
          'The log is DIR/logs/NAME.log and, once it reached serve --max-log-size, NAME.log.1 before it. The bytes are ' +
          "written to stdout exactly as the container wrote them, as lxc and docker logs do: a container's output may hold " +
          'terminal escape sequences; pipe it through cat -v (or less) to see them rather than have your terminal act on them.',
      )
      .option('lines', { alias: 'n', type: 'number', describe: 'only the last N lines' })
      .option('follow', { alias: 'f', type: 'boolean', default: false, describe: 'keep printing what the container writes (Ctrl-C ends)' })
      .example('$0 logs web --lines 20', 'the last 20 lines')
      .example('$0 logs web -f | cat -v', 'follow, escape sequences shown, not acted on'),
  async (argv) => {
    const query = new URLSearchParams();
    if (argv.lines !== undefined) {
      if (!(Number.isSafeInteger(argv.lines) && argv.lines >= 0)) {
        throw new ApolloError('usage', `--lines must be a whole number of lines, got ${JSON.stringify(String(argv.lines))}`);
      }
      query.set('lines', String(argv.lines));
    }
    if (argv.follow) query.set('follow', 'true');
    const search = query.size > 0 ? `?${query}` : '';
    await adminClient(argv).copyTo(`/1.0/containers/${encodeURIComponent(argv.name)}/log${search}`, process.stdout);
  },
);
