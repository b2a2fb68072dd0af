// Change-waits that must not outlive their connection: pipelined waits on connections
// closed right after sending, one request at a time per connection, a cap on what a
// connection may send ahead and on a container's pending waits, and a SIGTERM with
// waits and streams open. Figures go to the test log (t.diagnostic).
import assert from 'node:assert/strict';
import { after, before, describe } from 'node:test';
import { eventually, guestScript, rssOf, TestDaemon } from '../helpers/daemon.js';
import { curlUnavailable, gatedTest } from '../helpers/env.js';
import { type BystanderReport, bystanderScript, latencyLine, metricsOf, onlyOk } from '../helpers/guest-load.js';
import { processesWhere } from '../helpers/procs.js';

/**
 * Run inside a container: CONNS connections, each sending PER pipelined waits of 600 s on
 * user.foo in one write and closing right after. Prints how many answers came back.
 */
const orphanScript = `
const net = require('net');
const [, , connsArg, perArg] = process.argv;
const conns = Number(connsArg);
const payload = Buffer.from('GET /1.0/config/user.foo?wait=true&timeout=600 HTTP/1.1\\r\\nHost: apollo\\r\\n\\r\\n'.repeat(Number(perArg)));
let closed = 0;
let answers = 0;
for (let i = 0; i < conns; i++) {
  const s = net.connect('/dev/apollo/sock');
  s.on('error', () => undefined);
  s.on('data', (c) => (answers += c.toString('latin1').split('HTTP/1.1 ').length - 1));
  s.write(payload, () => s.destroy());
  s.on('close', () => {
    if (++closed === conns) console.log(JSON.stringify({ sent: conns * Number(perArg), answers }));
  });
}
`;

/**
 * Run inside a container: writes the given raw requests on one connection in one write,
 * and prints the bodies of the answers (in order) once COUNT answers are in, or what it
 * had when the daemon closed the connection.
 */
const pipelineScript = `
const net = require('net');
const [, , count, ...requests] = process.argv;
const s = net.connect('/dev/apollo/sock');
let buffered = '';
const bodies = [];
const finish = (closed) => { console.log(JSON.stringify({ bodies, closed })); process.exit(0); };
s.on('data', (c) => {
  buffered += c.toString('latin1');
  for (;;) {
    const end = buffered.indexOf('\\r\\n\\r\\n');
    if (end === -1) break;
    const length = Number(/\\r\\ncontent-length: (\\d+)/i.exec(buffered.slice(0, end))?.[1] ?? 0);
    if (buffered.length < end + 4 + length) break;
    bodies.push(buffered.slice(9, 12) + ' ' + buffered.slice(end + 4, end + 4 + length));
    buffered = buffered.slice(end + 4 + length);
  }
  if (bodies.length >= Number(count)) finish(false);
});
s.on('error', () => undefined);
s.on('close', () => finish(true));
s.write(requests.map((r) => 'GET ' + r + ' HTTP/1.1\\r\\nHost: apollo\\r\\n\\r\\n').join(''));
`;

/**
 * Run inside a container: WAITS connections with one wait each, STREAMS ndjson event
 * streams and SOCKETS websocket event streams (a hand-made handshake), all held open;
 * prints "open" once every one has its answer's headers (or, for waits, was sent), then
 * how many the daemon closed, once all of them are closed.
 */
const holderScript = `
const net = require('net');
const [, , waitsArg, streamsArg, socketsArg] = process.argv;
const sockets = [];
let headers = 0;
const expectHeaders = Number(streamsArg) + Number(socketsArg);
const open = (request, counts) => {
  const s = net.connect('/dev/apollo/sock');
  s.on('error', () => undefined);
  let seen = false;
  s.on('data', (c) => {
    if (counts && !seen && c.toString('latin1').includes('\\r\\n\\r\\n')) {
      seen = true;
      if (++headers === expectHeaders) console.log('open');
    }
  });
  s.write(request);
  sockets.push(new Promise((resolve) => s.on('close', resolve)));
};
for (let i = 0; i < Number(waitsArg); i++) open('GET /1.0/config/user.foo?wait=true&timeout=600 HTTP/1.1\\r\\nHost: apollo\\r\\n\\r\\n', false);
for (let i = 0; i < Number(streamsArg); i++) open('GET /1.0/events HTTP/1.1\\r\\nHost: apollo\\r\\n\\r\\n', true);
for (let i = 0; i < Number(socketsArg); i++) {
  open('GET /1.0/events HTTP/1.1\\r\\nHost: apollo\\r\\nConnection: Upgrade\\r\\nUpgrade: websocket\\r\\n' +
    'Sec-WebSocket-Version: 13\\r\\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\\r\\n\\r\\n', true);
}
if (expectHeaders === 0) console.log('open');
Promise.all(sockets).then(() => { console.log('closed ' + sockets.length); process.exit(0); });
`;

