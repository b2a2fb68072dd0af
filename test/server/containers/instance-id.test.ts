// cloud-init's instance-id, as LXD keeps it: a new random UUID in
// volatile.cloud-init.instance-id whenever cloud-init's data changes after creation, in the
// same record; served in meta-data (with a new ETag), shown to the host, closed to the guest.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test as unitTest } from 'node:test';
import { instanceIdKey, withNewInstanceId } from '../../../dist/server/containers/instance-id.js';
import { buildMetaData } from '../../../dist/server/guest/meta-data.js';
import { ApolloError } from '../../../dist/shared/errors.js';
import { eventually, guestTool, hostCli, TestDaemon } from '../../helpers/daemon.js';
import { curlUnavailable, gatedTest } from '../../helpers/env.js';

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const dataKeys = [
  'cloud-init.user-data',
  'cloud-init.vendor-data',
  'cloud-init.network-config',
  'user.user-data',
  'user.vendor-data',
  'user.network-config',
];

describe('withNewInstanceId', () => {
  unitTest('each of cloud-init data keys set, changed or unset gives a new UUID', () => {
    for (const key of dataKeys) {
      for (const [config, changes] of [
        [{}, { [key]: 'a' }],
        [{ [key]: 'a' }, { [key]: 'b' }],
        [{ [key]: 'a' }, { [key]: null }],
      ] as const) {
        const out = withNewInstanceId(config, changes);
        assert.match(String(out[instanceIdKey]), uuid, `${key}: ${JSON.stringify(config)} + ${JSON.stringify(changes)}`);
        assert.equal(out[key], changes[key]);
      }
    }
    const one = withNewInstanceId({}, { 'user.user-data': 'a' })[instanceIdKey];
    assert.notEqual(withNewInstanceId({}, { 'user.user-data': 'a' })[instanceIdKey], one, 'a new one every time');
  });

  unitTest('the same value again, an unset of an unset key, and other keys change nothing', () => {
    const config = { 'cloud-init.user-data': 'a', 'user.foo': 'x' };
    for (const changes of [
      { 'cloud-init.user-data': 'a' },
      { 'user.vendor-data': null },
      { 'user.foo': 'y', 'user.meta-data': 'm', 'cloud-init.other': 'z' },
    ]) {
      assert.equal(withNewInstanceId(config, changes), changes, JSON.stringify(changes));
    }
  });

  unitTest('an instance-id set in the same change wins', () => {
    const changes = { 'cloud-init.user-data': 'new', [instanceIdKey]: 'by-hand' };
    assert.equal(withNewInstanceId({}, changes), changes);
    const unset = { 'cloud-init.user-data': 'new', [instanceIdKey]: null };
    assert.equal(withNewInstanceId({}, unset), unset);
  });

  unitTest('meta-data serves the instance-id; an instance-id line of user.meta-data still wins', () => {
    assert.equal(buildMetaData('web', undefined, 'abc-1'), '#cloud-config\ninstance-id: abc-1\nlocal-hostname: web\n');
    assert.equal(buildMetaData('web', 'instance-id: mine\n', 'abc-1'), '#cloud-config\ninstance-id: mine\nlocal-hostname: web\n');
    assert.equal(buildMetaData('web', undefined), '#cloud-config\ninstance-id: web\nlocal-hostname: web\n');
  });
});

