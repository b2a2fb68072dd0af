/**
 * Websockets on /1.0/events. Node hands every request with an Upgrade header to the
 * server's 'upgrade' listener, and from then on the socket is the listener's alone: Node
 * has taken its own 'error' listener off, so this one puts one on first (a peer that has
 * gone would otherwise make the next write throw in the daemon). A GET that is not a
 * websocket for the event stream is answered as usual, through the same request queue,
 * and its connection then closes; a request of another method is refused (400), as its
 * body, already past Node's parser, could not be read; so is CONNECT (section 3c).
 */
import http from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { ApolloError } from '../../shared/errors.js';
import { type EventHub, parseEventTypes } from '../events/hub.js';
import { connectRefused, destroyOnError } from '../http/client-errors.js';
import { endAndClose, endWithError, rawResponse } from '../http/reply.js';
import { splitTarget } from '../http/router.js';
import type { Admission } from './admission.js';
import type { GuestAuthorizer } from './authorization.js';
import { peerOf } from './connection.js';
import type { GuestConnections } from './connections.js';
import type { GuestRefusals } from './refusals.js';
import type { RequestQueue } from './request-queue.js';

/** The server's 'upgrade' listener. */
export function upgradeListener(parts: {
  readonly admission: Admission;
  readonly authorizer: GuestAuthorizer;
  readonly connections: GuestConnections;
  readonly queue: RequestQueue;
  readonly refusals: GuestRefusals;
  readonly events: EventHub;
}): (req: http.IncomingMessage, socket: Duplex, head: Buffer) => void {
  const { admission, authorizer, connections, queue, refusals, events } = parts;
  return (req, socket, head) => {
    socket.on('error', destroyOnError);
    const upgraded = peerOf(socket as Socket);
    // An upgrade behind a request still being answered would write over its answer.
    if (upgraded !== undefined && (upgraded.busy > 0 || upgraded.queue !== undefined)) {
      refusals.refuse(upgraded, 'pipelined requests');
      socket.destroy();
      return;
    }
    const isWebsocket = req.headers.upgrade?.toLowerCase() === 'websocket';
    let target: ReturnType<typeof splitTarget> | undefined;
    try {
      target = splitTarget(req.url ?? '');
    } catch {
      // Answered as a normal request below, which rejects it.
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      refuseUpgrade(socket, req.method ?? '', admission, authorizer);
      return;
    }
    if (!isWebsocket || target?.path !== '/1.0/events' || req.method !== 'GET') {
      // node:http reads this socket no more: read (and drop) whatever else comes, so that
      // its peer's close is seen, and a stream or a change-wait answered on it ends with it.
      socket.on('data', noop);
      socket.once('end', () => socket.destroy());
      const res = new http.ServerResponse(req);
      res.assignSocket(socket as Socket);
      res.shouldKeepAlive = false;
      res.once('finish', () => endAndClose(socket));
      queue.serve(req, res);
      return;
    }
    // A websocket is an event stream for its whole life: never idle.
    if (upgraded !== undefined) connections.served.delete(upgraded);
    try {
      const refused = admission.admit(socket as Socket);
      if (refused !== undefined) {
        endAndClose(socket, rawResponse(refused));
        return;
      }
      const session = authorizer.contextOf(socket as Socket);
      const types = parseEventTypes(target.query.get('type'));
      const bad = handshakeProblem(req);
      if (bad !== undefined) throw bad;
      events.guestWebsocket(session, types, req, socket, head);
    } catch (error) {
      endWithError(socket, error instanceof ApolloError ? error : new ApolloError('internal', 'internal error'));
    }
  };
}

function noop(): void {}

/** A websocket key: 16 bytes in base64 (RFC 6455 section 4.1). */
const websocketKey = /^[+/0-9A-Za-z]{22}==$/;
/** A list of subprotocol names: tokens, comma-separated (RFC 6455 section 4.1, RFC 7230 tokens). */
const protocolList = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+(?:[ \t]*,[ \t]*[!#$%&'*+\-.^_`|~0-9A-Za-z]+)*$/;

/**
 * What `ws` would refuse in a handshake, refused here first with the JSON envelope
 * (PROTOCOL.md section 3c), where `ws` answers in HTML: the key, the version (13, or 8,
 * which `ws` speaks too), the subprotocol list.
 */
function handshakeProblem(req: http.IncomingMessage): ApolloError | undefined {
  const key = req.headers['sec-websocket-key'];
  if (key === undefined || !websocketKey.test(key)) {
    return new ApolloError('bad-request', 'bad websocket handshake: Sec-WebSocket-Key must be 16 bytes in base64');
  }
  const version = req.headers['sec-websocket-version'];
  if (version !== '13' && version !== '8') {
    return new ApolloError('bad-request', 'bad websocket handshake: Sec-WebSocket-Version must be 13', {
      headers: { 'Sec-WebSocket-Version': '13, 8' },
    });
  }
  const protocols = req.headers['sec-websocket-protocol'];
  if (protocols !== undefined) {
    const names = protocols.split(',').map((name) => name.trim());
    if (!protocolList.test(protocols.trim()) || new Set(names).size !== names.length) {
      return new ApolloError('bad-request', 'bad websocket handshake: Sec-WebSocket-Protocol must be a list of distinct names');
    }
  }
  return undefined;
}

/**
 * An Upgrade on a request with a body, or a CONNECT: what any request gets first (the
 * limits, then 403 or 401 for a caller that may not ask), else 400, and the connection closes.
 */
function refuseUpgrade(socket: Duplex, method: string, admission: Admission, authorizer: GuestAuthorizer): void {
  try {
    const refused = admission.admit(socket as Socket);
    if (refused !== undefined) {
      endAndClose(socket, rawResponse(refused));
      return;
    }
    authorizer.contextOf(socket as Socket);
    endWithError(
      socket,
      method === 'CONNECT'
        ? connectRefused()
        : new ApolloError('bad-request', `an Upgrade is only for a websocket on GET /1.0/events, not on ${method}`),
    );
  } catch (error) {
    endWithError(socket, error instanceof ApolloError ? error : new ApolloError('internal', 'internal error'));
  }
}

/** The server's 'connect' listener (CONNECT requests): refused as an upgrade of another method is. */
export function connectListener(parts: {
  readonly admission: Admission;
  readonly authorizer: GuestAuthorizer;
}): (req: http.IncomingMessage, socket: Duplex) => void {
  return (req, socket) => {
    socket.on('error', destroyOnError);
    refuseUpgrade(socket, req.method ?? 'CONNECT', parts.admission, parts.authorizer);
  };
}
