/**
 * The guest's client for /dev/apollo/sock: plain node:http over the Unix socket (fast to
 * load: `devapollo-guest get` runs in loops inside boot scripts). Failures to reach the
 * daemon become ApolloErrors with exit code 69, after a short retry for the moments a
 * daemon restarts; answers of the daemon become the error its status means.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { ApolloError, errorFromResponse } from '../shared/errors.js';
import { readLines } from '../shared/lines.js';

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

export class GuestClient {
  readonly socketPath: string;
  private readonly connectTimeoutMs: number;

  constructor(options: GuestClientOptions = {}) {
    this.socketPath = options.socketPath ?? process.env['APOLLO_SOCKET'] ?? defaultSocketPath;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 5000;
  }

  /** A request that must succeed (2xx or 304); anything else throws the matching error. */
  async request(method: string, target: string, options: { body?: string; headers?: http.OutgoingHttpHeaders } = {}): Promise<GuestResponse> {
    const response = await this.send(method, target, options);
    if (response.status >= 400) throw errorFromResponse(response.status, response.body.toString('utf8'));
    return response;
  }

  async getText(target: string): Promise<Buffer> {
    return (await this.request('GET', target)).body;
  }

  async getJson<T>(target: string): Promise<T> {
    return JSON.parse((await this.request('GET', target)).body.toString('utf8')) as T;
  }

  /**
   * A GET that may answer 404 (an unset key): the value (undefined when unset) and its
   * ETag. Other errors throw. `waitMs` extends the answer timeout for change-waits.
   */
  async getWithEtag(target: string, waitMs = 0): Promise<{ value: Buffer | undefined; etag: string }> {
    const response = await this.send('GET', target, { waitMs });
    if (response.status !== 200 && response.status !== 404) {
      throw errorFromResponse(response.status, response.body.toString('utf8'));
    }
    const etag = response.headers.etag;
    if (typeof etag !== 'string') throw new ApolloError('internal', `the daemon sent no ETag for ${target}`);
    return { value: response.status === 200 ? response.body : undefined, etag };
  }

  /**
   * Opens a stream of one JSON object per line and calls `onLine` for each. Resolves once
   * the stream is open; `ended` settles when it ends (rejects when it breaks).
   */
  async openStream(target: string, onLine: (line: string) => void): Promise<{ ended: Promise<void>; close: () => void }> {
    const { res, req } = await new Promise<{ res: http.IncomingMessage; req: http.ClientRequest }>((resolve, reject) => {
      const request = http.request({ ...this.connection(), method: 'GET', path: target, headers: { Host: 'apollo' } });
      const timer = setTimeout(() => request.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })), this.connectTimeoutMs);
      request.once('response', (response) => {
        clearTimeout(timer);
        resolve({ res: response, req: request });
      });
      request.once('error', (error) => {
        clearTimeout(timer);
        reject(this.unreachable(error));
      });
      request.end();
    });
    if ((res.statusCode ?? 0) >= 400) {
      const chunks: Buffer[] = [];
      for await (const chunk of res as AsyncIterable<Buffer>) chunks.push(chunk);
      throw errorFromResponse(res.statusCode ?? 0, Buffer.concat(chunks).toString('utf8'));
    }
    const ended = (async () => {
      try {
        // Empty lines are heartbeats.
        for await (const line of readLines(res)) if (line.trim() !== '') onLine(line);
      } catch (error) {
        throw this.unreachable(error);
      }
    })();
    return { ended, close: () => req.destroy() };
  }

  /** Sends with retries for a daemon that is restarting; 503 counts as restarting. */
  async send(
    method: string,
    target: string,
    options: { body?: string; headers?: http.OutgoingHttpHeaders; waitMs?: number } = {},
  ): Promise<GuestResponse> {
    const deadline = Date.now() + this.connectTimeoutMs;
    let delay = 25;
    for (;;) {
      try {
        const response = await this.once(method, target, options, Math.max(deadline - Date.now(), 100));
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

  /** One attempt; the timeout covers connecting and waiting for the answer's headers. */
  private once(
    method: string,
    target: string,
    options: { body?: string; headers?: http.OutgoingHttpHeaders; waitMs?: number },
    timeoutMs: number,
  ): Promise<GuestResponse> {
    return new Promise((resolve, reject) => {
      const req = http.request({ ...this.connection(), method, path: target, headers: { Host: 'apollo', ...options.headers } });
      const timer = setTimeout(() => {
        const error = Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' });
        req.destroy(error);
      }, timeoutMs + (options.waitMs ?? 0));
      req.once('response', (res) => {
        clearTimeout(timer);
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.once('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.once('error', reject);
      });
      req.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      req.end(options.body);
    });
  }

  /**
   * How every request reaches the daemon: the socket, a connection of its own (no agent
   * pool to keep the process alive), and no TLS server name. Without `servername`, Node's
   * agent derives one from the Host header and runs its IPv6 regular expression on it,
   * which costs a cold `devapollo-guest get` about 5 ms of its start-up.
   */
  private connection(): Pick<http.RequestOptions, 'socketPath' | 'agent'> & { servername: string } {
    return { socketPath: this.socketPath, agent: false, servername: '' };
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
