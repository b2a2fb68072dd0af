/**
 * What handlers answer with, and the one place where answers and errors are written:
 * replies (with their ETag and If-None-Match), error envelopes, and refusals made once.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { ApolloError, type ErrorCode, errorEnvelope, errorFaces } from '../../shared/errors.js';

/**
 * A finished answer. `etag` is sent as the ETag header; a 200's is compared with
 * If-None-Match, and any answer's is what a change-wait waits on.
 */
export interface Reply {
  readonly status?: number;
  readonly contentType?: string;
  readonly body: string | Buffer;
  readonly headers?: Readonly<Record<string, string>>;
  readonly etag?: string;
}

/** A handler that takes the response over (event streams, long waits). */
export interface StreamReply {
  readonly stream: (req: IncomingMessage, res: ServerResponse) => void;
}

export type HandlerResult = Reply | StreamReply;

export const jsonType = 'application/json';
export const textType = 'text/plain; charset=utf-8';

export function json(value: unknown, options: { status?: number; etag?: string } = {}): Reply {
  return reply(jsonType, JSON.stringify(value), options);
}

export function text(value: string | Buffer, options: { etag?: string } = {}): Reply {
  return reply(textType, value, options);
}

/**
 * An error that is an answer like any other, with the ETag of what it answers: the 404 of
 * an unset config key, so that a client can wait for the key to be set (PROTOCOL.md
 * section 3). Written as the error envelope; an error without an ETag is thrown instead.
 */
export function errorReply(code: ErrorCode, message: string, etag: string): Reply {
  const status = errorFaces[code].http;
  return reply(jsonType, errorEnvelope(status, message), { status, etag });
}

/**
 * Built field by field: in V8 an object spread followed by more properties
 * (`{ ...options, body }`) takes a slow path that cost about 1 µs per reply.
 */
function reply(contentType: string, body: string | Buffer, options: { status?: number; etag?: string }): Reply {
  const out: { -readonly [K in keyof Reply]: Reply[K] } = { contentType, body };
  if (options.status !== undefined) out.status = options.status;
  if (options.etag !== undefined) out.etag = options.etag;
  return out;
}

/** Writes a reply; a matching If-None-Match turns a 200 into a 304. */
export function sendReply(req: IncomingMessage, res: ServerResponse, reply: Reply): void {
  const status = reply.status ?? 200;
  const headers: Record<string, string | number> = reply.headers === undefined ? {} : { ...reply.headers };
  if (reply.etag !== undefined) {
    headers['ETag'] = reply.etag;
    if (status === 200 && ifNoneMatchHits(req.headers['if-none-match'], reply.etag)) {
      res.writeHead(304, headers);
      res.end();
      return;
    }
  }
  if (reply.contentType !== undefined) headers['Content-Type'] = reply.contentType;
  // A string body is written as a string: node:http sends it in one write together with
  // the headers, where a Buffer takes a second chunk and a writev.
  headers['Content-Length'] = typeof reply.body === 'string' ? Buffer.byteLength(reply.body, 'utf8') : reply.body.length;
  res.writeHead(status, headers);
  res.end(req.method === 'HEAD' ? undefined : reply.body);
}

function ifNoneMatchHits(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  return header.split(',').some((candidate) => {
    const tag = candidate.trim();
    return tag === '*' || tag === etag || tag === `W/${etag}`;
  });
}

/** Renders any thrown value as the JSON error envelope; unknown errors become a 500. */
export function sendError(req: IncomingMessage, res: ServerResponse, error: unknown): void {
  const apollo = error instanceof ApolloError ? error : new ApolloError('internal', 'internal error', { cause: error });
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = errorEnvelope(apollo.status, apollo.message);
  const headers: Record<string, string | number> = { ...apollo.headers };
  headers['Content-Type'] = jsonType;
  headers['Content-Length'] = Buffer.byteLength(body, 'utf8');
  res.writeHead(apollo.status, headers);
  res.end(req.method === 'HEAD' ? undefined : body);
}

/**
 * An answer made once and written many times (a refusal under a flood): its headers,
 * Content-Length included, are one object that is never copied, and its body is constant.
 */
export interface FixedReply {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | number>>;
  readonly body: string;
}

/** The error envelope of `error` as a FixedReply. */
export function fixedError(error: ApolloError): FixedReply {
  const body = errorEnvelope(error.status, error.message);
  return {
    status: error.status,
    headers: { ...error.headers, 'Content-Type': jsonType, 'Content-Length': Buffer.byteLength(body, 'utf8') },
    body,
  };
}

export function sendFixed(req: IncomingMessage, res: ServerResponse, reply: FixedReply): void {
  res.writeHead(reply.status, reply.headers);
  res.end(req.method === 'HEAD' ? undefined : reply.body);
}

/** Answers on a bare socket (no ServerResponse to write to) with the error envelope, and closes it (endAndClose). */
export function endWithError(socket: Duplex, apollo: ApolloError): void {
  endAndClose(socket, rawResponse(fixedError(apollo)));
}

/** How long a closing connection waits for its peer to read the last answer and close too. */
const lingerMs = 1000;
/** Closing connections that may wait at once; past it they close as soon as their answer is out. */
const maxLingering = 1024;
let lingering = 0;

/**
 * Writes `data` as the connection's last bytes and closes it: when the peer has closed
 * too, or after a second at most. `end` alone would close only this side (node:http's
 * sockets are half-open), so a peer that never closes its own would keep the descriptor
 * for good; closing at once could reset the connection before the peer has read the
 * answer (a Unix socket closed with unread bytes resets its peer). At most 1,024 wait at
 * once, so that a flood of them holds a bounded number of descriptors.
 */
export function endAndClose(socket: Duplex, data?: string): void {
  if (lingering >= maxLingering) {
    socket.end(data, () => socket.destroy());
    return;
  }
  lingering++;
  const timer = setTimeout(() => socket.destroy(), lingerMs).unref();
  socket.once('close', () => {
    lingering--;
    clearTimeout(timer);
  });
  socket.end(data);
}

/**
 * The bytes of a whole HTTP response that closes its connection, for answering on a bare
 * socket; made once for refusals that can come in floods (connection limits).
 */
export function rawResponse(reply: FixedReply): string {
  const headers = Object.entries(reply.headers)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('');
  const close = 'Connection' in reply.headers ? '' : 'Connection: close\r\n';
  return `HTTP/1.1 ${reply.status} ${STATUS_CODES[reply.status] ?? 'Error'}\r\n${headers}${close}\r\n${reply.body}`;
}
