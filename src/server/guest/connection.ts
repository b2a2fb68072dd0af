/**
 * One accepted guest connection: who it belongs to (fixed at accept time) and how busy it
 * is. Kept as one property of its socket, not a map lookup per request.
 */
import type http from 'node:http';
import type { Socket } from 'node:net';
import type { Instance } from '../containers/container.js';
import type { PeerCredentials } from '../kernel/peer.js';
import type { GuestSession } from './context.js';
import type { Share } from './limits.js';

/** Who a guest connection belongs to, fixed at accept time, and how busy it is. */
export interface GuestPeer {
  readonly socket: Socket;
  /** The accepted socket's descriptor (for the hang-up check of a socket not being read). */
  readonly fd: number;
  readonly credentials: PeerCredentials;
  readonly instance: Instance | undefined;
  /** What the connection counts against, from accept until it closes. */
  readonly share: Share<GuestPeer>;
  /** Over a connection limit: answered with an error and closed, never served. */
  readonly refused: boolean;
  /** Where the connection sits in the idle sweep's list (-1: not in it). */
  slot: number;
  /** Requests being answered on the connection (0 or 1), streams and waits included. */
  busy: number;
  /**
   * Requests read while one was being answered, request and response in turn, answered
   * in order once it is done; undefined when none. Dropped when the connection closes.
   */
  queue: (http.IncomingMessage | http.ServerResponse)[] | undefined;
  /** Set while the queue is being worked through (answers met on the way do not recurse). */
  draining: boolean;
  /** Why the socket is not being read: `queued` and `throttled` bits; 0 when it is read. */
  holds: number;
  /** Refused for the rate during the container's current block. */
  refusedInBlock: boolean;
  /** Answered its last: closes once that answer is sent; nothing more is answered. */
  closing: boolean;
  /** Requests answered so far, and the count the idle sweep saw last. */
  answered: number;
  answeredAtSweep: number;
  /** Sweeps in a row that found the connection idle. */
  idleSweeps: number;
  /** What the handlers get, once the connection's first request has been authorized. */
  context: GuestSession | undefined;
}

/** A new connection's record, every field set (one shape for all of them). */
export function newPeer(
  socket: Socket,
  fd: number,
  credentials: PeerCredentials,
  instance: Instance | undefined,
  share: Share<GuestPeer>,
  refused: boolean,
): GuestPeer {
  return {
    socket,
    fd,
    credentials,
    instance,
    share,
    refused,
    slot: -1,
    busy: 0,
    queue: undefined,
    draining: false,
    holds: 0,
    refusedInBlock: false,
    closing: false,
    answered: 0,
    answeredAtSweep: 0,
    idleSweeps: 0,
    context: undefined,
  };
}

const peerKey = Symbol('devapollo.peer');
type GuestSocket = Socket & { [peerKey]?: GuestPeer };

export function attachPeer(socket: Socket, peer: GuestPeer): void {
  (socket as GuestSocket)[peerKey] = peer;
}

/** The record of a socket's connection, refused or not. */
export function recordOf(socket: Socket): GuestPeer | undefined {
  return (socket as GuestSocket)[peerKey];
}

/** The peer of a connection that may be served (refused ones have none). */
export function peerOf(socket: Socket): GuestPeer | undefined {
  const peer = (socket as GuestSocket)[peerKey];
  return peer === undefined || peer.refused ? undefined : peer;
}
