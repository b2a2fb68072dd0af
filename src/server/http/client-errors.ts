/**
 * Answers to what Node's HTTP parser rejects before any handler runs (bad syntax, headers
 * too large, timeouts): the same JSON envelope as every other error.
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { ApolloError } from '../../shared/errors.js';
import { endWithError } from './reply.js';

const parserErrors: Record<string, ApolloError['code']> = {
  HPE_HEADER_OVERFLOW: 'header-too-large',
  ERR_HTTP_REQUEST_TIMEOUT: 'request-timeout',
  HPE_URI_TOO_LONG: 'uri-too-long',
};

/** The server's 'clientError' listener. */
export function answerClientError(error: NodeJS.ErrnoException, socket: Socket): void {
  if (error.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const code = parserErrors[error.code ?? ''] ?? 'bad-request';
  endWithError(socket, new ApolloError(code, clientErrorMessage(code)));
}

/**
 * The admin server's 'connect' listener: a CONNECT gets the JSON envelope (400), as every
 * refused request does, instead of a closed connection. (The guest socket's checks its
 * caller first: src/server/guest/websocket.ts.)
 */
export function refuseConnect(_req: unknown, socket: Duplex): void {
  socket.on('error', destroyOnError);
  endWithError(socket, connectRefused());
}

/** What a CONNECT gets, on either socket. */
export function connectRefused(): ApolloError {
  return new ApolloError('bad-request', 'CONNECT is not supported: this socket answers HTTP requests for /1.0');
}

/**
 * The 'error' listener of a socket node:http has handed over (an upgrade, a CONNECT): it
 * has taken its own off, and a write to a peer that has gone would otherwise throw.
 */
export function destroyOnError(this: Duplex): void {
  this.destroy();
}

function clientErrorMessage(code: ApolloError['code']): string {
  switch (code) {
    case 'header-too-large':
      return 'request headers too large';
    case 'request-timeout':
      return 'request timed out';
    case 'uri-too-long':
      return 'request URI too long';
    default:
      return 'malformed HTTP request';
  }
}
