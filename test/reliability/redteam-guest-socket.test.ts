// Red team on the guest socket (session 5): each test is an attack that worked before its
// fix, run as the attacker would run it, against a real daemon and real containers.
// - An Upgrade request, or a websocket handshake, closed at once: the answer's write failed
//   on a socket Node had taken its error listener off, and the daemon exited.
// - Refused connections that never close: they kept their places under the daemon's cap,
//   so one container filled it for all.
// - A request whose body comes after its container was deleted and re-created: it wrote
//   the deleted record over the new container's state file.
// - PATCH /1.0 in a loop: a durable rewrite of the state file each, with no write rate.
// - CONNECT, and an Upgrade on a request with a body: no answer, or the body lost.
// Second pass: a refused connection's pipelined requests were all parsed and answered 403
// (a 2 s flood kept every container out for minutes); a stream or a change-wait asked with
// a non-websocket Upgrade outlived its client; a bad websocket handshake was answered in HTML.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe } from 'node:test';
import { eventually, guestScript, run, TestDaemon } from '../helpers/daemon.js';
import { containersUnavailable, gatedTest } from '../helpers/env.js';

const envelope = (status: number) => new RegExp(`\\r\\n\\r\\n\\{"type":"error","error":"[^"]+","error_code":${status}\\}$`);

/** In a container: sends the payload COUNT times, each on a new connection closed at once, without reading. */
const hitAndRun = `
const net = require('net');
const [, , payload, countArg] = process.argv;
(async () => {
  for (let i = 0; i < Number(countArg); i++) {
    await new Promise((resolve) => {
      const s = net.connect('/dev/apollo/sock', () => { s.write(payload); s.destroy(); resolve(); });
      s.on('error', resolve);
    });
  }
})();
`;

/** In a container: one connection, PAYLOAD sent, the whole answer printed once the daemon closes it. */
const askOnce = `
const net = require('net');
const s = net.connect('/dev/apollo/sock');
let answer = '';
s.on('data', (c) => (answer += c));
s.on('close', () => console.log(JSON.stringify(answer)));
s.on('error', () => undefined);
s.write(process.argv[2]);
`;

/**
 * In a container: COUNT connections, a request on each, none read nor closed; prints how
 * many the daemon closed by itself within a few seconds, and the status of each answer.
 */
const holdOpen = `
const net = require('net');
const count = Number(process.argv[2]);
const statuses = [];
let closed = 0;
for (let i = 0; i < count; i++) {
  const s = net.connect('/dev/apollo/sock');
  s.on('error', () => undefined);
  s.once('data', (c) => statuses.push(String(c).split(' ')[1]));
  s.on('close', () => closed++);
  s.write('GET /1.0 HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n');
}
setTimeout(() => {
  console.log(JSON.stringify({ closed, statuses: statuses.sort() }));
  process.exit(0);
}, 3000);
`;

/**
 * In a container (python3, which can pass a descriptor): connects to the guest socket,
 * sends a PATCH's headers without its body, and hands the connection to the host process
 * listening on the abstract socket NAME, then exits.
 */
const handOver = `
import socket, sys
guest = socket.socket(socket.AF_UNIX)
guest.connect('/dev/apollo/sock')
guest.sendall(b'PATCH /1.0 HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 17\\r\\n\\r\\n')
out = socket.socket(socket.AF_UNIX)
out.connect('\\0' + sys.argv[1])
socket.send_fds(out, [b'x'], [guest.fileno()])
out.recv(1)
`;

/** On the host: takes the connection, waits for GO, sends the body, prints the answer. */
const receive = `
import os, socket, sys, time
server = socket.socket(socket.AF_UNIX)
server.bind('\\0' + sys.argv[1])
server.listen(1)
open(sys.argv[2], 'w').close()
conn, _ = server.accept()
_, fds, _, _ = socket.recv_fds(conn, 1, 1)
conn.sendall(b'x')
guest = socket.socket(fileno=fds[0])
open(sys.argv[3], 'w').close()
while not os.path.exists(sys.argv[4]):
    time.sleep(0.02)
guest.sendall(b'{"state":"Ready"}')
guest.settimeout(10)
answer = b''
while b'\\r\\n\\r\\n' not in answer:
    chunk = guest.recv(4096)
    if not chunk:
        break
    answer += chunk
print(answer.decode())
`;

