/** `devapollo serve`: the daemon in the foreground. */
import { ApolloError } from '../../../shared/errors.js';
import { defaultGuestLimits } from '../../guest/server.js';
import { identitySettings } from '../../identity/settings.js';
import { resolveDir } from '../../paths.js';
import { hostCommand } from './shared.js';

/** The longest time a Node timer waits (2^31 - 1 ms): a longer one fires at once. */
const longestWaitSeconds = 2_147_483;

/** The time a guest has for its whole request (headers and body), which its headers' time cannot pass. */
const requestSeconds = defaultGuestLimits.requestTimeoutMs / 1000;

/** Options that must be numbers from `min` to `max` (integers where `integer`), and why the max. */
const numeric: [option: string, min: number, integer: boolean, max?: [number, string]][] = [
  ['max-value-size', 1, true],
  ['max-log-size', 4096, true],
  ['stop-timeout', 0, false, [longestWaitSeconds, 'the longest a timer waits']],
  ['events-heartbeat', 0.001, false, [longestWaitSeconds, 'the longest a timer waits']],
  ['rate-limit', 0, false],
  ['rate-burst', 1, true],
  ['guest-write-rate', 0, false],
  ['guest-write-burst', 1, true],
  ['max-connections', 1, true],
  ['max-container-connections', 1, true],
  ['max-event-streams', 1, true],
  ['header-timeout', 0.001, false, [requestSeconds, 'the time a guest has for its whole request']],
  ['idle-timeout', 0.001, false, [longestWaitSeconds, 'the longest a timer waits']],
  ['token-rate', 0, false],
  ['token-burst', 1, true],
];

/** Each numeric option's value in range, or a usage error that names it, the range and the value. */
function checkNumbers(argv: { readonly [option: string]: unknown }): void {
  for (const [option, min, integer, max] of numeric) {
    const value = argv[option];
    if (typeof value !== 'number' || !(value >= min) || (integer && !Number.isSafeInteger(value))) {
      throw new ApolloError('usage', `--${option} must be a number${integer ? ' (whole)' : ''} of at least ${min}`);
    }
    if (max !== undefined && value > max[0]) {
      throw new ApolloError('usage', `--${option} must be at most ${max[0]} seconds (${max[1]}), not ${value}`);
    }
  }
}

/** `serve`. */
export const serve = hostCommand(
  (y) =>
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
      .option('stop-timeout', {
        type: 'number',
        default: 10,
        describe: 'default seconds between SIGTERM and SIGKILL on stop; also the most the daemon takes to exit on SIGTERM',
      })
      .option('events-heartbeat', { type: 'number', default: 15, describe: 'seconds between heartbeats on event streams' })
      .option('rate-limit', { type: 'number', default: 1024, describe: 'guest requests per second per container (0: no limit)' })
      .option('rate-burst', { type: 'number', default: 4096, describe: 'guest requests a container may make at once' })
      .option('guest-write-rate', {
        type: 'number',
        default: 16,
        describe: 'writes of guest.* keys and state changes (PATCH /1.0) per second per container, each fsynced (0: no limit)',
      })
      .option('guest-write-burst', { type: 'number', default: 64, describe: 'such writes a container may make at once' })
      .option('max-connections', { type: 'number', default: 8192, describe: 'open guest connections in all' })
      .option('max-container-connections', { type: 'number', default: 256, describe: 'open guest connections per container' })
      .option('max-event-streams', { type: 'number', default: 64, describe: 'open event streams per container' })
      .option('header-timeout', { type: 'number', default: 5, describe: 'seconds a guest has to send its request headers' })
      .option('idle-timeout', { type: 'number', default: 30, describe: 'seconds an idle kept-alive guest connection stays open' })
      .option('identity-issuer', {
        type: 'string',
        defaultDescription: 'https://HOSTNAME',
        describe: 'the iss of identity tokens: an https URL where DIR/public is published (ISSUER/jwks.json)',
      })
      .option('trust-domain', {
        type: 'string',
        defaultDescription: 'HOSTNAME',
        describe: 'the SPIFFE trust domain in the sub of identity tokens (spiffe://TRUST_DOMAIN/devapollo/HOSTNAME/NAME)',
      })
      .option('token-rate', {
        type: 'number',
        default: 16,
        describe: 'identity tokens per second per container (0: no limit beyond --rate-limit)',
      })
      .option('token-burst', { type: 'number', default: 64, describe: 'identity tokens a container may be issued at once' })
      .example('$0 serve --dir /var/lib/apollo', '')
      .example(
        '$0 serve --identity-issuer https://apollo.example.com --trust-domain example.com',
        'tokens a relying party checks at that URL',
      )
      .example('$0 serve --rate-limit 0 --log-format json', 'no request rate limit; JSON logs'),
  async (argv) => {
    checkNumbers(argv);
    const dir = resolveDir(argv.dir);
    const identity = identitySettings({ issuer: argv['identity-issuer'], trustDomain: argv['trust-domain'] });
    if (process.getuid?.() !== 0) throw new ApolloError('forbidden', 'devapollo serve must run as root');
    const { serve: startDaemon } = await import('../../daemon.js');
    const daemon = await startDaemon({
      dir,
      logLevel: argv['log-level'],
      logFormat: argv['log-format'],
      maxValueBytes: argv['max-value-size'],
      maxLogBytes: argv['max-log-size'],
      adminGroup: argv['admin-group'],
      stopTimeoutSeconds: argv['stop-timeout'],
      logRequests: argv['log-requests'],
      identity,
      tokenRate: { perSecond: argv['token-rate'], burst: argv['token-burst'] },
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
      process.stderr.write(
        `devapollo: internal error, exiting: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
      );
      process.exit(1);
    };
    process.on('uncaughtException', crash);
    process.on('unhandledRejection', crash);
    process.on('SIGHUP', () => undefined);
    await daemon.closed;
  },
);
