// Keys and names spelt like the built-in properties of a JavaScript object (toString,
// constructor, __proto__, hasOwnProperty, valueOf) are keys and names like any other
// (PROTOCOL.md section 3c): unset ones are unset, set ones hold what was set, on every
// route and command that takes a key or a name, and in state files.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test as plainTest } from 'node:test';
import { configFromAnnotations, ociContainerName, parseOciState } from '../../dist/server/admin/hooks/oci-hook.js';
import { Container } from '../../dist/server/containers/container.js';
import { newRecord } from '../../dist/server/containers/record-rules.js';
import { ApolloError } from '../../dist/shared/errors.js';
import { keyMap, ownValue } from '../../dist/shared/key-map.js';
import { run, TestDaemon } from '../helpers/daemon.js';
import { curlUnavailable, gatedTest } from '../helpers/env.js';

const names = ['toString', 'constructor', '__proto__', 'hasOwnProperty', 'valueOf'] as const;
/** The names that are also valid config keys and container names (`__proto__` is neither). */
const validNames = names.filter((name) => name !== '__proto__');

describe('key maps', () => {
  plainTest('a key map answers only what was put in it', () => {
    const map = keyMap<string>([['user.a', '1']]);
    for (const name of names) assert.equal(map[name], undefined, name);
    // biome-ignore lint/suspicious/noProto: setting a key named __proto__ is what is tested
    map['__proto__'] = 'set';
    assert.equal(Object.getPrototypeOf(map), null);
    assert.deepEqual(Object.keys(map), ['user.a', '__proto__']);
    assert.equal(JSON.stringify(map), '{"user.a":"1","__proto__":"set"}');
    const parsed = JSON.parse('{"a":"1"}') as Record<string, string>;
    for (const name of names) assert.equal(ownValue(parsed, name), undefined, name);
  });

  plainTest("a container's record has key maps, however it was made", () => {
    const plain = { ...newRecord('c', 'launch', false, null), config: { toString: 'x' }, key_revisions: { toString: 3 } };
    const container = new Container(plain);
    assert.equal(Object.getPrototypeOf(container.record.config), null);
    assert.equal(Object.getPrototypeOf(container.record.key_revisions), null);
    assert.equal(container.record.config['toString'], 'x');
    assert.equal(container.record.config['constructor'], undefined);
    assert.equal(container.keyEtag('valueOf'), container.etag(0));
    assert.equal(container.keyEtag('toString'), container.etag(3));
    container.record = { ...container.record, config: { ...container.record.config } };
    assert.equal(Object.getPrototypeOf(container.record.config), null);
  });

  plainTest('OCI annotations named like object properties', () => {
    const state = parseOciState(
      JSON.stringify({
        id: 'constructor',
        pid: 1,
        annotations: { 'apollo.toString': 'a', 'apollo.constructor': 'b', 'apollo.valueOf': 'c' },
      }),
    );
    assert.equal(ociContainerName(state), 'constructor');
    assert.deepEqual({ ...configFromAnnotations(state.annotations) }, { toString: 'a', constructor: 'b', valueOf: 'c' });
    // Named toString, the annotation lookup of devapollo.name must still find nothing.
    assert.equal(ociContainerName(parseOciState(JSON.stringify({ id: 'toString', pid: 1, annotations: {} }))), 'toString');
    assert.throws(
      () => configFromAnnotations(parseOciState('{"id":"x","pid":1,"annotations":{"apollo.__proto__":"v"}}').annotations),
      (error: unknown) => error instanceof ApolloError && error.code === 'bad-request' && /apollo\.__proto__/.test(error.message),
    );
  });
});

