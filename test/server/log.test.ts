// The daemon's log: RateLimitedLog with an injected clock, and Logger's text and json
// lines and level filtering.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Logger, RateLimitedLog } from '../../dist/server/log.js';

describe('RateLimitedLog', () => {
  /** A limiter on a clock the test moves, and the suppressed counts of what got through. */
  function harness(burst: number, windowMs: number, start = 0) {
    let now = start;
    const limiter = new RateLimitedLog(burst, windowMs, () => now);
    const emitted: number[] = [];
    return {
      attempt: () => limiter.attempt((suppressed) => emitted.push(suppressed)),
      advance: (ms: number) => {
        now += ms;
      },
      emitted,
    };
  }

  test('lets burst lines through per window and swallows the rest', () => {
    const h = harness(3, 1000);
    for (let i = 0; i < 10; i++) h.attempt();
    assert.deepEqual(h.emitted, [0, 0, 0]);
  });

  test('reports the swallowed count with the first line of the next window', () => {
    const h = harness(3, 1000);
    for (let i = 0; i < 10; i++) h.attempt();
    h.advance(999);
    h.attempt();
    assert.deepEqual(h.emitted, [0, 0, 0], 'still the same window');
    h.advance(1);
    h.attempt();
    h.attempt();
    assert.deepEqual(h.emitted, [0, 0, 0, 8, 0]);
  });

  test('the count resets once reported, and quiet windows report nothing', () => {
    const h = harness(2, 100, 5_000);
    h.attempt();
    h.attempt();
    h.attempt();
    h.advance(100);
    h.attempt();
    h.advance(1_000);
    h.attempt();
    h.attempt();
    h.attempt();
    h.attempt();
    h.advance(100);
    h.attempt();
    assert.deepEqual(h.emitted, [0, 0, 1, 0, 0, 2]);
  });

  test('defaults to 10 per 10 seconds', () => {
    let now = 0;
    const limiter = new RateLimitedLog(undefined, undefined, () => now);
    const emitted: number[] = [];
    for (let i = 0; i < 15; i++) limiter.attempt((s) => emitted.push(s));
    assert.equal(emitted.length, 10);
    now = 9_999;
    limiter.attempt((s) => emitted.push(s));
    assert.equal(emitted.length, 10);
    now = 10_000;
    limiter.attempt((s) => emitted.push(s));
    assert.deepEqual(emitted.slice(10), [6]);
  });
});

describe('Logger', () => {
  function collect(level: ConstructorParameters<typeof Logger>[0], format: ConstructorParameters<typeof Logger>[1]) {
    const lines: string[] = [];
    return { logger: new Logger(level, format, (line) => lines.push(line)), lines };
  }
  const isoTime = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

  test('text lines: time, padded level, message, then key=value fields', () => {
    const { logger, lines } = collect('debug', 'text');
    logger.info('container started', { name: 'alpha', pid: 42, privileged: false, skipped: undefined });
    logger.warn('odd value', { reason: 'has spaces', empty: '', path: '/var/lib/x.json' });
    logger.error('plain');
    assert.equal(lines.length, 3);
    const [first = '', second = '', third = ''] = lines;
    const [time, ...rest] = first.split(' ');
    assert.match(time ?? '', isoTime);
    assert.equal(rest.join(' '), 'INFO  container started name=alpha pid=42 privileged=false\n');
    assert.equal(second.slice(second.indexOf(' ') + 1), 'WARN  odd value reason="has spaces" empty="" path=/var/lib/x.json\n');
    assert.equal(third.slice(third.indexOf(' ') + 1), 'ERROR plain\n');
  });

  test('json lines: one object per line with time, level, msg and the fields', () => {
    const { logger, lines } = collect('info', 'json');
    logger.info('request', { status: 404, path: '/1.0/x', ok: false, gone: undefined });
    assert.equal(lines.length, 1);
    const line = lines[0] ?? '';
    assert.ok(line.endsWith('\n'));
    assert.equal(line.indexOf('\n'), line.length - 1);
    const parsed = JSON.parse(line) as Record<string, unknown>;
    assert.match(String(parsed['time']), isoTime);
    assert.deepEqual({ ...parsed, time: 'T' }, { time: 'T', level: 'info', msg: 'request', status: 404, path: '/1.0/x', ok: false });
  });

  test('messages below the level are dropped', () => {
    const { logger, lines } = collect('warn', 'json');
    logger.debug('d');
    logger.info('i');
    logger.warn('w');
    logger.error('e');
    assert.deepEqual(
      lines.map((l) => (JSON.parse(l) as { msg: string }).msg),
      ['w', 'e'],
    );
    assert.equal(logger.enabled('info'), false);
    assert.equal(logger.enabled('warn'), true);
    assert.equal(logger.enabled('error'), true);
  });

  test('info is the default level: debug is dropped', () => {
    const lines: string[] = [];
    const logger = new Logger(undefined, 'text', (line) => lines.push(line));
    logger.debug('hidden');
    logger.info('shown');
    assert.equal(lines.length, 1);
    assert.match(lines[0] ?? '', / INFO {2}shown\n$/);
    assert.equal(new Logger('debug', 'text', () => undefined).enabled('debug'), true);
  });
});
