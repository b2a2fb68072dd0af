/**
 * The host CLI's client for the admin API on DIR/unix.socket (got over a Unix socket).
 * Errors come back as ApolloErrors rebuilt from the daemon's answer, so the CLI exits
 * with the code that matches it.
 */
import http from 'node:http';
import { pipeline } from 'node:stream/promises';
import type { Got } from 'got';
import { ApolloError, errorFromResponse } from '../../shared/errors.js';
import { readLines } from '../../shared/lines.js';
import type { ContainerWire, StatusWire } from '../../shared/wire.js';
import { daemonPaths } from '../paths.js';

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export class AdminClient {
  private client: Got | undefined;
  readonly socket: string;

  /** `timeoutMs` bounds each request whole (hooks must not hang a container's start); none by default. */
  constructor(
    dir: string,
    private readonly timeoutMs?: number,
  ) {
    this.socket = daemonPaths(dir).adminSocket;
  }

  async request(method: Method, path: string, body?: unknown): Promise<{ status: number; body: Buffer }> {
    const client = await this.got();
    let response;
    try {
      response = await client(path.replace(/^\//, ''), {
        method,
        ...(body === undefined ? {} : { json: body }),
        responseType: 'buffer',
      });
    } catch (error) {
      throw connectionError(this.socket, error);
    }
    if (response.statusCode >= 400) throw errorFromResponse(response.statusCode, response.body.toString('utf8'));
    return { status: response.statusCode, body: response.body };
  }

  async json<T>(method: Method, path: string, body?: unknown): Promise<T> {
    const response = await this.request(method, path, body);
    return JSON.parse(response.body.toString('utf8')) as T;
  }

  status(): Promise<StatusWire> {
    return this.json('GET', '/1.0');
  }

  list(): Promise<ContainerWire[]> {
    return this.json('GET', '/1.0/containers');
  }

  container(name: string): Promise<ContainerWire> {
    return this.json('GET', `/1.0/containers/${encodeURIComponent(name)}`);
  }

  /** Streams one JSON object per line to `onLine` until the daemon ends the stream. */
  async stream(path: string, onLine: (line: string) => void): Promise<void> {
    const response = await this.openStream(path);
    // Empty lines are heartbeats.
    for await (const line of readLines(response)) if (line.trim() !== '') onLine(line);
  }

  /**
   * Copies an answer's body byte for byte to `out` until the daemon ends it (or the
   * process is interrupted); an error answer is thrown as usual.
   */
  async copyTo(path: string, out: NodeJS.WritableStream): Promise<void> {
    const response = await this.openStream(path);
    await pipeline(response, out, { end: false });
  }

  /** A GET whose body is read as it comes (got buffers); an error answer is thrown. */
  private async openStream(path: string): Promise<http.IncomingMessage> {
    const response = await new Promise<http.IncomingMessage>((resolve, reject) => {
      const req = http.request({ socketPath: this.socket, path, headers: { Host: 'devapollo' } });
      req.once('response', resolve);
      req.once('error', (error) => reject(connectionError(this.socket, error)));
      req.end();
    });
    if ((response.statusCode ?? 0) >= 400) {
      const chunks: Buffer[] = [];
      for await (const chunk of response as AsyncIterable<Buffer>) chunks.push(chunk);
      throw errorFromResponse(response.statusCode ?? 0, Buffer.concat(chunks).toString('utf8'));
    }
    return response;
  }

  private async got(): Promise<Got> {
    if (this.client === undefined) {
      const { default: got } = await import('got');
      this.client = got.extend({
        prefixUrl: `http://unix:${this.socket}:`,
        enableUnixSockets: true,
        throwHttpErrors: false,
        retry: { limit: 0 },
        headers: { 'user-agent': 'devapollo' },
        ...(this.timeoutMs === undefined ? {} : { timeout: { request: this.timeoutMs } }),
      });
    }
    return this.client;
  }
}

function connectionError(socket: string, error: unknown): ApolloError {
  const code = (error as { code?: string }).code;
  if (code === 'ENOENT' || code === 'ECONNREFUSED') {
    return new ApolloError('no-daemon', `no devapollo daemon answers on ${socket}: start it with "devapollo serve"`, {
      cause: error,
    });
  }
  if (code === 'ETIMEDOUT') {
    return new ApolloError('no-daemon', `the daemon did not answer on ${socket} in time`, { cause: error });
  }
  if (code === 'EACCES') {
    return new ApolloError('forbidden', `permission denied on ${socket}: the admin API is for root`, { cause: error });
  }
  return new ApolloError('no-daemon', `cannot talk to the daemon on ${socket}: ${(error as Error).message}`, {
    cause: error,
  });
}
