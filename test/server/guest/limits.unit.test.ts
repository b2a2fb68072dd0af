// The guest socket's per-container limits, without a daemon: the token bucket on its
// injectable clock, the Retry-After of a refusal, and the block that holds a container's
// connections (on node:test's mock timers). No sleeps.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { retryAfterSeconds, Shares, Throttle, TokenBucket } from '../../../dist/server/guest/limits.js';

describe('TokenBucket', () => {
  test('a burst is granted at once, then tokens come at the rate; the answer says when the next one is there', () => {
    let now = 1000;
    const bucket = new TokenBucket({ perSecond: 10, burst: 3 }, () => now);
    assert.deepEqual([bucket.take(), bucket.take(), bucket.take()], [0, 0, 0]);
    assert.equal(bucket.take(), 100);
    now += 50;
    assert.equal(bucket.take(), 50);
    now += 50;
    assert.equal(bucket.take(), 0);
    // Idle for long: back to the burst, never more.
    now += 60_000;
    assert.deepEqual([bucket.take(), bucket.take(), bucket.take(), bucket.take() > 0], [0, 0, 0, true]);
  });

  test('a rate of 0 turns the limit off', () => {
    const bucket = new TokenBucket({ perSecond: 0, burst: 1 }, () => 0);
    for (let i = 0; i < 10_000; i++) assert.equal(bucket.take(), 0);
  });
});

describe('retryAfterSeconds', () => {
  test('whole seconds, at least one', () => {
    assert.deepEqual([0.4, 1, 999, 1000, 1001, 2500].map(retryAfterSeconds), [1, 1, 1, 1, 2, 3]);
  });
});

describe('Throttle', () => {
  test('holds items until the block ends; a block under way is not extended; forgotten items are not released', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const released: string[][] = [];
    const throttle = new Throttle<string>((held) => released.push([...held]));
    assert.equal(throttle.blocked, false);
    throttle.block(1000);
    throttle.hold('a');
    throttle.hold('b');
    throttle.hold('c');
    throttle.forget('c');
    t.mock.timers.tick(600);
    throttle.block(1000);
    assert.deepEqual(released, []);
    t.mock.timers.tick(400);
    assert.equal(throttle.blocked, false);
    assert.deepEqual(released, [['a', 'b']]);
    assert.equal(throttle.size, 0);
  });

  test('each container has its own share; peers in no container share one', () => {
    const shares = new Shares<string>({ perSecond: 1, burst: 1 }, () => undefined);
    const a = {} as never;
    const b = {} as never;
    assert.equal(shares.of(a), shares.of(a));
    assert.notEqual(shares.of(a), shares.of(b));
    assert.equal(shares.of(undefined), shares.of(undefined));
    assert.equal(shares.of(a).requests.take(), 0);
    assert.equal(shares.of(b).requests.take(), 0, "one container's tokens are not another's");
  });
});