describe('keys and names named like object properties', () => {
  let daemon: TestDaemon;
  const test = gatedTest(curlUnavailable);

  before(async () => {
    if (curlUnavailable) return;
    daemon = await TestDaemon.start();
    await daemon.launch('web', { config: { 'user.foo': 'bar' } });
  });

  after(async () => {
    await daemon?.destroy();
  });

  /** The admin API itself, with curl: status, then the body. */
  const admin = async (method: string, target: string, body?: string) => {
    const args = ['-sS', '-X', method, '--unix-socket', path.join(daemon.dir, 'unix.socket'), '-w', '\n%{http_code}'];
    if (body !== undefined) args.push('-H', 'Content-Type: application/json', '--data-binary', body);
    const r = await run('curl', [...args, `http://d${target}`], { timeoutMs: 15_000 });
    const lines = r.out.split('\n');
    return { status: Number(lines.pop()), body: lines.join('\n') };
  };

  test('host CLI: an unset key of any such name is unset (exit 3, nothing on stdout)', async () => {
    for (const name of names) {
      const r = await daemon.cli(['config', 'get', 'web', name], { timeoutMs: 15_000 });
      assert.equal(r.code, 3, `config get ${name}: ${r.stderr}`);
      assert.equal(r.out, '');
      assert.equal(r.stderr, `Error: config key ${name} is not set on web\n`);
    }
  });

  test('host CLI: set, get, show and unset keys of such names', async () => {
    // Outside user.* a key must be one the daemon knows: such names are refused, never stored.
    for (const name of validNames) {
      const refused = await daemon.cli(['config', 'set', 'web', `${name}=v-${name}`]);
      assert.equal(refused.code, 2, name);
      assert.match(refused.stderr, new RegExp(`^Error: unknown config key "${name}": use user\\.\\* for your own keys`));
    }
    const keys = validNames.map((name) => `user.${name}`);
    for (const key of keys) {
      assert.equal((await daemon.cli(['config', 'set', 'web', `${key}=v-${key}`])).code, 0, key);
    }
    for (const key of keys) assert.equal((await daemon.cli(['config', 'get', 'web', key])).out, `v-${key}`);
    const shown = JSON.parse((await daemon.cli(['config', 'show', 'web', '--format', 'json'])).out) as Record<string, string>;
    assert.deepEqual(Object.keys(shown).sort(), [...keys, 'user.foo'].sort());
    const listed = JSON.parse((await daemon.cli(['list', '--format', 'json'])).out) as { name: string; config: Record<string, string> }[];
    assert.equal(listed.find((c) => c.name === 'web')?.config['user.constructor'], 'v-user.constructor');
    assert.equal(Object.hasOwn(listed.find((c) => c.name === 'web')?.config ?? {}, 'constructor'), false);
    for (const key of keys) assert.equal((await daemon.cli(['config', 'unset', 'web', key])).code, 0, key);
    for (const key of keys) assert.equal((await daemon.cli(['config', 'get', 'web', key])).code, 3, key);
    for (const name of validNames) assert.equal((await daemon.cli(['config', 'unset', 'web', name])).code, 0, name);
    // Unsetting a key that is not set changes nothing and is no error.
    assert.equal((await daemon.cli(['config', 'unset', 'web', 'constructor'])).code, 0);
  });

  test('__proto__ is no valid key to set: refused with exit 2, never dropped silently', async () => {
    for (const args of [
      ['config', 'set', 'web', '__proto__=x'],
      ['config', 'set', 'web', '__proto__', 'x'],
      ['config', 'unset', 'web', '__proto__'],
      ['launch', 'proto', '-c', '__proto__=x'],
    ]) {
      const r = await daemon.cli(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /^Error: invalid config key "__proto__"/);
    }
    assert.equal((await daemon.cli(['list', '--format', 'json'])).out.includes('"proto"'), false);
  });

  test('admin API: reads are 404, a __proto__ member of a body is a key like any other', async () => {
    for (const name of names) {
      const r = await admin('GET', `/1.0/containers/web/config/${name}`);
      assert.equal(r.status, 404, `${name}: ${r.body}`);
      assert.equal((JSON.parse(r.body) as { error_code: number }).error_code, 404);
      assert.equal((await admin('GET', `/1.0/containers/${name}`)).status, 404, name);
    }
    assert.equal((await admin('PATCH', '/1.0/containers/web/config', '{"__proto__":"x"}')).status, 400);
    assert.equal((await admin('PATCH', '/1.0/containers/web/config', '{"__proto__":null}')).status, 400);
    const launched = await admin('POST', '/1.0/containers', '{"name":"p1","config":{"__proto__":{"user.a":"b"}}}');
    assert.equal(launched.status, 400, launched.body);
    assert.equal((await admin('PATCH', '/1.0/containers/web/config', '{"toString":"t"}')).status, 400);
    assert.equal((await admin('PATCH', '/1.0/containers/web/config', '{"user.toString":"t"}')).status, 200);
    assert.equal((await admin('GET', '/1.0/containers/web/config/user.toString')).body, 't');
    assert.equal((await admin('PATCH', '/1.0/containers/web/config', '{"user.toString":null}')).status, 200);
    assert.equal((await admin('PATCH', '/1.0/containers/web/config', '{"toString":null}')).status, 200);
  });

  test('containers named constructor and toString are ordinary containers', async () => {
    for (const name of ['constructor', 'toString', 'valueOf']) {
      await daemon.launch(name, { config: { 'user.who': name } });
      assert.equal((await daemon.exec(name, ['cat', '/proc/sys/kernel/hostname'])).out, `${name}\n`);
      assert.equal((await daemon.curl(name, '/1.0/config/user.who')).out, name);
      assert.equal((await daemon.cli(['config', 'get', name, 'user.who'])).out, name);
      assert.equal((await daemon.cli(['stop', name])).code, 0, name);
      assert.equal((await daemon.cli(['start', name])).code, 0, name);
      assert.equal((await daemon.exec(name, ['true'])).code, 0, name);
      assert.equal((await daemon.cli(['delete', name, '--force'])).code, 0, name);
      assert.equal((await daemon.cli(['config', 'get', name, 'user.who'])).code, 3, name);
    }
    assert.equal((await daemon.cli(['stop', 'hasOwnProperty'])).code, 3);
    assert.equal((await daemon.cli(['launch', '__proto__'])).code, 2);
  });

  test('guest API and guest CLI: such keys are forbidden, user.NAME is unset, waits end as usual', async () => {
    for (const name of names) {
      const forbidden = await daemon.curl('web', `/1.0/config/${name}`, ['-o', '/dev/null', '-w', '%{http_code}']);
      assert.equal(forbidden.out, '403', name);
      const unset = await daemon.curl('web', `/1.0/config/user.${name}`, ['-o', '/dev/null', '-w', '%{http_code}']);
      assert.equal(unset.out, '404', `user.${name}`);
      const waited = await daemon.curl('web', `/1.0/config/user.${name}?wait=true&timeout=0`, ['-o', '/dev/null', '-w', '%{http_code}']);
      assert.equal(waited.out, '404', `wait on user.${name}`);
      assert.equal((await daemon.guest('web', ['get', name])).code, 4, `get ${name}`);
      assert.equal((await daemon.guest('web', ['get', `user.${name}`])).code, 3, `get user.${name}`);
    }
    assert.equal((await daemon.guest('web', ['wait', 'user.valueOf', '--timeout', '0'])).code, 75);
    // --value: the same answer whether the wait begins before the change or (on a busy machine) after it.
    const waiting = daemon.guest('web', ['wait', 'user.constructor', '--value', 'built', '--timeout', '120']);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal((await daemon.cli(['config', 'set', 'web', 'user.constructor=built'])).code, 0);
    const woken = await waiting;
    assert.equal(woken.code, 0, woken.stderr);
    assert.equal(woken.out, 'built');
    assert.deepEqual(JSON.parse((await daemon.guest('web', ['config', '--format', 'json'])).out), {
      'user.constructor': 'built',
      'user.foo': 'bar',
    });
  });

  test('a state file with such keys loads, and answers only what it holds', async () => {
    const dir = fs.mkdtempSync(path.join(path.dirname(daemon.dir), 'devapollo-proto-'));
    const record = {
      ...newRecord('constructor', 'launch', false, null),
      config: { toString: 'from-disk', 'user.valueOf': 'v' },
      key_revisions: { toString: 1, 'user.valueOf': 1, constructor: 2 },
      revision: 2,
      list_revision: 1,
    };
    fs.mkdirSync(path.join(dir, 'containers'), { recursive: true, mode: 0o700 });
    fs.writeFileSync(path.join(dir, 'containers', 'constructor.json'), JSON.stringify(record), { mode: 0o600 });
    const loaded = await TestDaemon.start({ dir });
    try {
      assert.equal((await loaded.cli(['config', 'get', 'constructor', 'toString'])).out, 'from-disk');
      for (const name of ['constructor', 'hasOwnProperty', 'valueOf', '__proto__']) {
        assert.equal((await loaded.cli(['config', 'get', 'constructor', name], { timeoutMs: 15_000 })).code, 3, name);
      }
      assert.equal((await loaded.cli(['start', 'constructor'])).code, 0);
      assert.equal((await loaded.curl('constructor', '/1.0/config/user.valueOf')).out, 'v');
      assert.equal((await loaded.curl('constructor', '/1.0/config/user.toString', ['-o', '/dev/null', '-w', '%{http_code}'])).out, '404');
    } finally {
      await loaded.destroy();
    }
  });
});
