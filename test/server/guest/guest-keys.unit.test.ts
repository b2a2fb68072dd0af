// The rules of guest.* writes without a daemon: which keys, the off switch, the write
// rate on an injected clock (each container its own bucket), and the quotas against a
// record, before and inside the update.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Container } from '../../../dist/server/containers/container.js';
import { newRecord } from '../../../dist/server/containers/manager.js';
import { defaultGuestKeyLimits, GuestKeyRules } from '../../../dist/server/guest/guest-keys.js';
import { ApolloError } from '../../../dist/shared/errors.js';
import { keyMap } from '../../../dist/shared/key-map.js';

const KiB = 1024;

function containerWith(config: Record<string, string>): Container {
  const record = newRecord('c', 'create', false, null);
  return new Container({ ...record, config: keyMap(Object.entries(config)) });
}

/** The error code (and Retry-After) a check throws, or "ok". */
function outcome(check: () => void): string {
  try {
    check();
    return 'ok';
  } catch (error) {
    if (!(error instanceof ApolloError)) throw error;
    const retry = error.headers['Retry-After'];
    return retry === undefined ? error.code : `${error.code} retry ${retry}`;
  }
}

describe('GuestKeyRules', () => {
  test('the defaults are the contract: 128 keys, 1 MiB in all, 64 KiB a value, 16 writes a second in bursts of 64', () => {
    assert.deepEqual(defaultGuestKeyLimits, {
      maxKeys: 128,
      maxTotalBytes: 1024 * KiB,
      maxValueBytes: 64 * KiB,
      rate: { perSecond: 16, burst: 64 },
    });
  });

  test('only guest.NAME is writable (403 otherwise, before a token is taken); a bad key name is 400', () => {
    const rules = new GuestKeyRules({ ...defaultGuestKeyLimits, rate: { perSecond: 1, burst: 1 } }, () => 0);
    const c = containerWith({});
    for (const key of ['user.x', 'security.devapollo', 'volatile.x', 'guest.', 'guestx', '__proto__', 'cloud-init.user-data']) {
      assert.equal(
        outcome(() => rules.admit(c, key, 1)),
        'forbidden',
        key,
      );
    }
    assert.equal(
      outcome(() => rules.admit(c, 'guest.a b', 1)),
      'bad-request',
    );
    assert.equal(
      outcome(() => rules.admit(c, 'guest.ok', 1)),
      'ok',
      'no refusal took the one token',
    );
    assert.equal(
      outcome(() => rules.admit(c, 'guest.ok', 1)),
      'too-many-requests retry 1',
    );
  });

  test('security.devapollo.guest-writes=false: 403 before the body and inside the update', () => {
    const rules = new GuestKeyRules(defaultGuestKeyLimits, () => 0);
    const off = containerWith({ 'security.devapollo.guest-writes': 'false' });
    assert.equal(
      outcome(() => rules.admit(off, 'guest.a', 1)),
      'forbidden',
    );
    assert.equal(
      outcome(() => rules.assertFits(off.record, { key: 'guest.a', bytes: null })),
      'forbidden',
    );
    const on = containerWith({ 'security.devapollo.guest-writes': 'true' });
    assert.equal(
      outcome(() => rules.admit(on, 'guest.a', 1)),
      'ok',
    );
  });

  test('the write rate: a burst, then 429 with Retry-After until a token comes; each container has its own', () => {
    let now = 0;
    const rules = new GuestKeyRules({ ...defaultGuestKeyLimits, rate: { perSecond: 0.5, burst: 2 } }, () => now);
    const a = containerWith({});
    const b = containerWith({});
    assert.deepEqual([outcome(() => rules.admit(a, 'guest.x', 1)), outcome(() => rules.admit(a, 'guest.x', 1))], ['ok', 'ok']);
    assert.equal(
      outcome(() => rules.admit(a, 'guest.x', 1)),
      'too-many-requests retry 2',
    );
    assert.equal(
      outcome(() => rules.admit(b, 'guest.x', 1)),
      'ok',
      "a neighbour's writes are not counted against b",
    );
    now += 2000;
    assert.equal(
      outcome(() => rules.admit(a, 'guest.x', 1)),
      'ok',
    );
    const unlimited = new GuestKeyRules({ ...defaultGuestKeyLimits, rate: { perSecond: 0, burst: 1 } }, () => 0);
    for (let i = 0; i < 1000; i++)
      assert.equal(
        outcome(() => unlimited.admit(a, 'guest.x', 1)),
        'ok',
      );
  });

  test('quotas: a value over 64 KiB, a 129th key, more than 1 MiB in all are 413; replacing and unsetting fit', () => {
    const rules = new GuestKeyRules({ ...defaultGuestKeyLimits, rate: { perSecond: 0, burst: 1 } });
    const full = containerWith(Object.fromEntries(Array.from({ length: 128 }, (_, i) => [`guest.k${i}`, 'v'])));
    assert.equal(
      outcome(() => rules.assertFits(full.record, { key: 'guest.new', bytes: 1 })),
      'payload-too-large',
    );
    assert.equal(
      outcome(() => rules.assertFits(full.record, { key: 'guest.k7', bytes: 10 })),
      'ok',
    );
    assert.equal(
      outcome(() => rules.assertFits(full.record, { key: 'guest.new', bytes: null })),
      'ok',
    );
    // Other keys do not count.
    const others = containerWith({ 'user.big': 'x'.repeat(900 * KiB), 'guest.a': 'x'.repeat(64 * KiB) });
    assert.equal(
      outcome(() => rules.assertFits(others.record, { key: 'guest.b', bytes: 64 * KiB })),
      'ok',
    );
    assert.equal(
      outcome(() => rules.assertFits(others.record, { key: 'guest.b', bytes: 64 * KiB + 1 })),
      'payload-too-large',
    );
    const sixteen = containerWith(Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`guest.b${i}`, 'x'.repeat(64 * KiB)])));
    assert.equal(
      outcome(() => rules.assertFits(sixteen.record, { key: 'guest.more', bytes: 1 })),
      'payload-too-large',
    );
    assert.equal(
      outcome(() => rules.assertFits(sixteen.record, { key: 'guest.b0', bytes: 64 * KiB })),
      'ok',
    );
    // Bytes, not characters: 4-byte characters count four times.
    const roomy = new GuestKeyRules({ ...defaultGuestKeyLimits, maxValueBytes: 1024 * KiB });
    const almost = containerWith({ 'guest.a': '🚀'.repeat(16 * KiB - 1) });
    assert.equal(
      outcome(() => roomy.assertFits(almost.record, { key: 'guest.b', bytes: 960 * KiB + 4 })),
      'ok',
    );
    assert.equal(
      outcome(() => roomy.assertFits(almost.record, { key: 'guest.b', bytes: 960 * KiB + 5 })),
      'payload-too-large',
    );
    // The declared Content-Length is checked before the body: 0 is an unset.
    const c = containerWith({});
    assert.equal(
      outcome(() => rules.admit(c, 'guest.x', 64 * KiB + 1)),
      'payload-too-large',
    );
    assert.throws(
      () => rules.admit(c, 'guest.x', 1024 * 1024 * 1024),
      (error: ApolloError) => error.headers['Connection'] === 'close',
      'a body refused unread closes its connection',
    );
    assert.equal(
      outcome(() => rules.admit(full, 'guest.new', 0)),
      'ok',
    );
    assert.equal(
      outcome(() => rules.admit(full, 'guest.new', undefined)),
      'ok',
    );
  });
});
