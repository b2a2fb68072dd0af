/**
 * The guest's client for /dev/apollo/sock: plain node:http over the Unix socket (fast to
 * load: `devapollo-guest get` runs in loops inside boot scripts). Failures to reach the
 * daemon become ApolloErrors with exit code 69, after a short retry for the moments a
 * daemon restarts; answers of the daemon become the error its status means.
 *
 * The server may be broken, or not devapollo at all (the socket is the container's to
 * replace): every exchange ends within the timeout, headers and body included, and no
 * answer is read past a size limit (`answerLimits`).
 */
import fs from 'node:fs';
import type http from 'node:http';
import path from 'node:path';
import { ApolloError, errorFromResponse } from '../shared/errors.js';
import { readLines } from '../shared/lines.js';
import { exchange, openStream } from '../shared/unix-http.js';

export const defaultSocketPath = '/dev/apollo/sock';

export interface GuestClientOptions {
  /** --socket, else APOLLO_SOCKET, else /dev/apollo/sock. */
  readonly socketPath?: string | undefined;
  /**
   * The bound on reaching the daemon: connecting, retrying while it restarts, and waiting
   * for an answer's headers all end within it (default 5 s).
   */
  readonly connectTimeoutMs?: number | undefined;
}

export interface GuestResponse {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
}

const transient = new Set(['ECONNREFUSED', 'ENOENT', 'ECONNRESET', 'EPIPE', 'EAGAIN']);

const MiB = 1024 * 1024;

/**
 * The largest answers the client reads; more is an error (exit 1), never memory without
 * bound. The client cannot know the daemon's `--max-value-size` (1 MiB by default), so a
 * value may be as large as anything the daemon can hold: the admin API takes request
 * bodies of at most 64 MiB, so no value set through it is larger. JSON documents are
 * lists of key names and small objects: 8 MiB is over 30,000 keys of the longest name.
 * An error answer is one short line. An event line carries a key's old and new values,
 * escaped as JSON: 16 MiB is two 1 MiB values even if every byte needs an escape.
 */
export const answerLimits = {
  valueBytes: 64 * MiB,
  jsonBytes: 8 * MiB,
  errorBytes: 64 * 1024,
  eventLineBytes: 16 * MiB,
} as const;

/**
 * How a 429 (the container's request rate is over its limit) is retried: after the wait
 * its Retry-After asks for, at most 3 times, and only when that wait is at most 5 s; a
 * longer one is answered at once with the error (exit 1), not slept through.
 */
export const rateLimitRetries = { attempts: 3, longestWaitMs: 5000 } as const;