describe('instance-id in a real container', () => {
  const test = gatedTest(curlUnavailable);
  let daemon: TestDaemon;
  let monitor: ChildProcess | undefined;
  let monitored = '';

  const cli = async (...args: string[]) => {
    const r = await daemon.cli(args);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    return r.out;
  };
  const instanceId = async (name: string) => {
    const r = await daemon.cli(['config', 'get', name, instanceIdKey]);
    return r.code === 3 ? undefined : r.out;
  };
  /** meta-data from inside, with its ETag. */
  const metaData = async (name: string) => {
    const r = await daemon.curl(name, '/1.0/meta-data', ['-i']);
    const [head, body] = r.out.split('\r\n\r\n');
    return {
      etag: /^etag: (.*)$/im.exec(head ?? '')?.[1]?.trim() ?? '',
      body: body ?? '',
      id: /^instance-id: (.*)$/m.exec(body ?? '')?.[1],
    };
  };
  const stateFile = (name: string) =>
    JSON.parse(fs.readFileSync(path.join(daemon.dir, 'containers', `${name}.json`), 'utf8')) as { config: Record<string, string> };

  before(async () => {
    if (curlUnavailable) return;
    daemon = await TestDaemon.start();
    await daemon.launch('web', { config: { 'cloud-init.user-data': '#cloud-config\nruncmd: [one]\n', 'user.foo': 'x' } });
    monitor = spawn(process.execPath, [hostCli, '--dir', daemon.dir, 'monitor', 'web', '--type', 'config', '--format', 'json'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    monitor.stdout?.on('data', (c: Buffer) => (monitored += c.toString('utf8')));
    await eventually(async () => {
      await cli('config', 'set', 'web', `user.ping=${Date.now()}`);
      return monitored.includes('user.ping');
    }, 'monitor connected');
  });

  after(async () => {
    monitor?.kill('SIGKILL');
    await daemon?.destroy();
  });

  test('values the container was created with keep the instance-id NAME; setting them again or other keys changes nothing', async () => {
    assert.equal((await metaData('web')).id, 'web');
    await cli('config', 'set', 'web', 'cloud-init.user-data=#cloud-config\nruncmd: [one]\n');
    await cli('config', 'set', 'web', 'user.foo=y', 'user.meta-data=region: here', 'security.devapollo.users=false');
    assert.equal(await instanceId('web'), undefined);
    assert.equal((await metaData('web')).id, 'web');
  });

  test('a change of user-data: a new UUID in the same record, served as instance-id with a new ETag; the guest cannot read it', async () => {
    const before = await metaData('web');
    await cli('config', 'set', 'web', 'cloud-init.user-data=#cloud-config\nruncmd: [two]\n');
    const id = await instanceId('web');
    assert.match(id ?? '', uuid);
    assert.equal(stateFile('web').config[instanceIdKey], id, 'durable, with the change');
    const after = await metaData('web');
    assert.equal(after.id, id);
    assert.equal(after.body, `#cloud-config\ninstance-id: ${id}\nlocal-hostname: web\nregion: here`);
    assert.notEqual(after.etag, before.etag);
    // Shown to the host: config show and list json.
    assert.equal((JSON.parse(await cli('config', 'show', 'web', '--format', 'json')) as Record<string, string>)[instanceIdKey], id);
    const listed = (JSON.parse(await cli('list', '--format', 'json')) as { name: string; config: Record<string, string> }[]).find(
      (c) => c.name === 'web',
    );
    assert.equal(listed?.config[instanceIdKey], id);
    // Closed to the guest: 403, and not listed.
    const denied = await daemon.curl('web', `/1.0/config/${instanceIdKey}`, ['-o', '/dev/null', '-w', '%{http_code}']);
    assert.equal(denied.out, '403');
    assert.doesNotMatch((await daemon.curl('web', '/1.0/config')).out, /volatile/);
    // The host's monitor saw it change; it was a config event of its own.
    await eventually(() => monitored.includes(instanceIdKey), 'the monitor shows the instance-id');
    const event = monitored
      .split('\n')
      .filter((l) => l.includes(instanceIdKey))
      .map((l) => JSON.parse(l) as { metadata: Record<string, string> })[0];
    assert.deepEqual([event?.metadata['old_value'], event?.metadata['value']], ['', id]);
  });

  test('each later change, an unset too, gives another one; a wait on meta-data wakes for it', async () => {
    const first = await metaData('web');
    const waiter = daemon.curl('web', `/1.0/meta-data?wait=true&etag=${encodeURIComponent(first.etag)}&timeout=120`);
    await cli('config', 'set', 'web', 'user.vendor-data=#cloud-config\n');
    const woke = await waiter;
    const second = await instanceId('web');
    assert.notEqual(second, first.id);
    assert.match(woke.out, new RegExp(`^instance-id: ${second}$`, 'm'));
    await cli('config', 'unset', 'web', 'user.vendor-data');
    const third = await instanceId('web');
    assert.match(third ?? '', uuid);
    assert.notEqual(third, second);
  });

  test('a guest watching events sees the user-data change but never the volatile key', async () => {
    const watcher = spawn(
      process.execPath,
      [hostCli, '--dir', daemon.dir, 'exec', 'web', '--', process.execPath, guestTool(), 'watch', '--type', 'config', '--format', 'json'],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let seen = '';
    watcher.stdout?.on('data', (c: Buffer) => (seen += c.toString('utf8')));
    try {
      await eventually(async () => {
        await cli('config', 'set', 'web', `user.ping=${Date.now()}`);
        return seen.includes('user.ping');
      }, 'the watcher is connected');
      await cli('config', 'set', 'web', 'user.network-config=version: 2');
      await cli('config', 'set', 'web', 'user.marker=done');
      await eventually(() => seen.includes('user.marker'), 'the watcher sees the marker');
      assert.match(seen, /user\.network-config/);
      assert.doesNotMatch(seen, /volatile/);
    } finally {
      watcher.kill('SIGKILL');
    }
  });

  test('the host may set it by hand (a plain id) or unset it (back to NAME), as in LXD', async () => {
    await cli('config', 'set', 'web', `${instanceIdKey}=i-0abc.by_hand:1`);
    assert.equal((await metaData('web')).id, 'i-0abc.by_hand:1');
    for (const bad of ['two words', 'line\nbreak', '-leading']) {
      const r = await daemon.cli(['config', 'set', 'web', `${instanceIdKey}=${bad}`]);
      assert.equal(r.code, 2, bad);
      assert.match(r.stderr, /^Error: invalid volatile\.cloud-init\.instance-id "/);
    }
    // A hand-set value in the same change as new user-data wins.
    await cli('config', 'set', 'web', 'user.user-data=#cloud-config\n', `${instanceIdKey}=chosen`);
    assert.equal(await instanceId('web'), 'chosen');
    await cli('config', 'unset', 'web', instanceIdKey);
    assert.equal((await metaData('web')).id, 'web');
  });

  test('create/launch with a hand-set instance-id: it is checked, and served from the first start', async () => {
    const bad = await daemon.cli(['create', 'odd', '-c', `${instanceIdKey}=a b`]);
    assert.equal(bad.code, 2);
    assert.equal((await daemon.cli(['list', '--format', 'json'])).out.includes('"odd"'), false);
    await daemon.launch('chosen', { config: { [instanceIdKey]: 'fixed-1', 'cloud-init.user-data': '#cloud-config\n' } });
    assert.equal((await metaData('chosen')).id, 'fixed-1');
  });
});

unitTest('instance-id errors are ApolloErrors with the bad-request code', async () => {
  const { assertInstanceId } = await import('../../../dist/server/containers/instance-id.js');
  assert.throws(
    () => assertInstanceId(''),
    (e: unknown) => e instanceof ApolloError && e.code === 'bad-request',
  );
  assertInstanceId('0f8e4a1c-9d1b-4c3a-8e2f-5a6b7c8d9e0f');
});
