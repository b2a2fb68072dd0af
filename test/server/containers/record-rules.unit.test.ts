// The record rules as plain functions: no daemon, no root, no namespace. What a new
// record holds, which config values pass, how revisions (and so ETags) move, and when
// cloud-init's instance-id rotates.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { instanceIdKey } from '../../../dist/server/containers/instance-id.js';
import {
  configDifferences,
  etagOf,
  keyRevision,
  metaDataRevision,
  newRecord,
  validatedConfig,
  withConfig,
  withGuestState,
} from '../../../dist/server/containers/record-rules.js';

const fresh = () => newRecord('c1', 'create', false, null);

describe('record rules', () => {
  test('a new record has no config, nothing running and every revision at 0', () => {
    const record = fresh();
    assert.deepEqual(Object.keys(record.config), []);
    assert.equal(record.revision, 0);
    assert.equal(record.list_revision, 0);
    assert.equal(record.state_revision, 0);
    assert.equal(record.init, null);
    assert.equal(record.idmap, null);
    assert.equal(record.guest_state, 'Started');
    assert.notEqual(newRecord('c1', 'create', false, null).uuid, record.uuid);
  });

  test('config validation: "" unsets, booleans are booleans, sizes are bounded, keys are checked', () => {
    assert.deepEqual({ ...validatedConfig({ 'user.a': '', 'user.b': 'x' }, 10) }, { 'user.a': null, 'user.b': 'x' });
    assert.throws(() => validatedConfig({ 'security.devapollo': 'yes' }, 10), /must be "true" or "false", not "yes"/);
    assert.throws(() => validatedConfig({ 'user.a': 'x'.repeat(11) }, 10), { code: 'payload-too-large' });
    assert.throws(() => validatedConfig({ 'not a key': 'x' }, 10), { code: 'bad-request' });
    assert.throws(() => validatedConfig({ [instanceIdKey]: 'has space' }, 100), /invalid volatile\.cloud-init\.instance-id/);
  });

  test('a change bumps the revision of each changed key only, and the list revision when a readable key comes or goes', () => {
    const a = withConfig(fresh(), { 'user.a': '1', 'user.b': '2' }, 'creation');
    assert.ok(a);
    assert.equal(a.revision, 1);
    assert.equal(keyRevision(a, 'user.a'), 1);
    assert.equal(a.list_revision, 1);
    const b = withConfig(a, { 'user.a': '3' }, 'change');
    assert.ok(b);
    assert.equal(keyRevision(b, 'user.a'), 2);
    assert.equal(keyRevision(b, 'user.b'), 1, 'an untouched key keeps its revision');
    assert.equal(b.list_revision, 1, 'a value change is no list change');
    const c = withConfig(b, { 'user.b': null }, 'change');
    assert.ok(c);
    assert.equal(c.list_revision, 3);
    assert.equal(keyRevision(c, 'user.b'), 3, 'an unset key keeps the revision it was unset at');
    assert.equal(withConfig(c, { 'user.a': '3' }, 'change'), undefined, 'the same value is no change');
    // A host-only key changes no guest list.
    const d = withConfig(c, { 'security.devapollo.users': 'true' }, 'change');
    assert.equal(d?.list_revision, 3);
  });

  test('ETags come from revisions: A->B->A gets a new one, and two containers of one name differ', () => {
    const one = withConfig(fresh(), { 'user.a': 'A' }, 'creation');
    assert.ok(one);
    const two = withConfig(withConfig(one, { 'user.a': 'B' }, 'change') ?? one, { 'user.a': 'A' }, 'change');
    assert.ok(two);
    assert.notEqual(etagOf(two, keyRevision(two, 'user.a')), etagOf(one, keyRevision(one, 'user.a')));
    assert.notEqual(etagOf(fresh(), 0), etagOf(fresh(), 0));
    assert.match(etagOf(one, 7), /^"[0-9a-f]{8}-7"$/);
  });

  test('a change to cloud-init data rotates the instance-id; the values a container is created with do not', () => {
    const created = withConfig(fresh(), { 'cloud-init.user-data': '#cloud-config\n' }, 'creation');
    assert.ok(created);
    assert.equal(created.config[instanceIdKey], undefined);
    const changed = withConfig(created, { 'cloud-init.user-data': '#cloud-config\nruncmd: []\n' }, 'change');
    assert.ok(changed);
    const rotated = changed.config[instanceIdKey];
    assert.match(rotated ?? '', /^[0-9a-f-]{36}$/);
    assert.ok(metaDataRevision(changed) > metaDataRevision(created), "meta-data's ETag moves with the instance-id");
    const handSet = withConfig(changed, { 'cloud-init.user-data': 'x', [instanceIdKey]: 'i-0abc' }, 'change');
    assert.equal(handSet?.config[instanceIdKey], 'i-0abc', "the host's hand wins");
    assert.equal(withConfig(changed, { 'user.other': 'x' }, 'change')?.config[instanceIdKey], rotated);
  });

  test("the guest's state moves /1.0's revision only when it changes", () => {
    const record = fresh();
    assert.equal(withGuestState(record, 'Started'), record);
    const ready = withGuestState(record, 'Ready');
    assert.equal(ready.state_revision, 1);
    assert.equal(ready.revision, 1);
  });

  test('config differences name each key that differs, "" for absent', () => {
    assert.deepEqual(configDifferences({ a: '1', b: '2' }, { b: '3', c: '4' }), [
      { key: 'a', oldValue: '1', value: '' },
      { key: 'b', oldValue: '2', value: '3' },
      { key: 'c', oldValue: '', value: '4' },
    ]);
  });
});
