// Change-waits by topic: a change wakes only the waits on what it changed (and everything
// when it may end the right to ask), timeouts and aborts end a wait, and a container
// works out what changed from its record. No daemon: the index alone.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ChangeWaiters, changeTopics } from '../../../dist/server/containers/change-waiters.js';
import { Container } from '../../../dist/server/containers/container.js';
import { newRecord } from '../../../dist/server/containers/record-rules.js';
import type { ContainerRecord } from '../../../dist/server/state/container-store.js';

/** Which of the named waits have settled, and how, after the microtasks have run. */
async function settled(waits: Record<string, Promise<boolean>>): Promise<Record<string, boolean | 'pending'>> {
  const out: Record<string, boolean | 'pending'> = {};
  for (const name of Object.keys(waits)) out[name] = 'pending';
  for (const [name, wait] of Object.entries(waits)) void wait.then((changed) => (out[name] = changed));
  await new Promise((resolve) => setImmediate(resolve));
  return out;
}

describe('ChangeWaiters', () => {
  test('a wake reaches the waits on its topic only; wakeAll reaches every one', async () => {
    const waiters = new ChangeWaiters();
    const controller = new AbortController();
    const waits = {
      a1: waiters.wait('key:a', 60_000, controller.signal),
      a2: waiters.wait('key:a', 60_000),
      b: waiters.wait('key:b', 60_000),
      list: waiters.wait(changeTopics.keyList, 60_000),
    };
    assert.equal(waiters.size, 4);
    waiters.wake('key:a');
    waiters.wake('key:nobody');
    assert.deepEqual(await settled(waits), { a1: true, a2: true, b: 'pending', list: 'pending' });
    assert.equal(waiters.size, 2);
    waiters.wakeAll();
    assert.deepEqual(await settled(waits), { a1: true, a2: true, b: true, list: true });
    assert.equal(waiters.size, 0);
  });

  test('an abort or the timeout ends a wait unchanged and forgets it', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const waiters = new ChangeWaiters();
    const controller = new AbortController();
    const waits = { aborted: waiters.wait('state', 60_000, controller.signal), timed: waiters.wait('state', 1000) };
    controller.abort();
    t.mock.timers.tick(1000);
    assert.deepEqual(await settled(waits), { aborted: false, timed: false });
    assert.equal(waiters.size, 0);
    // Aborted before it starts: settles at once, never registered.
    const late = waiters.wait('state', 60_000, controller.signal);
    assert.equal(waiters.size, 0);
    assert.equal(await late, false);
  });
});

describe('Container.notifyChanged', () => {
  const record = (): ContainerRecord => newRecord('c', 'launch', false, null);
  /** A record with `keys` set at the next revision, as the manager's updates make them. */
  const withKeys = (r: ContainerRecord, keys: Record<string, string>, listChanged = false): ContainerRecord => {
    const revision = r.revision + 1;
    const key_revisions = { ...r.key_revisions };
    for (const key of Object.keys(keys)) key_revisions[key] = revision;
    return { ...r, config: { ...r.config, ...keys }, revision, key_revisions, list_revision: listChanged ? revision : r.list_revision };
  };
  const waitsOn = (container: Container) => ({
    foo: container.nextChange(changeTopics.key('user.foo'), 60_000),
    bar: container.nextChange(changeTopics.key('user.bar'), 60_000),
    list: container.nextChange(changeTopics.keyList, 60_000),
    state: container.nextChange(changeTopics.state, 60_000),
    metaData: container.nextChange(changeTopics.metaData, 60_000),
  });

  test('a key change wakes that key, and the list when keys came or went', async () => {
    const container = new Container(record());
    const waits = waitsOn(container);
    container.record = withKeys(container.record, { 'user.foo': 'x' }, true);
    container.notifyChanged();
    assert.deepEqual(await settled(waits), { foo: true, bar: 'pending', list: true, state: 'pending', metaData: 'pending' });
    container.notifyChanged();
    assert.equal(container.pendingWaits, 3, 'nothing new changed: nothing more woken');
  });

  test("the guest state wakes /1.0's waits; user.meta-data and the instance-id wake meta-data's", async () => {
    const container = new Container(record());
    const waits = waitsOn(container);
    container.record = { ...container.record, guest_state: 'Ready', revision: 1, state_revision: 1 };
    container.notifyChanged();
    assert.deepEqual(await settled(waits), { foo: 'pending', bar: 'pending', list: 'pending', state: true, metaData: 'pending' });
    const etag = container.metaDataEtag();
    container.record = withKeys(container.record, { 'volatile.cloud-init.instance-id': 'a-uuid' });
    container.notifyChanged();
    assert.deepEqual(await settled(waits), { foo: 'pending', bar: 'pending', list: 'pending', state: true, metaData: true });
    assert.notEqual(container.metaDataEtag(), etag, "meta-data's ETag follows the keys it is made from");
    assert.equal(container.pendingWaits, 3);
  });

  test('a security.* change wakes every wait: it may end the right to ask', async () => {
    const container = new Container(record());
    const waits = waitsOn(container);
    container.record = withKeys(container.record, { 'security.devapollo': 'false' });
    container.notifyChanged();
    assert.deepEqual(await settled(waits), { foo: true, bar: true, list: true, state: true, metaData: true });
    assert.equal(container.pendingWaits, 0);
  });
});
