/** `devapollo serve`: the daemon in the foreground. */
import type { CommandModule } from 'yargs';
import { ApolloError } from '../../../shared/errors.js';
import type { LogFormat, LogLevel } from '../../log.js';
import { resolveDir } from '../../paths.js';

type Global = { dir?: string | undefined };
type ServeArgs = Global & {
  'log-level': LogLevel;
  'log-format': LogFormat;
  'max-value-size': number;
  'admin-group'?: string | undefined;
  'stop-timeout': number;
  'events-heartbeat': number;
};

export const serveCommand: CommandModule<Global, ServeArgs> = {
  command: 'serve',
  describe: 'Run the daemon in the foreground (SIGINT/SIGTERM stop it; containers keep running)',
  builder: (y) =>
    y
      .option('log-level', { choices: ['debug', 'info', 'warn', 'error'] as const, default: 'info' as const })
      .option('log-format', { choices: ['text', 'json'] as const, default: 'text' as const })
      .option('max-value-size', { type: 'number', default: 1024 * 1024, describe: 'largest config value, in bytes' })
      .option('admin-group', { type: 'string', describe: 'a group that may use the admin socket besides root' })
      .option('stop-timeout', { type: 'number', default: 10, describe: 'default seconds between SIGTERM and SIGKILL on stop' })
      .option('events-heartbeat', { type: 'number', default: 15, describe: 'seconds between heartbeats on event streams' })
      .example('$0 serve --dir /var/lib/apollo', '') as never,
  handler: async (argv) => {
    if (!Number.isSafeInteger(argv['max-value-size']) || argv['max-value-size'] <= 0) {
      throw new ApolloError('usage', '--max-value-size must be a positive number of bytes');
    }
    if (!(argv['stop-timeout'] >= 0)) throw new ApolloError('usage', '--stop-timeout must be a number of seconds');
    if (!(argv['events-heartbeat'] > 0)) throw new ApolloError('usage', '--events-heartbeat must be a positive number of seconds');
    if (process.getuid?.() !== 0) throw new ApolloError('forbidden', 'devapollo serve must run as root');
    const { serve } = await import('../../daemon.js');
    const daemon = await serve({
      dir: resolveDir(argv.dir),
      logLevel: argv['log-level'],
      logFormat: argv['log-format'],
      maxValueBytes: argv['max-value-size'],
      adminGroup: argv['admin-group'],
      stopTimeoutSeconds: argv['stop-timeout'],
      eventsHeartbeatSeconds: argv['events-heartbeat'],
    });
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      process.on(signal, () => void daemon.shutdown(signal));
    }
    process.on('SIGHUP', () => undefined);
    await daemon.closed;
  },
};
