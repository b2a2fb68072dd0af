// A change-wait's parameters without a server (the waits themselves run on a real socket
// in pipeline.unit.test): the timeout's default, ceiling and refusals, and ETags as
// clients spell them.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { maxWaitSeconds, normalizeEtag, waitParameters } from '../../../dist/server/http/change-wait.js';
import { ApolloError } from '../../../dist/shared/errors.js';

describe('waitParameters', () => {
  test('60 s by default, the seconds asked for up to the ceiling, and the etag when given', () => {
    assert.deepEqual(waitParameters(new URLSearchParams('wait=true')), { etag: undefined, timeoutMs: 60_000 });
    assert.deepEqual(waitParameters(new URLSearchParams('etag=%22x%22&timeout=1.5')), { etag: '"x"', timeoutMs: 1500 });
    assert.deepEqual(waitParameters(new URLSearchParams('timeout=0')), { etag: undefined, timeoutMs: 0 });
    assert.equal(waitParameters(new URLSearchParams('timeout=100000')).timeoutMs, maxWaitSeconds * 1000);
  });

  test('a timeout that is not a number of seconds is a 400 that names it', () => {
    for (const raw of ['', ' ', 'abc', '-1', 'Infinity', 'NaN']) {
      assert.throws(
        () => waitParameters(new URLSearchParams({ timeout: raw })),
        (error: unknown) => error instanceof ApolloError && error.code === 'bad-request' && error.message.includes(JSON.stringify(raw)),
        raw,
      );
    }
  });
});

describe('normalizeEtag', () => {
  test('quoted, weak and bare ETags name the same revision', () => {
    assert.deepEqual(['"r1"', 'W/"r1"', 'r1'].map(normalizeEtag), ['r1', 'r1', 'r1']);
    assert.equal(normalizeEtag(undefined), undefined);
  });
});
