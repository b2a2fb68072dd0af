// Unprivileged containers all map root to the same host uid (the shared range), so one
// container's root can read what another's root wrote in a shared host path.
// `security.idmap.isolated=true` gives a container its own range of 65,536 uids and
// gids from root's ranges in /etc/subuid and /etc/subgid, kept in its state until it is
// deleted. Checked with real containers and a real world-writable host directory.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe } from 'node:test';
import { TestDaemon } from '../helpers/daemon.js';
import { curlUnavailable, gatedTest } from '../helpers/env.js';

type Idmap = { uid_base: number; gid_base: number; count: number } | null;

const isolated = { 'security.idmap.isolated': 'true' };
const asUser = (command: string[]) => ['setpriv', '--reuid', '1000', '--regid', '1000', '--clear-groups', '--', ...command];

describe('security.idmap.isolated', () => {
  let daemon: TestDaemon;
  let shared: string;
  const test = gatedTest(curlUnavailable);

  const idmapOf = async (name: string): Promise<Idmap> =>
    (JSON.parse((await daemon.cli(['list', '--format', 'json'])).out) as { name: string; idmap: Idmap }[]).find((c) => c.name === name)
      ?.idmap ?? null;
  const recordedIdmap = (name: string): Idmap =>
    (JSON.parse(fs.readFileSync(path.join(daemon.dir, 'containers', `${name}.json`), 'utf8')) as { idmap: Idmap }).idmap;
  let writes = 0;
  /** Writes a 0600 file as the container's root (NAME, else a new name); returns its owner on the host. */
  const writeSecret = async (name: string, first = false): Promise<number> => {
    const file = path.join(shared, first ? name : `${name}.${++writes}`);
    const r = await daemon.exec(name, ['sh', '-c', `umask 077; echo "secret of ${name}" > ${file}`]);
    assert.equal(r.code, 0, r.stderr);
    return fs.statSync(file).uid;
  };
  const readSecret = (reader: string, owner: string) => daemon.exec(reader, ['cat', path.join(shared, owner)]);

  before(async () => {
    if (curlUnavailable) return;
    shared = fs.mkdtempSync(path.join(os.tmpdir(), 'devapollo-shared-'));
    fs.chmodSync(shared, 0o1777);
    daemon = await TestDaemon.start();
    for (const name of ['iso-a', 'iso-b']) await daemon.launch(name, { config: { ...isolated, 'user.k': name } });
    for (const name of ['plain-c', 'plain-d']) await daemon.launch(name, { config: { 'user.k': name } });
  });

  after(async () => {
    await daemon?.destroy();
    if (shared !== undefined) fs.rmSync(shared, { recursive: true, force: true });
  });

  test("two isolated containers cannot read each other's files; two on the shared range can", async (t) => {
    const owners = new Map<string, number>();
    for (const name of ['iso-a', 'iso-b', 'plain-c', 'plain-d']) owners.set(name, await writeSecret(name, true));
    t.diagnostic(`host owners of each root's file: ${JSON.stringify(Object.fromEntries(owners))}`);
    for (const [reader, owner] of [
      ['iso-b', 'iso-a'],
      ['iso-a', 'iso-b'],
      ['plain-c', 'iso-a'],
      ['iso-a', 'plain-c'],
    ]) {
      const r = await readSecret(reader as string, owner as string);
      assert.notEqual(r.code, 0, `${reader} read ${owner}'s file`);
      assert.match(r.stderr, /Permission denied/);
    }
    // The shared range: one container's root is the other's (what isolation is for).
    const r = await readSecret('plain-d', 'plain-c');
    assert.equal(r.out, 'secret of plain-c\n');
    assert.equal(owners.get('plain-c'), owners.get('plain-d'));
    const a = await idmapOf('iso-a');
    const b = await idmapOf('iso-b');
    assert.ok(a !== null && b !== null);
    assert.equal(owners.get('iso-a'), a.uid_base);
    assert.equal(owners.get('iso-b'), b.uid_base);
    assert.equal(await idmapOf('plain-c'), null);
    // Apart from each other and from the shared range (where plain-c's root is).
    const sharedRoot = owners.get('plain-c') as number;
    for (const m of [a, b]) {
      assert.equal(m.count, 65536);
      assert.ok(m.uid_base >= sharedRoot + 65536 || m.uid_base + m.count <= sharedRoot, JSON.stringify(m));
    }
    assert.ok(
      Math.abs(a.uid_base - b.uid_base) >= 65536 && Math.abs(a.gid_base - b.gid_base) >= 65536,
      `${JSON.stringify(a)} ${JSON.stringify(b)}`,
    );
  });

  test('each root is served (200), a non-root uid gets 401; the ranges survive a daemon restart and a container restart', async () => {
    const check = async () => {
      for (const name of ['iso-a', 'iso-b']) {
        assert.equal((await daemon.curl(name, '/1.0/config/user.k')).out, name);
        const denied = await daemon.exec(
          name,
          asUser(['curl', '-sS', '-i', '--unix-socket', '/dev/apollo/sock', 'http://apollo/1.0/config/user.k']),
        );
        assert.match(denied.out, /^HTTP\/1\.1 401 /, name);
      }
    };
    const before = { a: recordedIdmap('iso-a'), b: recordedIdmap('iso-b') };
    await check();
    await daemon.signal('SIGKILL');
    await daemon.spawn();
    assert.deepEqual({ a: await idmapOf('iso-a'), b: await idmapOf('iso-b') }, before);
    await check();
    assert.equal((await daemon.cli(['stop', 'iso-a'])).code, 0);
    assert.equal((await daemon.cli(['start', 'iso-a'])).code, 0);
    assert.deepEqual(recordedIdmap('iso-a'), before.a);
    assert.equal(await writeSecret('iso-a'), before.a?.uid_base);
    // A daemon restarted while a container is stopped still holds its range for it.
    await daemon.signal('SIGTERM');
    await daemon.spawn();
    await daemon.launch('iso-new', { config: isolated });
    const fresh = await idmapOf('iso-new');
    assert.ok(fresh !== null && fresh.uid_base !== before.a?.uid_base && fresh.uid_base !== before.b?.uid_base, JSON.stringify(fresh));
  });

  test('the key takes effect at the next start; a range, once given, is kept until delete', async () => {
    assert.equal((await daemon.cli(['config', 'set', 'plain-d', 'security.idmap.isolated=true'])).code, 0);
    const sharedOwner = await writeSecret('plain-d');
    assert.equal(await idmapOf('plain-d'), null, 'not while it runs');
    assert.equal((await daemon.cli(['stop', 'plain-d'])).code, 0);
    assert.equal((await daemon.cli(['start', 'plain-d'])).code, 0);
    const own = await idmapOf('plain-d');
    assert.ok(own !== null);
    assert.equal(await writeSecret('plain-d'), own.uid_base);
    assert.notEqual(own.uid_base, sharedOwner);
    // Switched off: the shared range again at the next start, but the range stays its own.
    assert.equal((await daemon.cli(['config', 'unset', 'plain-d', 'security.idmap.isolated'])).code, 0);
    assert.equal((await daemon.cli(['stop', 'plain-d'])).code, 0);
    assert.equal((await daemon.cli(['start', 'plain-d'])).code, 0);
    assert.equal(await writeSecret('plain-d'), sharedOwner);
    assert.deepEqual(await idmapOf('plain-d'), own);
    // Deleted: the range is free again, and the lowest free one goes to the next container.
    const b = await idmapOf('iso-b');
    assert.equal((await daemon.cli(['delete', '--force', 'iso-b'])).code, 0);
    await daemon.launch('iso-reuse', { config: isolated });
    assert.deepEqual(await idmapOf('iso-reuse'), b);
  });

  test('--privileged with isolated is a usage error, and nothing is made', async () => {
    const r = await daemon.cli(['launch', 'priv', '--privileged', '-c', 'security.idmap.isolated=true']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^Error: container priv: security\.idmap\.isolated=true needs an unprivileged container/);
    assert.equal((await daemon.cli(['config', 'show', 'priv'])).code, 3);
    await daemon.launch('priv', { privileged: true });
    const set = await daemon.cli(['config', 'set', 'priv', 'security.idmap.isolated=true']);
    assert.equal(set.code, 2, set.stderr);
    assert.match(set.stderr, /needs an unprivileged container/);
    const bad = await daemon.cli(['config', 'set', 'iso-a', 'security.idmap.isolated=yes']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /security\.idmap\.isolated must be "true" or "false"/);
  });
});