/** A Retry-After header (seconds, or an HTTP date) in milliseconds; 1 s when absent or unreadable. */
function retryAfterMs(header: string | string[] | undefined): number {
  const text = Array.isArray(header) ? header[0] : header;
  if (text === undefined || text.trim() === '') return 1000;
  if (/^\s*\d+\s*$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? 1000 : Math.max(0, at - Date.now());
}

/** What the options of a request may say beyond its method and target. */
interface SendOptions {
  readonly body?: string | Buffer;
  readonly headers?: http.OutgoingHttpHeaders;
  /** How long a change-wait may take: the timeout is extended by it. */
  readonly waitMs?: number;
  /** The largest successful answer to read (default: a JSON document's). */
  readonly maxBytes?: number;
}

export class GuestClient {
  readonly socketPath: string;
  private readonly connectTimeoutMs: number;

  constructor(options: GuestClientOptions = {}) {
    this.socketPath = options.socketPath ?? process.env['APOLLO_SOCKET'] ?? defaultSocketPath;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 5000;
  }

  /** A request that must succeed (2xx or 304); anything else throws the matching error. */
  async request(method: string, target: string, options: Omit<SendOptions, 'waitMs'> = {}): Promise<GuestResponse> {
    const response = await this.send(method, target, options);
    if (response.status >= 400) throw errorFromResponse(response.status, response.body.toString('utf8'));
    return response;
  }

  /** A value or meta-data, byte for byte. */
  async getText(target: string): Promise<Buffer> {
    return (await this.request('GET', target, { maxBytes: answerLimits.valueBytes })).body;
  }

  async getJson<T>(target: string): Promise<T> {
    return JSON.parse((await this.request('GET', target)).body.toString('utf8')) as T;
  }

  /**
   * A GET that may answer 404 (an unset key): the value (undefined when unset) and its
   * ETag. Other errors throw. `waitMs` extends the answer timeout for change-waits.
   */
  async getWithEtag(target: string, waitMs = 0): Promise<{ value: Buffer | undefined; etag: string }> {
    const response = await this.send('GET', target, { waitMs, maxBytes: answerLimits.valueBytes });
    if (response.status !== 200 && response.status !== 404) {
      throw errorFromResponse(response.status, response.body.toString('utf8'));
    }
    const etag = response.headers.etag;
    if (typeof etag !== 'string') throw new ApolloError('internal', `the daemon sent no ETag for ${target}`);
    return { value: response.status === 200 ? response.body : undefined, etag };
  }

  /**
   * Opens a stream of one JSON object per line and calls `onLine` for each. Resolves once
   * the stream is open (its headers within the timeout); `ended` settles when it ends
   * (rejects when it breaks, or a line is longer than `answerLimits.eventLineBytes`).
   */
  async openStream(target: string, onLine: (line: string) => void): Promise<{ ended: Promise<void>; close: () => void }> {
    let opened: Awaited<ReturnType<typeof openStream>>;
    try {
      opened = await openStream({
        ...this.target('GET', target),
        timeoutMs: this.connectTimeoutMs,
        maxBytes: () => answerLimits.errorBytes,
      });
    } catch (error) {
      throw this.unreachable(error);
    }
    const { res, req } = opened;
    const ended = (async () => {
      try {
        // Empty lines are heartbeats.
        for await (const line of readLines(res, answerLimits.eventLineBytes)) if (line.trim() !== '') onLine(line);
      } catch (error) {
        req.destroy();
        throw this.unreachable(error);
      }
    })();
    return { ended, close: () => req.destroy() };
  }

  /**
   * Sends with retries for a daemon that is restarting (503 counts as restarting), and
   * after a 429 as its Retry-After says, within `rateLimitRetries`: a refusal past them is
   * the answer (exit 1).
   */
  async send(method: string, target: string, options: SendOptions = {}): Promise<GuestResponse> {
    let deadline = Date.now() + this.connectTimeoutMs;
    let delay = 25;
    let throttled = 0;
    for (;;) {
      try {
        const response = await this.once(method, target, options, Math.max(deadline - Date.now(), 100));
        if (response.status === 429) {
          const waitMs = retryAfterMs(response.headers['retry-after']);
          if (throttled >= rateLimitRetries.attempts || waitMs > rateLimitRetries.longestWaitMs) return response;
          throttled++;
          await new Promise((resolve) => setTimeout(resolve, waitMs));
          // The wait was the daemon's to ask for: the next attempt has its whole time again.
          deadline = Date.now() + this.connectTimeoutMs;
          continue;
        }
        if (response.status !== 503 || Date.now() + delay > deadline) return response;
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code ?? '';
        if (!transient.has(code) || Date.now() + delay > deadline || !this.socketDirectoryExists()) {
          throw this.unreachable(error);
        }
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 400);
    }
  }

  /**
   * One attempt. The timeout covers the whole exchange: connecting, the answer's headers
   * and its whole body (a server that dribbles a body is as good as none), extended only
   * by a change-wait's own time.
   */
  private once(method: string, target: string, options: SendOptions, timeoutMs: number): Promise<GuestResponse> {
    return exchange({
      ...this.target(method, target),
      headers: options.headers,
      body: options.body,
      timeoutMs: timeoutMs + (options.waitMs ?? 0),
      maxBytes: (status) => (status >= 400 ? answerLimits.errorBytes : (options.maxBytes ?? answerLimits.jsonBytes)),
      reader: 'devapollo-guest',
    });
  }

  private target(method: string, target: string): { socketPath: string; method: string; path: string } {
    return { socketPath: this.socketPath, method, path: target };
  }

  /** Without /dev/apollo there is nothing to wait for: this is not a served container. */
  private socketDirectoryExists(): boolean {
    return fs.existsSync(path.dirname(this.socketPath));
  }

  /** A failure to reach the daemon as the error (exit 69) it means; ApolloErrors pass through. */
  unreachable(error: unknown): ApolloError {
    if (error instanceof ApolloError) return error;
    const code = (error as NodeJS.ErrnoException).code;
    const socket = this.socketPath;
    switch (code) {
      case 'ENOENT':
        return new ApolloError(
          'no-daemon',
          this.socketDirectoryExists()
            ? `no socket at ${socket}: the devapollo daemon is down`
            : `no socket at ${socket}: this is not a container served by devapollo (set --socket or APOLLO_SOCKET)`,
          { cause: error },
        );
      case 'ECONNREFUSED':
        return new ApolloError('no-daemon', `nobody answers on ${socket}: the devapollo daemon is down`, { cause: error });
      case 'EACCES':
        return new ApolloError('no-daemon', `permission denied on ${socket}`, { cause: error });
      case 'ETIMEDOUT':
        return new ApolloError('no-daemon', `the devapollo daemon did not answer on ${socket} within ${this.connectTimeoutMs / 1000} s`, {
          cause: error,
        });
      default:
        return new ApolloError('no-daemon', `cannot talk to the devapollo daemon on ${socket}: ${(error as Error).message}`, {
          cause: error,
        });
    }
  }
}
