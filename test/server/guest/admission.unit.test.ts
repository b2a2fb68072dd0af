// Admission of guest requests without a daemon or a container: each container's token
// bucket on an injected clock, the 429 it answers (Retry-After, envelope, the closing kind
// for a connection that pipelines past its refusal), the block that holds a container's
// connections (node:test's mock timers) and its end. No sleeps, no timing.
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { describe, test } from 'node:test';
import { Admission } from '../../../dist/server/guest/admission.js';
import { attachPeer, type GuestPeer, newPeer } from '../../../dist/server/guest/connection.js';
import { ReadingHolds } from '../../../dist/server/guest/reading-holds.js';
import { GuestRefusals } from '../../../dist/server/guest/refusals.js';
import type { RequestObserver } from '../../../dist/server/metrics.js';
import { ApolloError } from '../../../dist/shared/errors.js';

/** What the refusals were counted as. */
function observer(reasons: string[]): RequestObserver {
  const quiet = () => undefined;
  return {
    metrics: { countRefusal: (reason: string) => reasons.push(reason) },
    logger: { warn: quiet, info: quiet, error: quiet, debug: quiet },
  } as unknown as RequestObserver;
}

/** An accepted connection of `container` (a stand-in: admission only reads its record). */
function connect(admission: Admission, container: object | undefined): { socket: Socket; peer: GuestPeer } {
  const socket = { destroyed: false } as unknown as Socket;
  const share = admission.shareOf(container as never);
  const peer = newPeer(socket, -1, { pid: 1, uid: 0, gid: 0 }, undefined, share, false);
  attachPeer(socket, peer);
  return { socket, peer };
}

describe('Admission', () => {
  test('a burst is admitted, the next request gets a 429 with Retry-After and the envelope, and tokens come back with the clock', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    let now = 0;
    const reasons: string[] = [];
    const holds = new ReadingHolds();
    const admission = new Admission({ perSecond: 2, burst: 3 }, holds, new GuestRefusals(observer(reasons)), () => now);
    const { socket, peer } = connect(admission, {});
    assert.deepEqual([admission.admit(socket), admission.admit(socket), admission.admit(socket)], [undefined, undefined, undefined]);
    const refusal = admission.admit(socket);
    assert.ok(refusal !== undefined);
    assert.equal(refusal.status, 429);
    // Half a second to the next token at 2 a second: whole seconds, at least one.
    assert.equal(refusal.headers['Retry-After'], '1');
    assert.equal(refusal.headers['Connection'], undefined);
    assert.equal(refusal.body, '{"type":"error","error":"too many requests from this container","error_code":429}');
    assert.deepEqual(reasons, ['request rate limit']);
    // The container's connections are not read until the Retry-After has passed.
    assert.equal(peer.holds !== 0, true);
    assert.equal(holds.paused, 1);
    t.mock.timers.tick(1000);
    assert.equal(peer.holds, 0);
    assert.equal(holds.paused, 0);
    assert.equal(peer.refusedInBlock, false);
    now += 500;
    assert.equal(admission.admit(socket), undefined, 'one token after half a second');
    assert.notEqual(admission.admit(socket), undefined);
  });

  test('a connection that sends on past its refusal in the same block is answered with a closing 429 and answered no more', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const admission = new Admission({ perSecond: 1, burst: 1 }, new ReadingHolds(), new GuestRefusals(observer([])), () => 0);
    const { socket, peer } = connect(admission, {});
    assert.equal(admission.admit(socket), undefined);
    const first = admission.admit(socket);
    const second = admission.admit(socket);
    assert.equal(first?.headers['Connection'], undefined);
    assert.equal(second?.headers['Connection'], 'close');
    assert.equal(second?.status, 429);
    assert.equal(peer.closing, true);
    // Made once: the same refusal object every time, whatever the flood.
    assert.equal(admission.admit(socket), second);
    t.mock.timers.tick(1000);
    assert.equal(peer.holds !== 0, true, 'a closing connection is never read again');
  });

  test("one container's flood takes nothing from another's bucket; peers in no container share one", () => {
    const admission = new Admission({ perSecond: 1, burst: 2 }, new ReadingHolds(), new GuestRefusals(observer([])), () => 0);
    const hog = connect(admission, {});
    const calm = connect(admission, {});
    for (let i = 0; i < 2; i++) admission.admit(hog.socket);
    assert.notEqual(admission.admit(hog.socket), undefined);
    assert.equal(admission.admit(calm.socket), undefined);
    assert.equal(admission.shareOf(undefined), admission.shareOf(undefined));
  });

  test('a socket without a served peer is refused with a 403', () => {
    const admission = new Admission({ perSecond: 1, burst: 1 }, new ReadingHolds(), new GuestRefusals(observer([])), () => 0);
    assert.throws(
      () => admission.admit({} as Socket),
      (error: unknown) => error instanceof ApolloError && error.status === 403,
    );
  });
});
