/**
 * HTTP/1.1 over a Unix socket, for both CLIs' clients (the guest's on /dev/apollo/sock,
 * the host's on DIR/unix.socket): plain node:http, which the process has loaded anyway,
 * so a command pays nothing more to start (DEVELOPERS.md, "One Unix-socket client").
 *
 * Every exchange can be bounded whole: connecting, the answer's headers and its body end
 * within `timeoutMs` (a server that dribbles a body is as good as none), and no body is
 * read past `maxBytes`. The guest needs both, because its socket may be anything (the
 * container's root can replace it); the host's admin socket is root's, and a hook bounds
 * its time so that a hung daemon cannot hang a container's start.
 */
import http from 'node:http';
import { ApolloError, errorFromResponse } from './errors.js';

/** An answer, its body read whole. */
export interface UnixResponse {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
}

/** One request on a Unix socket. */
export interface UnixRequest {
  readonly socketPath: string;
  readonly method: string;
  readonly path: string;
  /** Host is `apollo` unless given. */
  readonly headers?: http.OutgoingHttpHeaders | undefined;
  readonly body?: string | Buffer | undefined;
  /** The bound on the whole exchange; none when undefined. */
  readonly timeoutMs?: number | undefined;
  /** The largest body to read for an answer of this status (default: no limit). */
  readonly maxBytes?: ((status: number) => number) | undefined;
  /** Who reads, for the message when an answer is too large ("devapollo-guest"). */
  readonly reader?: string | undefined;
}

const MiB = 1024 * 1024;

/** 64 MiB, 64 KiB, 12 bytes. */
export function sizeText(bytes: number): string {
  if (bytes >= MiB && bytes % MiB === 0) return `${bytes / MiB} MiB`;
  if (bytes >= 1024 && bytes % 1024 === 0) return `${bytes / 1024} KiB`;
  return `${bytes} bytes`;
}

/**
 * How every request reaches the socket: a connection of its own (no agent pool to keep the
 * process alive), and no TLS server name. Without `servername`, Node's agent derives one
 * from the Host header and runs its IPv6 regular expression on it, which costs a cold
 * `devapollo-guest get` about 5 ms of its start-up.
 */
function connection(
  request: Pick<UnixRequest, 'socketPath' | 'method' | 'path' | 'headers'>,
): http.RequestOptions & { servername: string } {
  return {
    socketPath: request.socketPath,
    agent: false,
    servername: '',
    method: request.method,
    path: request.path,
    headers: { Host: 'apollo', ...request.headers },
  };
}

/** Ends the request with ETIMEDOUT after `timeoutMs` (never when undefined); the caller clears it. */
function timeOut(req: http.ClientRequest, timeoutMs: number | undefined): NodeJS.Timeout | undefined {
  if (timeoutMs === undefined) return undefined;
  return setTimeout(() => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })), timeoutMs);
}

/** Sends one request and reads its answer whole; errors of the socket reject with their errno code. */
export function exchange(request: UnixRequest): Promise<UnixResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(connection(request));
    const timer = timeOut(req, request.timeoutMs);
    const fail = (error: unknown) => {
      clearTimeout(timer);
      reject(error);
    };
    req.once('response', (res) => {
      const status = res.statusCode ?? 0;
      const limit = request.maxBytes?.(status) ?? Infinity;
      readBody(req, res, limit, request.socketPath, request.reader ?? 'devapollo').then((body) => {
        clearTimeout(timer);
        resolve({ status, headers: res.headers, body });
      }, fail);
    });
    req.on('error', fail);
    req.end(request.body);
  });
}

/**
 * Opens a request whose answer is a stream. Resolves with the answer once its headers
 * came within `timeoutMs` and its status is below 400; an error answer's body (at most
 * `maxBytes(status)`, within the same time) rejects as the ApolloError it means. A failure
 * of the socket rejects with its errno code, for the caller to name.
 */
export function openStream(request: UnixRequest): Promise<{ res: http.IncomingMessage; req: http.ClientRequest }> {
  return new Promise((resolve, reject) => {
    const req = http.request(connection(request));
    const timer = timeOut(req, request.timeoutMs);
    req.once('response', (res) => {
      const status = res.statusCode ?? 0;
      if (status < 400) {
        clearTimeout(timer);
        resolve({ res, req });
        return;
      }
      readBody(req, res, request.maxBytes?.(status) ?? Infinity, request.socketPath, request.reader ?? 'devapollo').then(
        (body) => {
          clearTimeout(timer);
          reject(errorFromResponse(status, body.toString('utf8')));
        },
        (error: unknown) => {
          clearTimeout(timer);
          reject(error);
        },
      );
    });
    req.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    req.end(request.body);
  });
}

/**
 * An answer's body, at most `limit` bytes: a larger one (declared or sent) ends the
 * exchange with an error (exit 1). Errors of the request (its timeout) reject too.
 */
function readBody(req: http.ClientRequest, res: http.IncomingMessage, limit: number, socket: string, reader: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const tooLarge = () => {
      req.destroy();
      reject(
        new ApolloError('internal', `the answer on ${socket} is larger than ${sizeText(limit)}, more than ${reader} reads: refusing it`),
      );
    };
    const declared = Number(res.headers['content-length'] ?? 0);
    if (declared > limit) {
      tooLarge();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    res.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        res.removeAllListeners('data');
        tooLarge();
        return;
      }
      chunks.push(chunk);
    });
    res.once('end', () => resolve(Buffer.concat(chunks)));
    // The request's own error (its timeout) ends the body too; the first settlement wins,
    // and later errors (an abort after a refusal) are heard, never thrown.
    res.on('error', reject);
    req.on('error', reject);
  });
}
