// Limits on the guest socket: timeouts, sizes, connection caps and the request rate,
// each answered with the JSON envelope, each confined to the container that hits it.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe } from 'node:test';
import { eventually, guestScript, run, TestDaemon } from '../helpers/daemon.js';
import { curlUnavailable, gatedTest } from '../helpers/env.js';
import { processesWhere } from '../helpers/procs.js';

const envelope = (status: number) => new RegExp(`\\r\\n\\r\\n\\{"type":"error","error":"[^"]+","error_code":${status}\\}$`);

/**
 * A node script run inside a container: sends raw bytes on a fresh connection (or
 * several, one after another) and prints what came back, as JSON.
 */
const rawClient = `
const net = require('net');
const [, , mode, countArg] = process.argv;
const one = (payload) => new Promise((resolve) => {
  const s = net.connect('/dev/apollo/sock');
  let answer = '';
  s.on('data', (c) => (answer += c));
  s.on('error', () => resolve(answer));
  s.on('close', () => resolve(answer));
  s.write(payload);
  if (mode === 'end') s.end();
});
const chunks = [];
process.stdin.on('data', (c) => chunks.push(c));
process.stdin.on('end', async () => {
  const payload = Buffer.concat(chunks);
  const answers = [];
  for (let i = 0; i < Number(countArg || 1); i++) answers.push(await one(payload));
  console.log(JSON.stringify(answers));
});
`;

