// One request at a time per guest connection, without a daemon: requests that arrive while
// one is being answered wait, in order, and the socket is not read meanwhile; too many
// sent ahead close the connection.
import assert from 'node:assert/strict';
import type http from 'node:http';
import type { Socket } from 'node:net';
import { describe, test } from 'node:test';
import { attachPeer, newPeer } from '../../../dist/server/guest/connection.js';
import { Shares } from '../../../dist/server/guest/limits.js';
import { ReadingHolds } from '../../../dist/server/guest/reading-holds.js';
import { GuestRefusals } from '../../../dist/server/guest/refusals.js';
import { RequestQueue } from '../../../dist/server/guest/request-queue.js';
import type { RequestObserver } from '../../../dist/server/metrics.js';

const quiet = () => undefined;
const observer = { metrics: { countRefusal: quiet }, logger: { warn: quiet, info: quiet, error: quiet } } as unknown as RequestObserver;

function setUp(maxPipelined: number) {
  let destroyed = 0;
  const fake = {
    destroyed: false,
    destroy() {
      destroyed++;
      fake.destroyed = true;
    },
  };
  const socket = fake as unknown as Socket;
  const share = new Shares({ perSecond: 0, burst: 0 }, () => undefined).of(undefined);
  const peer = newPeer(socket, -1, { pid: 1, uid: 0, gid: 0 }, undefined, share, false);
  attachPeer(socket, peer);
  const started: string[] = [];
  const holds = new ReadingHolds();
  const queue = new RequestQueue((req) => started.push(String(req.url)), holds, new GuestRefusals(observer), maxPipelined);
  const request = (url: string) => ({ url, socket }) as unknown as http.IncomingMessage;
  const response = {} as http.ServerResponse;
  return { peer, queue, holds, started, request, response, destroyedCount: () => destroyed };
}

describe('RequestQueue', () => {
  test('a request behind one being answered waits, in order, with its socket not read; each answer lets the next go', () => {
    const { peer, queue, holds, started, request, response } = setUp(8);
    queue.serve(request('/a'), response);
    queue.serve(request('/b'), response);
    queue.serve(request('/c'), response);
    assert.deepEqual(started, ['/a']);
    assert.equal(holds.paused, 1);
    queue.answered(peer);
    assert.deepEqual(started, ['/a', '/b']);
    queue.answered(peer);
    assert.deepEqual(started, ['/a', '/b', '/c']);
    assert.equal(holds.paused, 1, 'read again only once the queue is empty and the last is answered');
    queue.answered(peer);
    assert.equal(holds.paused, 0);
    assert.equal(peer.queue, undefined);
    assert.equal(peer.answered, 3);
    // Free again: the next request goes at once.
    queue.serve(request('/d'), response);
    assert.deepEqual(started, ['/a', '/b', '/c', '/d']);
  });

  test('a connection that sends more than its allowance ahead is closed, and what it queued is dropped', () => {
    const { peer, queue, started, request, response, destroyedCount } = setUp(2);
    queue.serve(request('/first'), response);
    for (let i = 0; i < 2; i++) queue.serve(request(`/ahead${i}`), response);
    assert.equal(destroyedCount(), 0);
    queue.serve(request('/too-far'), response);
    assert.equal(destroyedCount(), 1);
    assert.deepEqual(peer.queue, []);
    queue.answered(peer);
    assert.deepEqual(started, ['/first']);
  });
});
