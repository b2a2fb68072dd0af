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
  'max-log-size': number;
  'admin-group'?: string | undefined;
  'stop-timeout': number;
  'events-heartbeat': number;
  'rate-limit': number;
  'rate-burst': number;
  'guest-write-rate': number;
  'guest-write-burst': number;
  'max-connections': number;
  'max-container-connections': number;
  'max-event-streams': number;
  'header-timeout': number;
  'idle-timeout': number;
  'log-requests': boolean;
};

/** Options that must be numbers of at least `min` (integers where `integer`). */
const numeric: [keyof ServeArgs, number, boolean][] = [
  ['max-value-size', 1, true],
  ['max-log-size', 4096, true],
  ['stop-timeout', 0, false],
  ['events-heartbeat', 0.001, false],
  ['rate-limit', 0, false],
  ['rate-burst', 1, true],
  ['guest-write-rate', 0, false],
  ['guest-write-burst', 1, true],
  ['max-connections', 1, true],
  ['max-container-connections', 1, true],
  ['max-event-streams', 1, true],
  ['header-timeout', 0.001, false],
  ['idle-timeout', 0.001, false],
];

export const serveCommand: CommandModule<Global, ServeArgs> = {
  command: 'serve',
  describe: 'Run the daemon in the foreground (SIGINT/SIGTERM stop it; containers keep running)',
  builder: (y) =>
    y
      .option('log-level', { choices: ['debug', 'info', 'warn', 'error'] as const, default: 'info' as const })
      .option('log-format', { choices: ['text', 'json'] as const, default: 'text' as const })
      .option('log-requests', { type: 'boolean', default: false, describe: 'one log line per request (never a value)' })
      .option('max-value-size', { type: 'number', default: 1024 * 1024, describe: 'largest config value, in bytes' })
      .option('max-log-size', {
        type: 'number',
        default: 10 * 1024 * 1024,
        describe: "largest size of a container's output log, in bytes (then rotated once, to NAME.log.1)",
      })
      .option('admin-group', {
        type: 'string',
        describe: 'a group that may use the admin socket besides root; this gives its members host root (launch --privileged, exec)',
      })
      .option('stop-timeout', { type: 'number', default: 10, describe: 'default seconds between SIGTERM and SIGKILL on stop; also the most the daemon takes to exit on SIGTERM' })
      .option('events-heartbeat', { type: 'number', default: 15, describe: 'seconds between heartbeats on event streams' })
      .option('rate-limit', { type: 'number', default: 1024, describe: 'guest requests per second per container (0: no limit)' })
      .option('rate-burst', { type: 'number', default: 4096, describe: 'guest requests a container may make at once' })
      .option('guest-write-rate', { type: 'number', default: 16, describe: 'writes of guest.* keys per second per container, each fsynced (0: no limit)' })
      .option('guest-write-burst', { type: 'number', default: 64, describe: 'writes of guest.* keys a container may make at once' })
      .option('max-connections', { type: 'number', default: 8192, describe: 'open guest connections in all' })
      .option('max-container-connections', { type: 'number', default: 256, describe: 'open guest connections per container' })
      .option('max-event-streams', { type: 'number', default: 64, describe: 'open event streams per container' })
      .option('header-timeout', { type: 'number', default: 5, describe: 'seconds a guest has to send its request headers' })
      .option('idle-timeout', { type: 'number', default: 30, describe: 'seconds an idle kept-alive guest connection stays open' })
      .example('$0 serve --dir /var/lib/apollo', '')
      .example('$0 serve --rate-limit 0 --log-format json', 'no request rate limit; JSON logs') as never,
  handler: async (argv) => {
    for (const [option, min, integer] of numeric) {
      const value = argv[option] as number;
      if (typeof value !== 'number' || !(value >= min) || (integer && !Number.isSafeInteger(value))) {
        throw new ApolloError('usage', `--${option} must be a number${integer ? ' (whole)' : ''} of at least ${min}`);
      }
    }
    if (process.getuid?.() !== 0) throw new ApolloError('forbidden', 'devapollo serve must run as root');
    const [{ serve }, { defaultGuestLimits }] = await Promise.all([import('../../daemon.js'), import('../../guest/server.js')]);
    const daemon = await serve({
      dir: resolveDir(argv.dir),
      logLevel: argv['log-level'],
      logFormat: argv['log-format'],
      maxValueBytes: argv['max-value-size'],
      maxLogBytes: argv['max-log-size'],
      adminGroup: argv['admin-group'],
      stopTimeoutSeconds: argv['stop-timeout'],
      logRequests: argv['log-requests'],
      guestLimits: {
        ...defaultGuestLimits,
        headersTimeoutMs: argv['header-timeout'] * 1000,
        keepAliveTimeoutMs: argv['idle-timeout'] * 1000,
        maxConnections: argv['max-connections'],
        maxConnectionsPerContainer: argv['max-container-connections'],
        rate: { perSecond: argv['rate-limit'], burst: argv['rate-burst'] },
        guestKeys: { ...defaultGuestLimits.guestKeys, rate: { perSecond: argv['guest-write-rate'], burst: argv['guest-write-burst'] } },
        events: {
          ...defaultGuestLimits.events,
          heartbeatMs: argv['events-heartbeat'] * 1000,
          maxListenersPerContainer: argv['max-event-streams'],
        },
      },
    });
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      process.on(signal, () => void daemon.shutdown(signal));
    }
    // A bug must not leave a half-working daemon behind: say what it was, and exit (the
    // containers keep running; a supervisor restarts the daemon, which re-adopts them).
    const crash = (error: unknown) => {
      process.stderr.write(`devapollo: internal error, exiting: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exit(1);
    };
    process.on('uncaughtException', crash);
    process.on('unhandledRejection', crash);
    process.on('SIGHUP', () => undefined);
    await daemon.closed;
  },
};
