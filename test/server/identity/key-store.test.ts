// The identity key store on a real directory: first key, reload, rotation and retirement,
// and the key files it refuses (and never overwrites). Root-free except the ownership
// cases, which need root to chown.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { calculateJwkThumbprint } from 'jose';
import { KeyStore } from '../../../dist/server/identity/key-store.js';
import { gatedTest, rootUnavailable } from '../../helpers/env.js';

const retainMs = 3_660_000;

describe('identity key store', () => {
  let root: string;
  let counter = 0;
  const freshDir = () => path.join(root, `keys-${++counter}`, 'identity');
  const mode = (file: string) => fs.statSync(file).mode & 0o777;
  const asRoot = gatedTest(rootUnavailable);

  before(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'devapollo-keys-'));
  });
  after(() => fs.rmSync(root, { recursive: true, force: true }));

  test('the first open makes one P-256 key, 0600 in a 0700 directory, named by its RFC 7638 thumbprint', async () => {
    const dir = freshDir();
    fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
    fs.chmodSync(dir, 0o755);
    const { store, created } = await KeyStore.open(dir, { retainMs });
    assert.ok(created);
    assert.equal(store.current.kid, created.kid);
    assert.equal(mode(dir), 0o700);
    const files = fs.readdirSync(dir);
    assert.deepEqual(files, [`${created.kid}.json`]);
    assert.equal(mode(path.join(dir, files[0] as string)), 0o600);
    const jwk = store.current.publicJwk;
    assert.equal(jwk.kty, 'EC');
    assert.equal(jwk.crv, 'P-256');
    assert.equal(jwk.alg, 'ES256');
    assert.equal(jwk.use, 'sig');
    assert.equal(jwk.d, undefined, 'the public JWK has no private part');
    assert.equal(await calculateJwkThumbprint({ kty: 'EC', crv: 'P-256', x: jwk.x as string, y: jwk.y as string }), created.kid);
    // Opened again: the same key, none made.
    const again = await KeyStore.open(dir, { retainMs });
    assert.equal(again.created, undefined);
    assert.equal(again.store.current.kid, created.kid);
  });

  test('rotate: the new key signs, the old one stays published until its last token can have expired, then its file goes', async () => {
    const dir = freshDir();
    const { store } = await KeyStore.open(dir, { retainMs });
    const first = store.current;
    const { key, previous } = await store.rotate();
    assert.equal(previous.kid, first.kid);
    assert.equal(store.current.kid, key.kid);
    assert.notEqual(key.kid, first.kid);
    assert.deepEqual(
      store.published.map((k) => k.kid),
      [first.kid, key.kid],
    );
    assert.equal(store.nextRetirement()?.getTime(), key.createdAt.getTime() + retainMs);
    // Reloaded: the newest still signs, and both are published.
    const reloaded = (await KeyStore.open(dir, { retainMs })).store;
    assert.equal(reloaded.current.kid, key.kid);
    assert.equal(reloaded.published.length, 2);
    assert.deepEqual(await store.retire(new Date(key.createdAt.getTime() + retainMs - 1)), []);
    assert.equal(fs.readdirSync(dir).length, 2);
    const retired = await store.retire(new Date(key.createdAt.getTime() + retainMs));
    assert.deepEqual(
      retired.map((k) => k.kid),
      [first.kid],
    );
    assert.deepEqual(fs.readdirSync(dir), [`${key.kid}.json`]);
    assert.deepEqual(
      store.published.map((k) => k.kid),
      [key.kid],
    );
    assert.equal(store.nextRetirement(), undefined);
  });

  test('an unfinished write left by a crash is removed; other files are left alone', async () => {
    const dir = freshDir();
    const { store } = await KeyStore.open(dir, { retainMs });
    fs.writeFileSync(path.join(dir, '.tmp-abc.json-123'), 'half', { mode: 0o600 });
    fs.writeFileSync(path.join(dir, 'README'), 'notes', { mode: 0o600 });
    const again = await KeyStore.open(dir, { retainMs });
    assert.equal(again.store.current.kid, store.current.kid);
    assert.deepEqual(fs.readdirSync(dir).sort(), [`${store.current.kid}.json`, 'README'].sort());
  });

  /** A store with one key, whose file `spoil` then changes; opening must fail with `expected` and change nothing. */
  async function refused(spoil: (file: string, dir: string) => void, expected: RegExp): Promise<void> {
    const dir = freshDir();
    const { store } = await KeyStore.open(dir, { retainMs });
    const file = store.current.file;
    spoil(file, dir);
    const before = fs
      .readdirSync(dir)
      .sort()
      .map((entry) => [entry, fs.lstatSync(path.join(dir, entry)).mtimeMs, readMaybe(path.join(dir, entry))]);
    await assert.rejects(KeyStore.open(dir, { retainMs }), (error: Error) => {
      assert.match(error.message, expected);
      assert.match(error.message, /will not (overwrite|use) it/);
      return true;
    });
    const afterOpen = fs
      .readdirSync(dir)
      .sort()
      .map((entry) => [entry, fs.lstatSync(path.join(dir, entry)).mtimeMs, readMaybe(path.join(dir, entry))]);
    assert.deepEqual(afterOpen, before, 'nothing in the directory was changed, and no key was made');
  }

  function readMaybe(file: string): string {
    try {
      return fs.readFileSync(file, 'utf8');
    } catch {
      return '';
    }
  }

  test('a key file that is not JSON is refused with its name', async () => {
    await refused((file) => fs.writeFileSync(file, '{"schema":1,'), /identity key file .*\.json is not valid JSON/);
  });

  test('a key file with another key in it than its name says is refused', async () => {
    await refused((file, dir) => {
      const other = path.join(dir, 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.json');
      fs.renameSync(file, other);
    }, /is invalid: its name is not the key's thumbprint/);
  });

  test('a key file whose key is not P-256 is refused', async () => {
    await refused((file) => {
      const content = JSON.parse(fs.readFileSync(file, 'utf8')) as { private_jwk: Record<string, string> };
      content.private_jwk['crv'] = 'P-384';
      fs.writeFileSync(file, JSON.stringify(content));
    }, /is invalid: private_jwk is not a P-256 key/);
  });

  test('a key file that others may read is refused, as ssh refuses an unprotected private key', async () => {
    await refused((file) => fs.chmodSync(file, 0o644), /has mode 0644: a private key must be 0600/);
  });

  test('a symbolic link in the key directory is refused, never followed', async () => {
    await refused((file, dir) => {
      const target = path.join(path.dirname(dir), 'elsewhere.json');
      fs.renameSync(file, target);
      fs.symlinkSync(target, file);
    }, /is a symbolic link/);
  });

  asRoot('a key file owned by another user is refused', async () => {
    await refused((file) => fs.chownSync(file, 4321, 4321), /is owned by uid 4321/);
  });

  asRoot('a key directory owned by another user is refused', async () => {
    const dir = freshDir();
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    fs.chownSync(dir, 4321, 4321);
    await assert.rejects(KeyStore.open(dir, { retainMs }), /identity key directory .* is owned by uid 4321/);
    assert.deepEqual(fs.readdirSync(dir), []);
  });
});
