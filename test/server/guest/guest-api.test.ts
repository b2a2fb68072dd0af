// The guest API as containers see it: real daemon, real containers, real socket, curl and
// the guest client inside.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe } from 'node:test';
import { TestDaemon } from '../../helpers/daemon.js';
import { curlUnavailable, gatedTest } from '../../helpers/env.js';

describe('guest API inside real containers', () => {
  let daemon: TestDaemon;
  const test = gatedTest(curlUnavailable);

  before(async () => {
    if (curlUnavailable) return;
    daemon = await TestDaemon.start();
    await daemon.launch('alpha', {
      config: {
        'user.foo': 'alpha-value',
        'user.only-alpha': 'a',
        'security.devapollo.users': 'false',
        // Set keys outside user.* and cloud-init.* (unknown ones cannot be set at all).
        'volatile.cloud-init.instance-id': 'v',
        'security.idmap.isolated': 'false',
        'cloud-init.user-data': '#cloud-config\npackages: [curl]\n',
        'user.meta-data': 'instance-id: custom-id\nfoo: bar\n',
      },
    });
    await daemon.launch('beta', { config: { 'user.foo': 'beta-value' } });
  });

  after(async () => {
    await daemon?.destroy();
  });

  test('two containers each read only their own user.* value, with curl', async () => {
    const a = await daemon.curl('alpha', '/1.0/config/user.foo');
    const b = await daemon.curl('beta', '/1.0/config/user.foo');
    assert.equal(a.out, 'alpha-value');
    assert.equal(b.out, 'beta-value');
    const bOnly = await daemon.curl('beta', '/1.0/config/user.only-alpha', ['-o', '/dev/null', '-w', '%{http_code}']);
    assert.equal(bOnly.out, '404');
  });

  test('two containers each read only their own value, with the guest client', async () => {
    const a = await daemon.guest('alpha', ['get', 'user.foo']);
    const b = await daemon.guest('beta', ['get', 'user.foo']);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(a.out, 'alpha-value');
    assert.equal(b.code, 0, b.stderr);
    assert.equal(b.out, 'beta-value');
    const missing = await daemon.guest('beta', ['get', 'user.only-alpha']);
    assert.equal(missing.code, 3);
    assert.equal(missing.out, '');
    assert.match(missing.stderr, /^Error: /);
  });

  test('GET / and GET /1.0', async () => {
    const root = await daemon.curl('alpha', '/', ['-i']);
    assert.match(root.out, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(root.out, /\r\nContent-Type: application\/json\r\n/i);
    assert.deepEqual(JSON.parse(root.out.split('\r\n\r\n')[1] ?? ''), ['/1.0']);
    const info = JSON.parse((await daemon.curl('alpha', '/1.0')).out) as Record<string, unknown>;
    assert.equal(info['api_version'], '1.0');
    assert.equal(info['instance_type'], 'container');
    assert.equal(info['state'], 'Started');
    assert.equal(typeof info['location'], 'string');
    assert.ok((info['location'] as string).length > 0);
  });

  test('the key list shows only readable keys, sorted', async () => {
    const list = JSON.parse((await daemon.curl('alpha', '/1.0/config')).out) as string[];
    assert.deepEqual(list, [
      '/1.0/config/cloud-init.user-data',
      '/1.0/config/user.foo',
      '/1.0/config/user.meta-data',
      '/1.0/config/user.only-alpha',
    ]);
  });

  test('security.* and volatile.* keys are 403 even when set; unset ones too', async () => {
    for (const key of [
      'security.secret',
      'volatile.secret',
      'security.devapollo.users',
      'security.nothing',
      'image.os',
      'volatile.cloud-init.instance-id',
      'security.idmap.isolated',
    ]) {
      const r = await daemon.curl('alpha', `/1.0/config/${key}`, ['-i']);
      assert.match(r.out, /^HTTP\/1\.1 403 /, key);
      const body = JSON.parse(r.out.split('\r\n\r\n')[1] ?? '') as Record<string, unknown>;
      assert.equal(body['type'], 'error');
      assert.equal(body['error_code'], 403);
      assert.equal(typeof body['error'], 'string');
      assert.doesNotMatch(r.out, /"s"|"v"|"false"/);
    }
    const guest = await daemon.guest('alpha', ['get', 'security.secret']);
    assert.equal(guest.code, 4);
    assert.equal(guest.out, '');
  });

  test('cloud-init.user-data is readable, exactly, as text/plain; charset=utf-8', async () => {
    const r = await daemon.curl('alpha', '/1.0/config/cloud-init.user-data', ['-i']);
    assert.match(r.out, /\r\nContent-Type: text\/plain; charset=utf-8\r\n/i);
    assert.equal(r.out.split('\r\n\r\n')[1], '#cloud-config\npackages: [curl]\n');
  });

  test('meta-data: a user.meta-data line replaces the generated instance-id', async () => {
    const alpha = await daemon.curl('alpha', '/1.0/meta-data');
    assert.equal(alpha.out, '#cloud-config\ninstance-id: custom-id\nlocal-hostname: alpha\nfoo: bar\n');
    const beta = await daemon.curl('beta', '/1.0/meta-data');
    assert.equal(beta.out, '#cloud-config\ninstance-id: beta\nlocal-hostname: beta\n');
  });

  test('devices is an empty object', async () => {
    assert.equal((await daemon.curl('beta', '/1.0/devices')).out, '{}');
  });

  test('unknown path 404, other method 405 with Allow, both with the JSON envelope', async () => {
    const missing = await daemon.curl('beta', '/1.0/nothing', ['-i']);
    assert.match(missing.out, /^HTTP\/1\.1 404 /);
    assert.match(missing.out, /\r\n\r\n\{"type":"error","error":"[^"]+","error_code":404\}$/);
    const post = await daemon.curl('beta', '/1.0/config', ['-i', '-X', 'POST', '-d', 'x']);
    assert.match(post.out, /^HTTP\/1\.1 405 /);
    assert.match(post.out, /\r\nAllow: GET, HEAD\r\n/i);
    assert.match(post.out, /"error_code":405\}$/);
  });

  test('invalid percent-encoding in the key gets 400 with the envelope', async () => {
    const bad = await daemon.curl('beta', '/1.0/config/%zz', ['-i']);
    assert.match(bad.out, /^HTTP\/1\.1 400 /);
    assert.match(bad.out, /"error_code":400\}$/);
  });

  test('ETag on every GET; If-None-Match gives 304; a change A->B->A changes it', async () => {
    const first = await daemon.curl('beta', '/1.0/config/user.foo', ['-i']);
    const etag = /\r\nETag: ("[^"]+")\r\n/i.exec(first.out)?.[1];
    assert.ok(etag, first.out);
    const cached = await daemon.curl('beta', '/1.0/config/user.foo', [
      '-o',
      '/dev/null',
      '-w',
      '%{http_code}',
      '-H',
      `If-None-Match: ${etag}`,
    ]);
    assert.equal(cached.out, '304');
    assert.equal((await daemon.cli(['config', 'set', 'beta', 'user.foo=other'])).code, 0);
    assert.equal((await daemon.cli(['config', 'set', 'beta', 'user.foo=beta-value'])).code, 0);
    const again = await daemon.curl('beta', '/1.0/config/user.foo', ['-i']);
    const etag2 = /\r\nETag: ("[^"]+")\r\n/i.exec(again.out)?.[1];
    assert.ok(etag2);
    assert.notEqual(etag2, etag);
    assert.equal(again.out.split('\r\n\r\n')[1], 'beta-value');
  });

  test('values come back byte for byte: UTF-8, %s, spaces, trailing newlines', async () => {
    const value = 'héllo wörld %s %d 😀\n\n';
    const set = await daemon.cli(['config', 'set', 'beta', 'user.tricky', '-'], { input: value });
    assert.equal(set.code, 0, set.stderr);
    const viaCurl = await daemon.curl('beta', '/1.0/config/user.tricky');
    assert.equal(viaCurl.out, value);
    const viaGuest = await daemon.guest('beta', ['get', 'user.tricky']);
    assert.deepEqual(viaGuest.stdout, Buffer.from(value, 'utf8'));
    const percent = await daemon.curl('beta', '/1.0/config/user%2Etricky');
    assert.equal(percent.out, value);
  });

  test('the socket is /dev/apollo/sock, a socket, inside a read-only /dev/apollo', async () => {
    const r = await daemon.exec('beta', ['sh', '-c', 'test -S /dev/apollo/sock && echo socket; grep " /dev/apollo " /proc/self/mounts']);
    assert.match(r.out, /^socket\n/);
    assert.match(r.out, / \/dev\/apollo \S+ ro[, ]/);
  });
});

