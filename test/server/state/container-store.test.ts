// ContainerStore: durable one-file-per-container state, its permissions, atomic replace,
// and the StateFileError it raises for files it will not use.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type ContainerRecord, ContainerStore, StateFileError, stateSchemaVersion } from '../../../dist/server/state/container-store.js';
import { ApolloError } from '../../../dist/shared/errors.js';

function record(name: string, overrides: Partial<ContainerRecord> = {}): ContainerRecord {
  return {
    schema: stateSchemaVersion,
    name,
    uuid: `00000000-0000-4000-8000-${name.padStart(12, '0').slice(-12)}`,
    instance_uuid: `00000000-0000-4000-9000-${name.padStart(12, '0').slice(-12)}`,
    created_at: '2024-01-02T03:04:05.000Z',
    origin: 'launch',
    privileged: false,
    command: null,
    config: {},
    revision: 1,
    key_revisions: {},
    list_revision: 0,
    state_revision: 0,
    guest_state: 'Started',
    init: null,
    idmap: null,
    ...overrides,
  };
}

describe('ContainerStore', () => {
  let root: string;
  let counter = 0;
  /** A fresh, not yet existing state directory for one test. */
  const freshDir = () => path.join(root, `state-${++counter}`, 'containers');

  before(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'devapollo-store-'));
  });

  after(() => {
    fs.rmSync(root, { recursive: true, force: true });
  });

  test('an empty store loads as no records and creates its directory 0700', async () => {
    const dir = freshDir();
    const store = new ContainerStore(dir);
    assert.deepEqual(await store.load(), []);
    assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
  });

  test('records round-trip through save and load, and remove deletes one', async () => {
    const dir = freshDir();
    const store = new ContainerStore(dir);
    await store.load();
    const alpha = record('alpha', {
      config: { 'user.foo': 'bar', 'cloud-init.user-data': '#cloud-config\n' },
      command: ['/bin/sh', '-c', 'sleep 1'],
      privileged: true,
      origin: 'register',
      revision: 7,
      guest_state: 'Ready',
      init: { pid: 1234, start_time: '98765', boot_id: 'b0075e1d' },
    });
    const beta = record('beta');
    await store.save(beta);
    await store.save(alpha);
    assert.deepEqual(await new ContainerStore(dir).load(), [alpha, beta]);
    assert.equal(store.fileOf('alpha'), path.join(dir, 'alpha.json'));

    await store.remove('alpha');
    assert.equal(fs.existsSync(path.join(dir, 'alpha.json')), false);
    assert.deepEqual(await new ContainerStore(dir).load(), [beta]);
    await store.remove('never-there');
  });

  test('saved files are mode 0600 and nothing else is left in the directory', async () => {
    const dir = freshDir();
    const store = new ContainerStore(dir);
    await store.load();
    await store.save(record('alpha'));
    assert.equal(fs.statSync(path.join(dir, 'alpha.json')).mode & 0o777, 0o600);
    assert.deepEqual(fs.readdirSync(dir), ['alpha.json']);
  });

  test('save replaces the old file with the new record', async () => {
    const dir = freshDir();
    const store = new ContainerStore(dir);
    await store.load();
    await store.save(record('alpha', { revision: 1, config: { 'user.a': '1' } }));
    const inodeBefore = fs.statSync(path.join(dir, 'alpha.json')).ino;
    const updated = record('alpha', { revision: 2, config: { 'user.a': '2' } });
    await store.save(updated);
    const file = path.join(dir, 'alpha.json');
    assert.deepEqual(JSON.parse(fs.readFileSync(file, 'utf8')), updated);
    // Written to a new file and renamed over the old one, never rewritten in place.
    assert.notEqual(fs.statSync(file).ino, inodeBefore);
    assert.deepEqual(fs.readdirSync(dir), ['alpha.json']);
    assert.deepEqual(await store.load(), [updated]);
  });

  test('a corrupt JSON file stops load with its path and is left untouched', async () => {
    const dir = freshDir();
    const store = new ContainerStore(dir);
    await store.load();
    const file = path.join(dir, 'alpha.json');
    const bytes = Buffer.from('{"schema": 1, "name": "alp');
    fs.writeFileSync(file, bytes, { mode: 0o600 });
    await assert.rejects(store.load(), (error: unknown) => {
      assert.ok(error instanceof StateFileError);
      assert.equal(error.file, file);
      assert.ok(error.message.includes(file), error.message);
      assert.match(error.message, /not valid JSON/);
      return true;
    });
    assert.deepEqual(fs.readFileSync(file), bytes);
  });

  test('a file with a newer schema is refused', async () => {
    const dir = freshDir();
    const store = new ContainerStore(dir);
    await store.load();
    const file = path.join(dir, 'alpha.json');
    const newer = stateSchemaVersion + 1;
    const text = JSON.stringify({ ...record('alpha'), schema: newer });
    fs.writeFileSync(file, text);
    await assert.rejects(store.load(), (error: unknown) => {
      assert.ok(error instanceof StateFileError);
      assert.ok(error.message.includes(file), error.message);
      assert.match(error.message, new RegExp(`schema ${newer}, newer than this devapollo \\(${stateSchemaVersion}\\)`));
      return true;
    });
    assert.equal(fs.readFileSync(file, 'utf8'), text);
  });

  test('schema 1 files (before create) load as they are; only schema 2 knows the origin "create"', async () => {
    const dir = freshDir();
    const store = new ContainerStore(dir);
    await store.load();
    const old = record('alpha', { schema: 1, origin: 'register', config: { 'user.a': 'b' } });
    fs.writeFileSync(path.join(dir, 'alpha.json'), JSON.stringify(old));
    const created = record('beta', { schema: 2, origin: 'create' });
    fs.writeFileSync(path.join(dir, 'beta.json'), JSON.stringify(created));
    assert.deepEqual(await store.load(), [{ ...old, schema: 2 }, created]);
    fs.writeFileSync(path.join(dir, 'beta.json'), JSON.stringify({ ...created, schema: 1 }));
    await assert.rejects(store.load(), /beta\.json is invalid: origin/);
  });

  test('a schema 1 file (before idmap) loads with no id range of its own, and is saved as the current schema', async () => {
    const dir = freshDir();
    const store = new ContainerStore(dir);
    await store.load();
    const { idmap: _, ...old } = record('alpha', { schema: 1, config: { 'user.a': '1' } });
    fs.writeFileSync(path.join(dir, 'alpha.json'), JSON.stringify(old));
    const [loaded] = await store.load();
    assert.deepEqual(loaded, { ...old, schema: stateSchemaVersion, idmap: null });
    await store.save(loaded as ContainerRecord);
    const saved = JSON.parse(fs.readFileSync(path.join(dir, 'alpha.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(saved['schema'], stateSchemaVersion);
    assert.equal(saved['idmap'], null);
  });

  test('a file from before instance_uuid loads with its uuid as the instance, the same at every load, and is saved with it', async () => {
    const dir = freshDir();
    const store = new ContainerStore(dir);
    await store.load();
    const { instance_uuid: _, ...old } = record('alpha', { config: { 'user.a': '1' } });
    fs.writeFileSync(path.join(dir, 'alpha.json'), JSON.stringify(old));
    const [loaded] = await store.load();
    assert.deepEqual(loaded, { ...old, instance_uuid: old.uuid });
    assert.deepEqual(await new ContainerStore(dir).load(), [loaded]);
    await store.save(loaded as ContainerRecord);
    const saved = JSON.parse(fs.readFileSync(path.join(dir, 'alpha.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(saved['instance_uuid'], old.uuid);
    fs.writeFileSync(path.join(dir, 'alpha.json'), JSON.stringify({ ...old, instance_uuid: 7 }));
    await assert.rejects(store.load(), /alpha\.json is invalid: instance_uuid/);
  });

  test('an id range round-trips', async () => {
    const dir = freshDir();
    const store = new ContainerStore(dir);
    await store.load();
    const alpha = record('alpha', { idmap: { uid_base: 1065536, gid_base: 1065536, count: 65536 } });
    await store.save(alpha);
    assert.deepEqual(await new ContainerStore(dir).load(), [alpha]);
  });

  test('a file whose name does not match its record is refused', async () => {
    const dir = freshDir();
    const store = new ContainerStore(dir);
    await store.load();
    const file = path.join(dir, 'beta.json');
    fs.writeFileSync(file, JSON.stringify(record('alpha')));
    await assert.rejects(store.load(), (error: unknown) => {
      assert.ok(error instanceof StateFileError);
      assert.ok(error.message.includes(file), error.message);
      assert.match(error.message, /"alpha"/);
      return true;
    });
  });

  test('records with invalid fields are refused', async () => {
    const invalid: unknown[] = [
      [],
      { ...record('alpha'), schema: '1' },
      { ...record('alpha'), origin: 'cloned' },
      { ...record('alpha'), privileged: 'no' },
      { ...record('alpha'), command: [1] },
      { ...record('alpha'), config: { 'user.a': 1 } },
      { ...record('alpha'), config: { '.bad': 'x' } },
      { ...record('alpha'), revision: 1.5 },
      { ...record('alpha'), list_revision: -1 },
      { ...record('alpha'), key_revisions: { 'user.a': 'x' } },
      { ...record('alpha'), idmap: { uid_base: 1065536, gid_base: 'x', count: 65536 } },
      { ...record('alpha'), idmap: [] },
      { ...record('alpha'), key_revisions: [] },
      { ...record('alpha'), guest_state: 'Stopped' },
      { ...record('alpha'), init: { pid: '1' } },
      { ...record('alpha'), init: { pid: 1, start_time: '1', boot_id: 'b', runtime_id: 7 } },
    ];
    for (const value of invalid) {
      const dir = freshDir();
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, 'alpha.json'), JSON.stringify(value));
      await assert.rejects(new ContainerStore(dir).load(), StateFileError, JSON.stringify(value));
    }
  });

  test('load removes leftover temporary files and ignores other names', async () => {
    const dir = freshDir();
    const store = new ContainerStore(dir);
    await store.load();
    await store.save(record('alpha'));
    fs.writeFileSync(path.join(dir, '.tmp-alpha-0123456789ab'), '{"torn":');
    fs.writeFileSync(path.join(dir, '.tmp-beta-ba9876543210'), '');
    fs.writeFileSync(path.join(dir, 'README'), 'not a record');
    assert.deepEqual(await store.load(), [record('alpha')]);
    assert.deepEqual(fs.readdirSync(dir).sort(), ['README', 'alpha.json']);
  });

  test('save into a directory that no longer exists throws an ApolloError and leaves nothing', async () => {
    const dir = freshDir();
    const store = new ContainerStore(dir);
    await store.load();
    fs.rmSync(dir, { recursive: true });
    const parent = path.dirname(dir);
    await assert.rejects(store.save(record('alpha')), (error: unknown) => {
      assert.ok(error instanceof ApolloError);
      assert.equal(error.code, 'internal');
      assert.ok(error.message.includes(path.join(dir, 'alpha.json')), error.message);
      return true;
    });
    assert.equal(fs.existsSync(dir), false);
    assert.deepEqual(fs.readdirSync(parent), []);
  });
});
