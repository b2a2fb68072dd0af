/**
 * One request at a time per guest connection (PROTOCOL.md section 3: a request pipelined
 * behind a pending one is not read until that one is answered). node:http parses every
 * request a read brought and emits them all at once, whatever is pending; those that
 * arrive while one is being answered wait in the connection's queue, and the socket is
 * not read until the queue is empty. A GET answered at once never queues: the next one
 * finds the connection free.
 */
import type http from 'node:http';
import { type GuestPeer, peerOf } from './connection.js';
import { queued, type ReadingHolds } from './reading-holds.js';
import type { GuestRefusals } from './refusals.js';

export class RequestQueue {
  constructor(
    /** Answers one request (the pipeline); `answered` must follow once it is done. */
    private readonly listener: http.RequestListener,
    private readonly holds: ReadingHolds,
    private readonly refusals: GuestRefusals,
    /** Requests a connection may send ahead while one is being answered; more closes it. */
    private readonly maxPipelinedRequests: number,
  ) {}

  /** The server's request listener. */
  serve(req: http.IncomingMessage, res: http.ServerResponse): void {
    const peer = peerOf(req.socket);
    // node:http goes on dispatching every request it had parsed from a read, after the
    // socket was closed too: nobody to answer, and nothing to spend on them (a peer's are
    // dropped by enqueue: a closed connection has a queue). Not asked of every request: a
    // stream's `destroyed` is a getter every kind of stream shares, slow once it has seen many.
    if (peer === undefined && req.socket.destroyed) return;
    if (peer !== undefined) {
      if (peer.busy > 0 || peer.queue !== undefined) {
        this.enqueue(peer, req, res);
        return;
      }
      peer.busy++;
    }
    this.listener(req, res);
  }

  /** The request on `peer`'s connection has its answer: the next one queued may go. */
  answered(peer: GuestPeer): void {
    peer.busy--;
    peer.answered++;
    if (peer.queue !== undefined) this.drain(peer);
  }

  /** Holds a request until the connection is free; a connection that sends too many ahead is closed. */
  private enqueue(peer: GuestPeer, req: http.IncomingMessage, res: http.ServerResponse): void {
    // node:http goes on parsing what it had read after the socket was closed (or its last
    // answer given): nobody to answer.
    if (peer.closing || peer.socket.destroyed) return;
    let queue = peer.queue;
    if (queue === undefined) peer.queue = queue = [];
    if (queue.length >= 2 * this.maxPipelinedRequests) {
      this.refusals.refuse(peer, 'pipelined requests');
      queue.length = 0;
      peer.socket.destroy();
      return;
    }
    queue.push(req, res);
    this.holds.hold(peer, queued);
  }

  /** Answers queued requests in order while the connection is free. */
  private drain(peer: GuestPeer): void {
    if (peer.draining) return;
    peer.draining = true;
    try {
      let queue = peer.queue;
      while (queue !== undefined && peer.busy === 0 && !peer.closing && !peer.socket.destroyed) {
        if (queue.length === 0) {
          peer.queue = undefined;
          this.holds.unhold(peer, queued);
          return;
        }
        const req = queue.shift() as http.IncomingMessage;
        const res = queue.shift() as http.ServerResponse;
        peer.busy++;
        this.listener(req, res);
        queue = peer.queue;
      }
    } finally {
      peer.draining = false;
    }
  }
}
