/**
 * Websockets on /1.0/events. Node hands every request with an Upgrade header to the
 * server's 'upgrade' listener; the ones that are not a websocket for the event stream are
 * answered as usual, through the same request queue, and their connection then closes.
 */
import http from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { ApolloError } from '../../shared/errors.js';
import { type EventHub, parseEventTypes } from '../events/hub.js';
import { endWithError, rawResponse } from '../http/reply.js';
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
    if (!isWebsocket || target?.path !== '/1.0/events' || req.method !== 'GET') {
      const res = new http.ServerResponse(req);
      res.assignSocket(socket as Socket);
      res.shouldKeepAlive = false;
      res.once('finish', () => socket.end());
      queue.serve(req, res);
      return;
    }
    // A websocket is an event stream for its whole life: never idle.
    if (upgraded !== undefined) connections.served.delete(upgraded);
    try {
      const refused = admission.admit(socket as Socket);
      if (refused !== undefined) {
        socket.end(rawResponse(refused));
        return;
      }
      const session = authorizer.contextOf(socket as Socket);
      const types = parseEventTypes(target.query.get('type'));
      events.guestWebsocket(session, types, req, socket, head);
    } catch (error) {
      endWithError(socket, error instanceof ApolloError ? error : new ApolloError('internal', 'internal error'));
    }
  };
}