describe('change-waits and their connections', () => {
  let daemon: TestDaemon;
  const test = gatedTest(curlUnavailable);
  const attackers = ['orphan1', 'orphan2', 'orphan3', 'orphan4'];

  before(async () => {
    if (curlUnavailable) return;
    daemon = await TestDaemon.start({ args: ['--stop-timeout', '5'] });
    for (const name of [...attackers, 'bystander', 'piper']) await daemon.launch(name, { config: { 'user.foo': name } });
  });

  after(async () => {
    await daemon?.destroy();
  });

  const metric = async (name: string) => (await metricsOf(daemon)).get(name);

  test('10,000 pipelined waits from 4 containers on connections closed at once: none is left, memory stays put', async (t) => {
    const orphan = guestScript('orphan.cjs', orphanScript);
    const bystander = guestScript('bystander.cjs', bystanderScript);
    const pid = daemon.pid ?? 0;
    // Warm up, so that the figure is the attack's and not the first requests'.
    await daemon.exec(attackers[0] ?? '', [process.execPath, orphan, '4', '10']);
    const rssBefore = rssOf(pid);
    const quiet = JSON.parse((await daemon.exec('bystander', [process.execPath, bystander, '2'])).out) as BystanderReport;
    const during = daemon.exec('bystander', [process.execPath, bystander, '3', '0.2']);
    // 25 connections x 100 pipelined waits in each of 4 containers.
    const attacks = await Promise.all(attackers.map((name) => daemon.exec(name, [process.execPath, orphan, '25', '100'])));
    const rssAfter = rssOf(pid);
    const busy = JSON.parse((await during).out) as BystanderReport;
    for (const attack of attacks) assert.equal(attack.code, 0, attack.stderr);
    const sent = attacks.reduce((n, a) => n + (JSON.parse(a.out) as { sent: number }).sent, 0);
    assert.equal(sent, 10_000);
    const closedForPipelining = (await metricsOf(daemon)).get('devapollo_refused_peers_total{reason="pipelined requests"}') ?? 0;
    t.diagnostic(
      `daemon RSS ${(rssBefore / 2 ** 20).toFixed(1)} MiB before, ${(rssAfter / 2 ** 20).toFixed(1)} MiB right after (+${((rssAfter - rssBefore) / 2 ** 20).toFixed(1)} MiB)`,
    );
    t.diagnostic(
      `connections closed by the daemon for sending more than 8 ahead: ${closedForPipelining} of 100 (the others closed before it had read that far)`,
    );
    t.diagnostic(`bystander alone: ${latencyLine(quiet)}`);
    t.diagnostic(`bystander during the attack: ${latencyLine(busy)}`);
    // Through the daemon: no wait, queued request or held connection is left.
    await eventually(async () => (await metric('devapollo_change_waits')) === 0, 'no change-wait pending');
    await eventually(async () => (await metric('devapollo_guest_paused_connections')) === 0, 'no connection held');
    await eventually(async () => (await metric('devapollo_guest_connections')) === 0, 'every connection closed');
    assert.deepEqual(onlyOk(busy), ['200']);
    assert.ok(rssAfter - rssBefore < 48 * 2 ** 20, `RSS grew by ${rssAfter - rssBefore} bytes`);
    // Still serving the attackers too.
    assert.equal((await daemon.curl('orphan1', '/1.0/config/user.foo')).out, 'orphan1');
  });

  test('a request pipelined behind a wait is read only once the wait is answered', async () => {
    const script = guestScript('pipeline.cjs', pipelineScript);
    await daemon.cli(['config', 'set', 'piper', 'user.a=before', 'user.b=old']);
    const piped = daemon.exec('piper', [process.execPath, script, '2', '/1.0/config/user.a?wait=true&timeout=60', '/1.0/config/user.b']);
    await eventually(async () => (await metric('devapollo_change_waits')) === 1, 'the wait is pending');
    assert.equal((await daemon.cli(['config', 'set', 'piper', 'user.b=new'])).code, 0);
    assert.equal((await daemon.cli(['config', 'set', 'piper', 'user.a=after'])).code, 0);
    const { bodies, closed } = JSON.parse((await piped).out) as { bodies: string[]; closed: boolean };
    assert.equal(closed, false);
    // Read (and answered) after the wait: it sees the value set while the wait was pending.
    assert.deepEqual(bodies, ['200 after', '200 new']);
  });

  test('a connection that sends more than 8 requests ahead of a pending one is closed, and counted', async () => {
    const script = guestScript('pipeline.cjs', pipelineScript);
    const counted = async () => (await metricsOf(daemon)).get('devapollo_refused_peers_total{reason="pipelined requests"}') ?? 0;
    const before = await counted();
    const ahead = Array.from({ length: 9 }, () => '/1.0/config/user.foo');
    const r = await daemon.exec('piper', [process.execPath, script, '10', '/1.0/config/user.foo?wait=true&timeout=60', ...ahead]);
    const { bodies, closed } = JSON.parse(r.out) as { bodies: string[]; closed: boolean };
    assert.deepEqual({ bodies, closed }, { bodies: [], closed: true });
    assert.equal((await counted()) - before, 1);
    // Eight ahead are fine: answered in order once the wait is.
    const eight = daemon.exec('piper', [process.execPath, script, '9', '/1.0/config/user.foo?wait=true&timeout=60', ...ahead.slice(1)]);
    await eventually(async () => (await metric('devapollo_change_waits')) === 1, 'the wait is pending');
    assert.equal((await daemon.cli(['config', 'set', 'piper', 'user.foo=changed'])).code, 0);
    const answered = JSON.parse((await eight).out) as { bodies: string[]; closed: boolean };
    assert.deepEqual(answered, { bodies: Array.from({ length: 9 }, () => '200 changed'), closed: false });
  });

  test("a container's pending waits are capped at 64: the next one gets 429 with Retry-After; others are not affected", async () => {
    const holder = guestScript('holder.cjs', holderScript);
    const held = daemon.exec('piper', [process.execPath, holder, '64', '0', '0']);
    await eventually(async () => (await metric('devapollo_change_waits')) === 64, '64 waits pending');
    const refused = await daemon.curl('piper', '/1.0/config/user.foo?wait=true&timeout=60', ['-i']);
    assert.match(refused.out, /^HTTP\/1\.1 429 /);
    assert.match(refused.out, /\r\nRetry-After: \d+\r\n/i);
    assert.match(refused.out, /\r\n\r\n\{"type":"error","error":"too many change-waits for this container \(64\)","error_code":429\}$/);
    // Another container's wait is its own.
    const other = await daemon.curl('bystander', '/1.0/config/user.foo?wait=true&timeout=0.2', ['-o', '/dev/null', '-w', '%{http_code}']);
    assert.equal(other.out, '200');
    const status = JSON.parse((await daemon.cli(['status', '--format', 'json'])).out) as {
      connections: { change_waits: number };
      limits: { change_waits_per_container: number };
    };
    assert.equal(status.connections.change_waits, 64);
    assert.equal(status.limits.change_waits_per_container, 64);
    // The holder's connections end with its process: so do their waits.
    for (const pid of processesWhere((args) => args[1] === holder)) process.kill(pid, 'SIGKILL');
    await held;
    await eventually(async () => (await metric('devapollo_change_waits')) === 0, 'the waits ended with their connections');
  });
});