describe('guest socket limits', () => {
  let daemon: TestDaemon;
  let script: string;
  const test = gatedTest(curlUnavailable);

  before(async () => {
    if (curlUnavailable) return;
    script = guestScript('raw-client.cjs', rawClient);
    daemon = await TestDaemon.start({
      args: [
        ...['--rate-limit', '5', '--rate-burst', '10', '--max-container-connections', '4', '--max-event-streams', '2'],
        ...['--header-timeout', '1', '--idle-timeout', '1', '--events-heartbeat', '0.2'],
      ],
    });
    await daemon.launch('hog', { config: { 'user.foo': 'hog' } });
    await daemon.launch('calm', { config: { 'user.foo': 'calm' } });
    // Its own container for the connection cap: what the rate test leaves of hog's bucket
    // must not decide it (the bucket itself is tested on its clock in admission.unit.test).
    await daemon.launch('capped', { config: { 'user.foo': 'capped' } });
  });

  after(async () => {
    await daemon?.destroy();
  });

  const raw = async (name: string, bytes: string | Buffer, options: { end?: boolean; count?: number } = {}) => {
    const r = await daemon.exec(name, [process.execPath, script, options.end ? 'end' : 'keep', String(options.count ?? 1)], {
      input: bytes,
    });
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.out) as string[];
  };

  test('a container over its request rate gets 429 with Retry-After; another container does not notice', async () => {
    // One connection, 30 requests in a row (curl reuses the connection): the burst is 10.
    // Each answer whole (headers, then body), then its status on a line of its own.
    const urls = Array.from({ length: 30 }, () => 'http://apollo/1.0/config/user.foo');
    const r = await daemon.exec('hog', [
      'curl',
      '-sS',
      '-i',
      '-w',
      '\\ncode=%{http_code}\\n',
      '--unix-socket',
      '/dev/apollo/sock',
      ...urls,
    ]);
    const answers = r.out.split(/\ncode=\d+\n/).slice(0, -1);
    const codes = [...r.out.matchAll(/\ncode=(\d+)\n/g)].map((m) => m[1]);
    assert.equal(codes.length, 30, r.out);
    assert.ok(codes.includes('429'), codes.join(' '));
    assert.ok(codes.filter((c) => c === '200').length >= 5);
    const limited = answers.find((a) => a.startsWith('HTTP/1.1 429 '));
    assert.ok(limited !== undefined, codes.join(' '));
    assert.match(limited, /\r\nRetry-After: \d+\r\n/i);
    assert.match(limited, envelope(429));
    assert.equal((await daemon.curl('calm', '/1.0/config/user.foo')).out, 'calm');
  });

  test('a container over its connection cap gets 429, with the envelope, on the extra connections only', async () => {
    const holder = guestScript(
      'holder.cjs',
      `const net = require('net');
const sockets = [];
for (let i = 0; i < 6; i++) sockets.push(net.connect('/dev/apollo/sock').on('error', () => undefined));
setTimeout(async () => {
  const results = [];
  for (const s of sockets) {
    results.push(await new Promise((resolve) => {
      let a = '';
      s.on('data', (c) => { a += c; if (a.includes('\\r\\n\\r\\n')) resolve(a.split(' ')[1]); });
      s.on('close', () => resolve(a.split(' ')[1] || 'closed'));
      s.write('GET /1.0/devices HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n');
    }));
  }
  console.log(results.join(' '));
  process.exit(0);
}, 300);
`,
    );
    const r = await daemon.exec('capped', [process.execPath, holder]);
    const statuses = r.out.trim().split(' ');
    assert.equal(statuses.filter((s) => s === '200').length, 4, r.out);
    assert.equal(statuses.filter((s) => s === '429').length, 2, r.out);
    assert.equal((await daemon.curl('calm', '/1.0/config/user.foo')).out, 'calm');
  });

  test('parser rejections carry the envelope: 400, 414, 431, 413, and 408 for a slow header', async () => {
    const [garbage] = await raw('calm', 'GARBAGE\r\n\r\n');
    assert.match(garbage ?? '', /^HTTP\/1\.1 400 /);
    assert.match(garbage ?? '', envelope(400));
    const [method] = await raw('calm', 'BR3W / HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.match(method ?? '', /^HTTP\/1\.1 (400|405) /);
    const [uri] = await raw('calm', `GET /1.0/config/user.${'a'.repeat(9000)} HTTP/1.1\r\nHost: x\r\n\r\n`);
    assert.match(uri ?? '', /^HTTP\/1\.1 414 /);
    assert.match(uri ?? '', envelope(414));
    const [header] = await raw('calm', `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(20_000)}\r\n\r\n`);
    assert.match(header ?? '', /^HTTP\/1\.1 431 /);
    assert.match(header ?? '', envelope(431));
    const body = JSON.stringify({ state: 'x'.repeat(100_000) });
    const [large] = await raw('calm', `PATCH /1.0 HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    assert.match(large ?? '', /^HTTP\/1\.1 413 /);
    assert.match(large ?? '', envelope(413));
    // Headers that never finish: the header timeout (1 s here) answers 408 and closes.
    const [slow] = await raw('calm', 'GET / HTTP/1.1\r\nHost: x\r\n');
    assert.match(slow ?? '', /^HTTP\/1\.1 408 /);
    assert.match(slow ?? '', envelope(408));
  });

  test('an idle kept-alive connection is closed; an event stream and a change-wait are not', async () => {
    // From the host: the idle timeout applies to every connection, served or not.
    const socket = net.connect(`${daemon.dir}/devapollo/sock`);
    // Read what comes: a paused socket never sees the server's close.
    socket.resume();
    const closed = new Promise((resolve) => socket.once('close', resolve));
    socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await closed;
    const stream = daemon.exec('calm', [
      'sh',
      '-c',
      'curl -sN --max-time 10 --unix-socket /dev/apollo/sock http://apollo/1.0/events; true',
    ]);
    const wait = daemon.curl('calm', '/1.0/config/user.foo?wait=true&timeout=10', ['-o', '/dev/null', '-w', '%{http_code}']);
    await eventually(() => processesWhere((args) => args[0] === 'curl' && args.some((a) => a.includes('/1.0/'))).length >= 2, 'both run');
    // Past the 1 s idle timeout (and a check interval) before anything happens on them.
    await new Promise((resolve) => setTimeout(resolve, 2500));
    await eventually(async () => (await daemon.cli(['config', 'set', 'calm', `user.late=${Date.now()}`])).code === 0, 'config set');
    const streamed = await stream;
    assert.match(streamed.out, /"key":"user\.late"/, 'the stream outlived the idle timeout');
    assert.equal((await wait).out, '200');
  });

  test('event streams per container are capped: the next one gets 429 with Retry-After', async () => {
    const holder = guestScript(
      'streams.cjs',
      `const http = require('http');
const open = () => new Promise((resolve) => {
  const req = http.get({ socketPath: '/dev/apollo/sock', path: '/1.0/events' }, (res) => {
    let body = '';
    if (res.statusCode !== 200) res.on('data', (c) => (body += c));
    res.on('end', () => resolve(res.statusCode + ' ' + (res.headers['retry-after'] || '') + ' ' + body));
    if (res.statusCode === 200) resolve('200');
  });
});
(async () => {
  const results = [];
  for (let i = 0; i < 3; i++) results.push(await open());
  console.log(JSON.stringify(results));
  process.exit(0);
})();
`,
    );
    const r = await daemon.exec('calm', [process.execPath, holder]);
    const results = JSON.parse(r.out) as string[];
    assert.deepEqual(results.slice(0, 2), ['200', '200']);
    assert.match(results[2] ?? '', /^429 \d+ \{"type":"error","error":"[^"]+","error_code":429\}$/);
  });
});

describe('guest socket defaults', () => {
  const test = gatedTest(curlUnavailable);

  test('a boot storm (10 containers, 60 requests each, all at once) trips no default limit', async (t) => {
    const daemon = await TestDaemon.start();
    try {
      const names = Array.from({ length: 10 }, (_, i) => `boot${i}`);
      for (const name of names) await daemon.launch(name, { config: { 'user.foo': name } });
      const urls = Array.from({ length: 60 }, () => ['-o', '/dev/null', 'http://apollo/1.0/config/user.foo']).flat();
      const results = await Promise.all(
        names.map((name) => daemon.exec(name, ['curl', '-sS', '-w', '%{http_code}\\n', '--unix-socket', '/dev/apollo/sock', ...urls])),
      );
      const codes = results.flatMap((r) => r.out.trim().split('\n'));
      t.diagnostic(`${codes.length} requests: ${codes.filter((c) => c === '200').length} answered 200`);
      assert.equal(codes.length, 600);
      assert.deepEqual([...new Set(codes)], ['200']);
    } finally {
      await daemon.destroy();
    }
  });

  test('a listener that stops reading is dropped; the others keep getting events', async () => {
    const daemon = await TestDaemon.start();
    try {
      await daemon.launch('slow', {});
      const stall = guestScript(
        'stall.cjs',
        `const net = require('net');
const s = net.connect('/dev/apollo/sock');
s.write('GET /1.0/events HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n');
s.pause();
setTimeout(() => process.exit(0), 30000);
`,
      );
      const stalled = daemon.exec('slow', [process.execPath, stall]);
      const reader = daemon.exec('slow', [
        'sh',
        '-c',
        'curl -sN --max-time 30 --unix-socket /dev/apollo/sock http://apollo/1.0/events | grep -m1 -o "user.last"',
      ]);
      await eventually(async () => {
        const metrics = await run('curl', ['-sS', '--unix-socket', `${daemon.dir}/unix.socket`, 'http://d/metrics']);
        return /^devapollo_event_listeners 2$/m.test(metrics.out);
      }, 'both listeners connected');
      // Events of about 1 MiB each (old and new value): the stalled reader falls behind at once.
      for (let i = 0; i < 4; i++) {
        const r = await daemon.cli(['config', 'set', 'slow', 'user.big', '-'], { input: String(i).repeat(512 * 1024) });
        assert.equal(r.code, 0, r.stderr);
      }
      assert.equal((await daemon.cli(['config', 'set', 'slow', 'user.last=1'])).code, 0);
      assert.equal((await reader).out, 'user.last\n');
      // A paused reader does not notice its close; the daemon says it dropped it.
      const metrics = await run('curl', ['-sS', '--unix-socket', `${daemon.dir}/unix.socket`, 'http://d/metrics']);
      assert.match(metrics.out, /^devapollo_events_dropped_total 1$/m);
      assert.match(metrics.out, /^devapollo_event_listeners 0$/m);
      void stalled;
    } finally {
      await daemon.destroy();
    }
  });
});
