/**
 * The host CLI's client for the admin API on DIR/unix.socket (and the hooks'), on the
 * Unix-socket HTTP both CLIs share (src/shared/unix-http.ts). Errors come back as
 * ApolloErrors rebuilt from the daemon's answer, so the CLI exits with the code that
 * matches it.
 */
import type http from 'node:http';
import { pipeline } from 'node:stream/promises';
import { ApolloError, errorFromResponse } from '../../shared/errors.js';
import { readLines } from '../../shared/lines.js';
import { exchange, openStream } from '../../shared/unix-http.js';
import type { ContainerWire, StatusWire } from '../../shared/wire.js';
import { daemonPaths, defaultDir } from '../paths.js';

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** The admin API, as the host CLI and the hooks call it. */
export class AdminClient {
  readonly socket: string;

  /** `timeoutMs` bounds each request whole (hooks must not hang a container's start); none by default. */
  constructor(
    private readonly dir: string,
    private readonly timeoutMs?: number,
  ) {
    this.socket = daemonPaths(dir).adminSocket;
  }

  async request(method: Method, path: string, body?: unknown): Promise<{ status: number; body: Buffer }> {
    const json = body === undefined ? undefined : JSON.stringify(body);
    let response: Awaited<ReturnType<typeof exchange>>;
    try {
      response = await exchange({
        socketPath: this.socket,
        method,
        path,
        headers: {
          Host: 'devapollo',
          'User-Agent': 'devapollo',
          ...(json === undefined ? {} : { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(json) }),
        },
        body: json,
        timeoutMs: this.timeoutMs,
      });
    } catch (error) {
      throw connectionError(this.dir, this.socket, error);
    }
    if (response.status >= 400) throw errorFromResponse(response.status, response.body.toString('utf8'));
    return { status: response.status, body: response.body };
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

  /**
   * Opens a stream of one JSON object per line and calls `onLine` for each. Resolves once
   * the stream is open; `ended` settles when the daemon ends it, or rejects (no-daemon)
   * when it breaks; `close` ends it from this side.
   */
  async openStream(path: string, onLine: (line: string) => void): Promise<{ ended: Promise<void>; close: () => void }> {
    const { res, req } = await this.openGet(path);
    let closed = false;
    const ended = (async () => {
      try {
        // Empty lines are heartbeats.
        for await (const line of readLines(res)) if (line.trim() !== '') onLine(line);
      } catch (error) {
        if (closed) return;
        req.destroy();
        throw connectionError(this.dir, this.socket, error);
      }
    })();
    return {
      ended,
      close: () => {
        closed = true;
        req.destroy();
      },
    };
  }

  /**
   * Copies an answer's body byte for byte to `out` until the daemon ends it (or the
   * process is interrupted); an error answer is thrown as usual.
   */
  async copyTo(path: string, out: NodeJS.WritableStream): Promise<void> {
    const { res } = await this.openGet(path);
    await pipeline(res, out, { end: false });
  }

  /** A GET whose body is read as it comes; an error answer is thrown as the ApolloError it means. */
  private async openGet(path: string): Promise<{ res: http.IncomingMessage; req: http.ClientRequest }> {
    try {
      return await openStream({
        socketPath: this.socket,
        method: 'GET',
        path,
        headers: { Host: 'devapollo', 'User-Agent': 'devapollo' },
        timeoutMs: this.timeoutMs,
      });
    } catch (error) {
      throw error instanceof ApolloError ? error : connectionError(this.dir, this.socket, error);
    }
  }
}

/** A failure to reach the daemon on `socket` (in `dir`) as the error it means, with what to do about it. */
function connectionError(dir: string, socket: string, error: unknown): ApolloError {
  const code = (error as { code?: string }).code;
  if (code === 'ENOENT' || code === 'ECONNREFUSED') {
    return new ApolloError('no-daemon', `no devapollo daemon answers on ${socket}: start it with "${serveCommand(dir)}"`, {
      cause: error,
    });
  }
  if (code === 'ENOTDIR') {
    return new ApolloError('no-daemon', `no devapollo daemon answers on ${socket}: ${dir} is not a directory (see --dir)`, {
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

/** The command that starts a daemon on `dir`: the user's --dir (or APOLLO_DIR) kept, quoted for a shell where it must be. */
export function serveCommand(dir: string): string {
  if (dir === defaultDir) return 'devapollo serve';
  const quoted = /^[\w@%+=:,./-]+$/.test(dir) ? dir : `'${dir.replace(/'/g, `'\\''`)}'`;
  return `devapollo serve --dir ${quoted}`;
}
