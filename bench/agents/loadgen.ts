/**
 * The load generator, run inside a container (its connections must come from there:
 * identity is the container's) or on the host for the baseline: autocannon against a
 * Unix socket. Protocol on stdio: it warms up, prints "ready", waits for "go" on stdin
 * (the parent reads the server's CPU time in between), runs, prints one JSON line.
 *
 * Argument: a JSON object { socketPath, path, connections, seconds, warmupSeconds,
 * reconnect, expectBody, maxRequests }.
 */

import http from 'node:http';
import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';

interface Options {
  readonly socketPath: string;
  readonly path: string;
  readonly connections: number;
  readonly seconds: number;
  readonly warmupSeconds: number;
  /** A new connection for every request (what each `devapollo-guest` call does). */
  readonly reconnect: boolean;
  /** The body the check must see; null: any 200 (an identity token differs every time). */
  readonly expectBody: string | null;
  /** Stop after this many requests instead of after `seconds` (a caller that must stay within a rate limit's burst). */
  readonly maxRequests?: number;
}

interface Histogram {
  readonly p50: number;
  readonly p99: number;
  readonly average: number;
}

interface AutocannonResult {
  readonly requests: Histogram & { readonly total: number };
  readonly latency: Histogram;
  readonly errors: number;
  readonly timeouts: number;
  readonly non2xx: number;
  readonly duration: number;
}

type Autocannon = (
  options: Record<string, unknown>,
  done: (error: unknown, result: AutocannonResult) => void,
) => { on(event: 'start' | 'response', listener: () => void): void };

/** The parts of autocannon's per-connection client that the reconnect mode touches. */
interface AutocannonClient {
  readonly parser: Record<number, () => void>;
  readonly destroyed: boolean;
  readonly rate: number | undefined;
  readonly pipelinedRequests: {
    terminateRequest(): { req: unknown; headers: { statusCode: number; headers: unknown }; body: unknown; bytes: number; duration: number };
  };
  readonly requestIterator: { recordBody(req: unknown, status: number, body: unknown, headers: unknown): void };
  emit(event: string, ...args: unknown[]): void;
  _resetConnection(): void;
}

const require = createRequire(import.meta.url);
const autocannon = require('autocannon') as Autocannon;
const { HTTPParser } = createRequire(require.resolve('autocannon'))('http-parser-js') as { HTTPParser: { kOnMessageComplete: number } };
const options = JSON.parse(process.argv[2] ?? '{}') as Options;

/** What autocannon reports, and the seconds from its start to the last answer. */
function fire(seconds: number): Promise<AutocannonResult & { answeringSeconds: number }> {
  return new Promise((resolve, reject) => {
    let started = process.hrtime.bigint();
    let answered = started;
    const instance = autocannon(
      {
        url: `http://apollo${options.path}`,
        socketPath: options.socketPath,
        connections: options.connections,
        duration: seconds,
        ...(options.maxRequests === undefined ? {} : { amount: options.maxRequests }),
        pipelining: 1,
        ...(options.reconnect ? { setupClient: reconnectAfterEachResponse } : {}),
      },
      (error, result) => (error ? reject(error) : resolve({ ...result, answeringSeconds: Number(answered - started) / 1e9 })),
    );
    instance.on('start', () => {
      started = process.hrtime.bigint();
    });
    instance.on('response', () => {
      answered = process.hrtime.bigint();
    });
  });
}

/**
 * A new connection for every request. autocannon's own `reconnectRate: 1` resets the
 * connection before it records the response (autocannon 9: every request goes
 * uncounted), so each client's completion handler is replaced, once the client is built,
 * by one that records the response first and then reconnects (which sends the next).
 */
function reconnectAfterEachResponse(client: AutocannonClient): void {
  queueMicrotask(() => {
    client.parser[HTTPParser.kOnMessageComplete] = () => {
      const response = client.pipelinedRequests.terminateRequest();
      if (client.destroyed) return;
      client.requestIterator.recordBody(response.req, response.headers.statusCode, response.body, response.headers.headers);
      client.emit('response', response.headers.statusCode, response.bytes, response.duration, client.rate);
      client._resetConnection();
    };
  });
}

/** One plain request first: the server must answer 200 with the expected bytes. */
function check(): Promise<void> {
  return new Promise((resolve, reject) => {
    http
      .get({ socketPath: options.socketPath, path: options.path, headers: { Host: 'apollo' } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.once('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          if (res.statusCode === 200 && (options.expectBody === null || body === options.expectBody)) resolve();
          else reject(new Error(`check failed: ${res.statusCode} ${body}`));
        });
      })
      .once('error', reject);
  });
}

await check();
if (options.warmupSeconds > 0) await fire(options.warmupSeconds);
process.stdout.write('ready\n');
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const go = await lines.next();
if (go.done || go.value !== 'go') process.exit(1);
const result = await fire(options.seconds);
// With `amount`, autocannon's duration runs on to its next one-second sample after the
// last answer: the rate is then over the time from its start to the last answer.
const requests = result.requests.total;
const seconds = options.maxRequests === undefined ? result.duration : result.answeringSeconds;
process.stdout.write(
  `${JSON.stringify({
    requests,
    seconds,
    requests_per_second: requests / seconds,
    latency_p50_ms: result.latency.p50,
    latency_p99_ms: result.latency.p99,
    errors: result.errors + result.timeouts + result.non2xx,
  })}\n`,
);
process.exit(0);
