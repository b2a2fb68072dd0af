// Hostile input: 10,000 generated malformed or adversarial requests from inside a
// container, and slow-loris connections. The daemon never crashes, answers 4xx or
// closes, never shows another container's data, keeps its memory bounded, and keeps
// serving everyone else. Figures go to the test log (t.diagnostic).
import assert from 'node:assert/strict';
import { after, before, describe } from 'node:test';
import { guestScript, rssOf, TestDaemon } from '../helpers/daemon.js';
import { curlUnavailable, gatedTest } from '../helpers/env.js';

const secret = 'victim-secret-7f3a9c';

/**
 * The generator, run inside the attacking container. Deterministic (seeded), so a
 * failure can be replayed. Prints a JSON summary: counts by first status line, and any
 * answer that held the victim's secret.
 */
const fuzzer = `
const net = require('net');
const [, , countArg, seedArg, concurrencyArg, secret] = process.argv;
let seed = Number(seedArg);
const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
const pick = (a) => a[Math.floor(rand() * a.length)];
const bytes = (n) => Buffer.from(Array.from({ length: n }, () => Math.floor(rand() * 256)));
const valid = (path) => 'GET ' + path + ' HTTP/1.1\\r\\nHost: apollo\\r\\n\\r\\n';
const paths = ['/1.0/config/..%2f..', '/1.0/config/%2e%2e%2f%2e%2e%2fetc%2fpasswd', '/../../etc/passwd', '/1.0/config/user.secret',
  '/1.0/config/%zz', '/1.0/config/%', '/1.0/config/%e0%80', '/1.0/config/user.%00', '/1.0/%00/config', '//1.0//config',
  '/1.0/config/user.' + 'k'.repeat(300), '/1.0/config/' + 'x'.repeat(5000), '/1.0/meta-data?wait=true&timeout=-1',
  '/1.0/config/user.a?wait=true&etag=%ff&timeout=0', '/1.0/events?type=nope', '/1.0/config/security.devapollo', '*', 'http://evil/1.0'];
const methods = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'TRACE', 'CONNECT', 'G\\u0000T', 'BREW', 'get', ''];
const cases = [
  () => bytes(1 + Math.floor(rand() * 512)),
  () => Buffer.from(valid(pick(paths)).slice(0, Math.floor(rand() * 40))),
  () => Buffer.from('GET / HTTP/1.1\\r\\nHost: apollo\\r\\nX-Fill: ' + 'a'.repeat(20000 + Math.floor(rand() * 20000)) + '\\r\\n\\r\\n'),
  () => Buffer.from(pick(methods) + ' ' + pick(paths) + ' HTTP/1.1\\r\\nHost: apollo\\r\\n\\r\\n'),
  () => Buffer.from(valid(pick(paths))),
  () => Buffer.from(valid('/1.0/config/user.foo') + bytes(64).toString('latin1')),
  () => Buffer.from('GET /1.0 HTTP/1.1\\r\\nHost: a\\u0000b\\r\\n\\r\\n'),
  () => Buffer.from('PATCH /1.0 HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 999999\\r\\n\\r\\n{"state":'),
  () => Buffer.from('PATCH /1.0 HTTP/1.1\\r\\nHost: x\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\nzz\\r\\n'),
  () => Buffer.from('GET /1.0 HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 5\\r\\nTransfer-Encoding: chunked\\r\\n\\r\\n0\\r\\n\\r\\n'),
  () => Buffer.from(valid('/1.0') + valid('/1.0/config') + 'GARBAGE\\r\\n\\r\\n' + valid('/1.0/devices')),
  () => Buffer.from('GET /1.0 HTTP/9.9\\r\\n\\r\\n'),
];
const counts = {};
const leaks = [];
const one = (i) => new Promise((resolve) => {
  const payload = cases[i % cases.length]();
  const s = net.connect('/dev/apollo/sock');
  let answer = '';
  const timer = setTimeout(() => s.destroy(), 1500);
  s.on('data', (c) => { answer += c.toString('latin1'); });
  const done = () => {
    clearTimeout(timer);
    const status = /^HTTP\\/1\\.1 (\\d{3})/.exec(answer)?.[1] ?? (answer === '' ? 'closed' : 'other');
    counts[status] = (counts[status] || 0) + 1;
    if (answer.includes(secret)) leaks.push(payload.toString('latin1').slice(0, 80));
    resolve();
  };
  s.on('close', done);
  s.on('error', () => undefined);
  // Most connections half-close after their bytes; one in twenty stays half-open until the timeout.
  s.write(payload, () => { if (i % 20 !== 0) s.end(); });
});
(async () => {
  const total = Number(countArg);
  let next = 0;
  const worker = async () => { while (next < total) await one(next++); };
  await Promise.all(Array.from({ length: Number(concurrencyArg) }, worker));
  console.log(JSON.stringify({ counts, leaks }));
})();
`;