describe('from the host', () => {
  const test = gatedTest(curlUnavailable);
  test('a host process gets 403 and nothing else', async () => {
    const daemon = await TestDaemon.start();
    try {
      await daemon.launch('gamma', { config: { 'user.foo': 'secret' } });
      const { run } = await import('../../helpers/daemon.js');
      const r = await run('curl', ['-sS', '-i', '--unix-socket', `${daemon.dir}/devapollo/sock`, 'http://apollo/1.0/config/user.foo']);
      assert.match(r.out, /^HTTP\/1\.1 403 /);
      assert.doesNotMatch(r.out, /secret|gamma/);
      const list = await run('curl', ['-sS', '-i', '--unix-socket', `${daemon.dir}/devapollo/sock`, 'http://apollo/nothing']);
      assert.match(list.out, /^HTTP\/1\.1 403 /);
      // Requests the HTTP parser rejects get the same JSON envelope.
      const raw = await rawRequest(`${daemon.dir}/devapollo/sock`, 'GARBAGE\r\n\r\n');
      assert.match(raw, /^HTTP\/1\.1 400 [\s\S]*\r\n\r\n\{"type":"error","error":"[^"]+","error_code":400\}$/);
    } finally {
      await daemon.destroy();
    }
  });
});

/** Sends raw bytes and returns everything the server answers before closing. */
function rawRequest(socketPath: string, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath);
    let answer = '';
    socket.on('data', (chunk: Buffer) => (answer += chunk.toString('utf8')));
    socket.once('error', reject);
    socket.once('close', () => resolve(answer));
    socket.write(bytes);
  });
}