describe('red team: the guest socket', () => {
  let daemon: TestDaemon;
  let flags: string;
  const test = gatedTest(containersUnavailable);

  before(async () => {
    if (containersUnavailable) return;
    flags = fs.mkdtempSync(path.join(os.tmpdir(), 'devapollo-redteam-'));
    fs.chmodSync(flags, 0o755);
    daemon = await TestDaemon.start({
      args: ['--max-connections', '12', '--max-container-connections', '8', '--guest-write-rate', '2', '--guest-write-burst', '4'],
    });
    await daemon.launch('mallory', { config: { 'user.foo': 'mallory' } });
    await daemon.launch('alice', { config: { 'user.foo': 'alice' } });
  });

  after(async () => {
    await daemon?.destroy();
    if (flags !== undefined) fs.rmSync(flags, { recursive: true, force: true });
  });

  const node = (name: string, script: string, args: readonly string[]) => daemon.exec(name, [process.execPath, script, ...args]);

  /** From the host (root, not in any container: every request of it is refused): the same hit-and-run. */
  const hitFromHost = async (payload: string, count: number) => {
    for (let i = 0; i < count; i++) {
      await new Promise<void>((resolve) => {
        const s = net.connect(path.join(daemon.dir, 'devapollo/sock'), () => {
          s.write(payload);
          s.destroy();
          resolve();
        });
        s.on('error', () => resolve());
      });
    }
  };

  test('upgrades and websocket handshakes closed at once, from a container and from the host: the daemon stays up', async () => {
    const pid = daemon.pid;
    const script = guestScript('hit-and-run.cjs', hitAndRun);
    const upgrade = 'GET /1.0/config/user.foo HTTP/1.1\r\nHost: x\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n';
    const websocket =
      'GET /1.0/events HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n';
    for (const payload of [upgrade, websocket, `PUT /1.0/config/guest.x HTTP/1.1\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n`]) {
      const inside = await node('mallory', script, [payload, '40']);
      assert.equal(inside.code, 0, inside.stderr);
      await hitFromHost(payload, 40);
    }
    assert.equal((await daemon.curl('alice', '/1.0/config/user.foo')).out, 'alice');
    assert.equal(daemon.pid, pid, 'the same daemon process');
    assert.doesNotMatch(daemon.stderr, /internal error, exiting/);
  });

  test('CONNECT (guest and admin sockets), and an Upgrade on a PUT, get the JSON envelope (400); the key the PUT named is not touched', async () => {
    const script = guestScript('ask-once.cjs', askOnce);
    const connect = await node('mallory', script, ['CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n']);
    assert.match(JSON.parse(connect.out) as string, /^HTTP\/1\.1 400 /);
    assert.match(JSON.parse(connect.out) as string, envelope(400));
    assert.equal((await daemon.guest('mallory', ['set', 'guest.kept', 'value'])).code, 0);
    const put = await node('mallory', script, [
      'PUT /1.0/config/guest.kept HTTP/1.1\r\nHost: x\r\nUpgrade: foo\r\nConnection: upgrade\r\nContent-Length: 3\r\n\r\nabc',
    ]);
    assert.match(JSON.parse(put.out) as string, /^HTTP\/1\.1 400 /);
    assert.match(JSON.parse(put.out) as string, /only for a websocket on GET \/1\.0\/events/);
    assert.equal((await daemon.cli(['config', 'get', 'mallory', 'guest.kept'])).out, 'value');
    // The admin socket too (root's own, reached from the host).
    const admin = await new Promise<string>((resolve) => {
      const s = net.connect(path.join(daemon.dir, 'unix.socket'), () => s.write('CONNECT example.com:443 HTTP/1.1\r\nHost: x\r\n\r\n'));
      let answer = '';
      s.on('data', (c) => {
        answer += c;
      });
      s.on('error', () => resolve(answer));
      s.on('close', () => resolve(answer));
    });
    assert.match(admin, /^HTTP\/1\.1 400 /);
    assert.match(admin, envelope(400));
  });

  test('refused connections that are never closed take no place: the daemon closes them, a neighbour is still let in', async () => {
    const script = guestScript('hold-open.cjs', holdOpen);
    // 8 a container, 12 in all: mallory's 30 get 8 places, 22 refusals, and alice must still
    // find the 4 places that are left, for as long as mallory holds its 8.
    const holding = node('mallory', script, ['30']);
    await eventually(async () => {
      const status = JSON.parse((await daemon.cli(['status', '--format', 'json'])).out) as { connections: { guest: number } };
      return status.connections.guest >= 8;
    }, "mallory's connections are open");
    const neighbour = await daemon.curl('alice', '/1.0/config/user.foo');
    assert.equal(neighbour.out, 'alice', neighbour.stderr);
    const held = await holding;
    assert.equal(held.code, 0, held.stderr);
    const { closed, statuses } = JSON.parse(held.out) as { closed: number; statuses: string[] };
    assert.equal(statuses.filter((s) => s === '429').length, 22, statuses.join(' '));
    assert.equal(statuses.filter((s) => s === '200').length, 8, statuses.join(' '));
    assert.ok(!statuses.includes('503'), `never the daemon's own limit: ${statuses.join(' ')}`);
    assert.equal(closed, 22, 'each refused connection closed by the daemon, though its peer never closed it');
  });

  const guestRequests = async (): Promise<number> => {
    const metrics = await run('curl', ['-sS', '--unix-socket', path.join(daemon.dir, 'unix.socket'), 'http://d/metrics']);
    let total = 0;
    for (const [, count] of metrics.out.matchAll(/^devapollo_requests_total\{api="guest",[^}]*\} (\d+)$/gm)) total += Number(count);
    return total;
  };

  test("a refused connection's pipelined requests are never parsed nor answered, only the refusal is", async () => {
    const flood = guestScript(
      'refused-pipeline.cjs',
      `const net = require('net');
const held = [];
const open = () => new Promise((resolve) => { const s = net.connect('/dev/apollo/sock', () => resolve(s)); s.on('error', () => undefined); held.push(s); });
(async () => {
  for (let i = 0; i < 8; i++) await open();
  const answers = await Promise.all(Array.from({ length: 10 }, () => new Promise((resolve) => {
    const s = net.connect('/dev/apollo/sock');
    let a = '';
    s.on('data', (c) => (a += c));
    s.on('error', () => undefined);
    s.on('close', () => resolve(a));
    s.write('GET /1.0 HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n'.repeat(2000));
  })));
  console.log(JSON.stringify(answers.map((a) => (a.match(/^HTTP\\/1\\.1 (\\d+)/gm) || []).join(' '))));
  process.exit(0);
})();
`,
    );
    const before = await guestRequests();
    const r = await daemon.exec('mallory', [process.execPath, flood]);
    assert.equal(r.code, 0, r.stderr);
    for (const statuses of JSON.parse(r.out) as string[]) assert.equal(statuses, 'HTTP/1.1 429', 'one answer, the refusal');
    // The refusals are not requests (they are counted as refused peers); the 20,000 sent
    // behind them were never read.
    assert.ok((await guestRequests()) - before < 100, `guest requests answered: ${(await guestRequests()) - before}`);
  });

  test('a stream and a change-wait asked with a non-websocket Upgrade end when their client goes', async () => {
    const etag = (await daemon.curl('alice', '/1.0/config/user.foo', ['-sS', '-o', '/dev/null', '-w', '%header{etag}'])).out;
    assert.match(etag, /^"/);
    const script = guestScript(
      'upgrade-streams.cjs',
      `const net = require('net');
const asks = [
  'HEAD /1.0/events HTTP/1.1\\r\\nHost: x\\r\\nUpgrade: foo\\r\\nConnection: Upgrade\\r\\n\\r\\n',
  'GET /1.0/events HTTP/1.1\\r\\nHost: x\\r\\nUpgrade: foo\\r\\nConnection: Upgrade\\r\\n\\r\\n',
  'GET /1.0/config/user.foo?wait=true&timeout=600&etag=' + encodeURIComponent(process.argv[2]) + ' HTTP/1.1\\r\\nHost: x\\r\\nUpgrade: foo\\r\\nConnection: Upgrade\\r\\n\\r\\n',
];
(async () => {
  for (let round = 0; round < 4; round++)
    for (const ask of asks)
      await new Promise((resolve) => {
        const s = net.connect('/dev/apollo/sock', () => s.write(ask));
        s.on('error', resolve);
        setTimeout(() => { s.destroy(); resolve(); }, 150);
      });
})();
`,
    );
    const r = await daemon.exec('alice', [process.execPath, script, etag]);
    assert.equal(r.code, 0, r.stderr);
    await eventually(
      async () => {
        const status = JSON.parse((await daemon.cli(['status', '--format', 'json'])).out) as {
          connections: { guest: number; event_listeners: number; change_waits: number };
        };
        return status.connections.guest === 0 && status.connections.event_listeners === 0 && status.connections.change_waits === 0;
      },
      'no connection, stream or wait is left of them',
      5_000,
    );
  });

  test('a bad websocket handshake gets the JSON envelope, not HTML', async () => {
    const script = guestScript('ask-once.cjs', askOnce);
    const handshake = (key: string, version: string) =>
      `GET /1.0/events HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: ${version}\r\n\r\n`;
    const badKey = JSON.parse((await node('alice', script, [handshake('x', '13')])).out) as string;
    assert.match(badKey, /^HTTP\/1\.1 400 /);
    assert.match(badKey, /\r\nContent-Type: application\/json\r\n/);
    assert.match(badKey, /Sec-WebSocket-Key must be 16 bytes in base64/);
    assert.match(badKey, envelope(400));
    const badVersion = JSON.parse((await node('alice', script, [handshake('dGhlIHNhbXBsZSBub25jZQ==', '7')])).out) as string;
    assert.match(badVersion, /^HTTP\/1\.1 400 /);
    assert.match(badVersion, /\r\nSec-WebSocket-Version: 13, 8\r\n/);
    assert.match(badVersion, envelope(400));
  });

  test('a body that arrives after its container was deleted and re-created: 403, and the new record stays as it is', async (t) => {
    if ((await run('python3', ['-c', 'import socket; socket.send_fds'])).code !== 0)
      return t.skip('python3 with socket.send_fds is needed');
    await daemon.launch('victim', { config: { 'user.secret': 'OLD' } });
    const name = `devapollo-redteam-${process.pid}`;
    const [listening, received, go] = ['listening', 'received', 'go'].map((f) => path.join(flags, f)) as [string, string, string];
    const handOverScript = path.join(flags, 'hand-over.py');
    const receiveScript = path.join(flags, 'receive.py');
    fs.writeFileSync(handOverScript, handOver, { mode: 0o644 });
    fs.writeFileSync(receiveScript, receive, { mode: 0o644 });
    const host = run('python3', [receiveScript, name, listening, received, go], { timeoutMs: 60_000 });
    try {
      await eventually(() => fs.existsSync(listening), 'the host holder listens');
      const handed = await daemon.exec('victim', ['python3', handOverScript, name]);
      assert.equal(handed.code, 0, handed.stderr);
      await eventually(() => fs.existsSync(received), 'the host holder has the connection');
      assert.equal((await daemon.cli(['delete', '--force', 'victim'])).code, 0);
      await daemon.launch('victim', { config: { 'user.secret': 'NEW' } });
    } finally {
      fs.writeFileSync(go, '');
    }
    const answer = await host;
    assert.equal(answer.code, 0, answer.stderr);
    assert.match(answer.out, /^HTTP\/1\.1 403 /);
    const record = JSON.parse(fs.readFileSync(path.join(daemon.dir, 'containers', 'victim.json'), 'utf8')) as {
      config: Record<string, string>;
      guest_state: string;
    };
    assert.equal(record.config['user.secret'], 'NEW');
    assert.equal(record.guest_state, 'Started');
    const listed = JSON.parse((await daemon.cli(['list', '--format', 'json'])).out) as { name: string; state: string }[];
    assert.equal(listed.find((c) => c.name === 'victim')?.state, 'Running');
    assert.equal((await daemon.cli(['delete', '--force', 'victim'])).code, 0);
  });

  test('PATCH /1.0 pays the write rate: a loop of state changes gets 429 with Retry-After', async () => {
    const script = guestScript(
      'patch-loop.cjs',
      `const http = require('http');
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const one = (state) => new Promise((resolve) => {
  const req = http.request({ socketPath: '/dev/apollo/sock', path: '/1.0', method: 'PATCH', agent, headers: { Host: 'x' } }, (res) => {
    res.resume();
    res.on('end', () => resolve(res.statusCode + (res.headers['retry-after'] ? ':' + res.headers['retry-after'] : '')));
  });
  req.end(JSON.stringify({ state }));
});
(async () => {
  const out = [];
  for (let i = 0; i < 12; i++) out.push(await one(i % 2 ? 'Started' : 'Ready'));
  console.log(out.join(' '));
  process.exit(0);
})();
`,
    );
    const r = await daemon.exec('alice', [process.execPath, script]);
    assert.equal(r.code, 0, r.stderr);
    const codes = r.out.trim().split(' ');
    assert.ok(codes.filter((c) => c === '200').length >= 4, r.out);
    assert.ok(
      codes.some((c) => /^429:\d+$/.test(c)),
      `some state change is refused with Retry-After: ${r.out}`,
    );
  });
});