describe('hostile input', () => {
  let daemon: TestDaemon;
  const test = gatedTest(curlUnavailable);

  before(async () => {
    if (curlUnavailable) return;
    // The attacker's rate limit is lifted so that every one of its requests reaches the parser.
    daemon = await TestDaemon.start({ args: ['--rate-limit', '0'] });
    await daemon.launch('attacker', { config: { 'user.foo': 'mine' } });
    await daemon.launch('victim', { config: { 'user.secret': secret, 'user.foo': 'victim' } });
  });

  after(async () => {
    await daemon?.destroy();
  });

  test('10,000 malformed and adversarial requests: no crash, 4xx or close, no leak, bounded memory', async (t) => {
    const script = guestScript('fuzzer.cjs', fuzzer);
    const pid = daemon.pid ?? 0;
    const rssBefore = rssOf(pid);
    const started = Date.now();
    const r = await daemon.exec('attacker', [process.execPath, script, '10000', '20261129', '64', secret], { timeoutMs: 240_000 });
    assert.equal(r.code, 0, r.stderr);
    const { counts, leaks } = JSON.parse(r.out) as { counts: Record<string, number>; leaks: string[] };
    const rssAfter = rssOf(pid);
    t.diagnostic(`statuses ${JSON.stringify(counts)}; ${Date.now() - started} ms`);
    t.diagnostic(`daemon RSS before ${(rssBefore / 2 ** 20).toFixed(1)} MiB, after ${(rssAfter / 2 ** 20).toFixed(1)} MiB`);
    assert.deepEqual(leaks, []);
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    assert.equal(total, 10_000);
    for (const status of Object.keys(counts)) {
      // 200/304 for the valid requests among them (the attacker's own data), 4xx, or a closed connection.
      assert.match(status, /^(200|304|4\d\d|closed)$/, `unexpected answer ${status}`);
    }
    assert.ok((counts['400'] ?? 0) > 0 && (counts['404'] ?? 0) > 0 && (counts['431'] ?? 0) > 0);
    // Still the same daemon, still serving both containers correctly.
    assert.equal(daemon.pid, pid);
    assert.equal((await daemon.curl('victim', '/1.0/config/user.secret')).out, secret);
    assert.equal((await daemon.curl('attacker', '/1.0/config/user.secret', ['-o', '/dev/null', '-w', '%{http_code}'])).out, '404');
    assert.ok(rssAfter - rssBefore < 64 * 2 ** 20, `RSS grew by ${rssAfter - rssBefore} bytes`);
  });

  test('the same from the host: every answer is a 403 or a parser error, never data', async (t) => {
    const { run } = await import('../helpers/daemon.js');
    const script = guestScript('fuzzer-host.cjs', fuzzer.replace("'/dev/apollo/sock'", `'${daemon.dir}/devapollo/sock'`));
    const r = await run(process.execPath, [script, '2000', '7', '16', secret], { timeoutMs: 120_000 });
    assert.equal(r.code, 0, r.stderr);
    const { counts, leaks } = JSON.parse(r.out) as { counts: Record<string, number>; leaks: string[] };
    t.diagnostic(`host statuses ${JSON.stringify(counts)}`);
    assert.deepEqual(leaks, []);
    for (const status of Object.keys(counts)) assert.match(status, /^(4\d\d|closed)$/);
    assert.equal(counts['200'], undefined);
  });

  test('1,000 slow-loris connections from one container: another container is still answered', async (t) => {
    const loris = guestScript(
      'loris.cjs',
      `const net = require('net');
const sockets = [];
let open = 0;
for (let i = 0; i < 1000; i++) {
  const s = net.connect('/dev/apollo/sock');
  open++;
  s.on('error', () => undefined);
  s.on('close', () => open--);
  // Read whatever the daemon says (a 429 or a 408), so that its close is seen.
  s.resume();
  s.write('GET /1.0 HTTP/1.1\\r\\n');
  sockets.push(s);
}
const drip = setInterval(() => sockets.forEach((s) => s.writable && s.write('X-A: b\\r\\n')), 200);
setTimeout(() => console.log('at 1 s: ' + open), 1000);
setTimeout(() => { clearInterval(drip); console.log('at 8 s: ' + open); process.exit(0); }, 8000);
`,
    );
    const attack = daemon.exec('attacker', [process.execPath, loris], { timeoutMs: 60_000 });
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const latencies: number[] = [];
    for (let i = 0; i < 20; i++) {
      const r = await daemon.curl('victim', '/1.0/config/user.foo', ['-o', '/dev/null', '-w', '%{http_code} %{time_total}']);
      const [code, seconds] = r.out.split(' ');
      assert.equal(code, '200');
      latencies.push(Number(seconds) * 1000);
    }
    const report = (await attack).out;
    const early = Number(/at 1 s: (\d+)/.exec(report)?.[1]);
    const late = Number(/at 8 s: (\d+)/.exec(report)?.[1]);
    latencies.sort((a, b) => a - b);
    t.diagnostic(`victim latency during the attack: p50 ${latencies[10]?.toFixed(1)} ms, max ${latencies[19]?.toFixed(1)} ms`);
    t.diagnostic(`attacker connections open: ${early} after 1 s (cap 256), ${late} after 8 s (header timeout 5 s)`);
    // The per-container cap turns away all but 256 at once; the header timeout ends the rest.
    assert.ok(early <= 256, `${early} slow connections held after 1 s`);
    assert.equal(late, 0);
  });
});