describe('SIGTERM with waits and streams open', () => {
  const test = gatedTest(curlUnavailable);

  test('every wait, stream and queued request ends, and the daemon exits well within --stop-timeout', async (t) => {
    const daemon = await TestDaemon.start({ args: ['--stop-timeout', '5'] });
    try {
      await daemon.launch('held', { config: { 'user.foo': 'x' } });
      const holder = guestScript('holder.cjs', holderScript);
      const orphan = guestScript('orphan.cjs', orphanScript);
      // Waits and streams on live connections, websockets among them...
      const holding = daemon.exec('held', [process.execPath, holder, '20', '5', '3']);
      await eventually(async () => (await metricsOf(daemon)).get('devapollo_event_listeners') === 8, 'streams open');
      // ... and pipelined waits on connections closed right after sending, read by the
      // daemon once it has seen those connections close.
      assert.equal((await daemon.exec('held', [process.execPath, orphan, '4', '50'])).code, 0);
      await eventually(async () => (await metricsOf(daemon)).get('devapollo_guest_connections') === 28, 'the closed ones gone');
      const started = Date.now();
      let exited = false;
      const stopping = daemon.signal('SIGTERM').then(() => (exited = true));
      // A hang guard far beyond the stop timeout (and far below the waits' 600 s).
      await Promise.race([stopping, new Promise((resolve) => setTimeout(resolve, 60_000))]);
      t.diagnostic(`SIGTERM to exit: ${Date.now() - started} ms (--stop-timeout 5)`);
      assert.ok(exited, 'the daemon exited');
      assert.match(daemon.stderr, /devapollo stopped/);
      // It stopped on its own: the backstop did not have to end it.
      assert.doesNotMatch(daemon.stderr, /in time; exiting/);
      const closed = await holding;
      assert.match(closed.out, /^open\nclosed 28\n$/);
    } finally {
      await daemon.destroy();
    }
  });
});
