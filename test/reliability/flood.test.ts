// A neighbour's flood: requests far over its rate, pipelined as fast as it can write,
// and connect/close loops. The flood is refused cheaply (429, Retry-After, the
// envelope) and not read for the Retry-After it was told; a bystander container's
// latency is measured without and with it in the same run. Figures go to the test log.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { describe } from 'node:test';
import { eventually, guestScript, TestDaemon } from '../helpers/daemon.js';
import { curlUnavailable, gatedTest } from '../helpers/env.js';
import { type BystanderReport, bystanderScript, latencyLine, metricsOf, onlyOk } from '../helpers/guest-load.js';

/**
 * Run inside the flooding container: MODE `pipeline` keeps CONNS connections writing
 * pipelined GETs as fast as the daemon takes them (reconnecting when one is closed);
 * `reconnect` runs CONNS loops of connect, one request, close without reading. For
 * SECONDS seconds; prints what it got, and the first 429 it saw in full.
 */
const floodScript = `
const net = require('net');
const [, , mode, secondsArg, connsArg] = process.argv;
const deadline = Date.now() + Number(secondsArg) * 1000;
const request = 'GET /1.0/config/user.foo HTTP/1.1\\r\\nHost: apollo\\r\\n\\r\\n';
const chunk = Buffer.from(request.repeat(mode === 'pipeline' ? 1000 : 1));
const stats = { connections: 0, ok: 0, refused: 0, sample: '' };
const open = new Set();
let tail = '';
const onData = (c) => {
  const text = tail + c.toString('latin1');
  stats.ok += text.split('HTTP/1.1 200 ').length - 1;
  stats.refused += text.split('HTTP/1.1 429 ').length - 1;
  if (stats.sample === '') {
    const at = text.indexOf('HTTP/1.1 429 ');
    const end = at === -1 ? -1 : text.indexOf('}', at);
    if (end !== -1) stats.sample = text.slice(at, end + 1);
  }
  tail = text.slice(-600);
  // What was counted is not counted again.
  tail = tail.replace(/HTTP\\/1\\.1 (200|429) /g, '');
};
const pipeline = () => new Promise((resolve) => {
  if (Date.now() >= deadline) return resolve();
  stats.connections++;
  const s = net.connect('/dev/apollo/sock');
  open.add(s);
  s.on('error', () => undefined);
  s.on('data', onData);
  const pump = () => { while (Date.now() < deadline && !s.destroyed && s.write(chunk)); };
  s.on('connect', pump);
  s.on('drain', pump);
  s.on('close', () => { open.delete(s); resolve(pipeline()); });
});
const reconnect = () => new Promise((resolve) => {
  if (Date.now() >= deadline) return resolve();
  stats.connections++;
  const s = net.connect('/dev/apollo/sock');
  open.add(s);
  s.on('error', () => undefined);
  s.on('connect', () => s.write(chunk, () => s.destroy()));
  s.on('close', () => { open.delete(s); resolve(reconnect()); });
});
setTimeout(() => { for (const s of open) s.destroy(); }, Number(secondsArg) * 1000).unref();
Promise.all(Array.from({ length: Number(connsArg) }, mode === 'pipeline' ? pipeline : reconnect)).then(() => {
  console.log(JSON.stringify(stats));
  process.exit(0);
});
`;

interface FloodReport {
  readonly connections: number;
  readonly ok: number;
  readonly refused: number;
  readonly sample: string;
}

/** User plus system CPU time of a process, in seconds. */
function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

describe('a neighbour floods', () => {
  const test = gatedTest(curlUnavailable);

  test("a flood over the rate limit is refused cheaply and held; a bystander's latency, without and with it", async (t) => {
    const daemon = await TestDaemon.start();
    try {
      await daemon.launch('flooder', { config: { 'user.foo': 'flood' } });
      await daemon.launch('bystander', { config: { 'user.foo': 'calm' } });
      const flood = guestScript('flood.cjs', floodScript);
      const bystander = guestScript('bystander.cjs', bystanderScript);
      const pid = daemon.pid ?? 0;
      // The flooder gets one core (taskset, as a CPU limit would): what the bystander sees
      // is then the daemon's doing more than the flooder's own CPU.
      const measure = async (mode: 'pipeline' | 'reconnect' | undefined, conns: number) => {
        const cpuBefore = cpuSeconds(pid);
        const started = Date.now();
        const flooding =
          mode === undefined
            ? undefined
            : daemon.exec('flooder', ['taskset', '-c', '1', process.execPath, flood, mode, '4', String(conns)], { timeoutMs: 60_000 });
        const watched = await daemon.exec('bystander', [process.execPath, bystander, '3', mode === undefined ? '0' : '0.5']);
        const flooded = await flooding;
        assert.equal(watched.code, 0, `bystander: ${watched.stderr}`);
        assert.equal(flooded?.code ?? 0, 0, `flooder: ${flooded?.stderr}`);
        const report = flooded === undefined ? undefined : (JSON.parse(flooded.out) as FloodReport);
        const cpu = (cpuSeconds(pid) - cpuBefore) / ((Date.now() - started) / 1000);
        return { bystander: JSON.parse(watched.out) as BystanderReport, flood: report, cpu };
      };
      const quiet = await measure(undefined, 0);
      const piped = await measure('pipeline', 8);
      const looped = await measure('reconnect', 16);
      t.diagnostic(`bystander alone: ${latencyLine(quiet.bystander)}; daemon CPU ${(quiet.cpu * 100).toFixed(0)}%`);
      for (const [what, run] of [
        ['8 connections pipelining', piped],
        ['16 connect/request/close loops', looped],
      ] as const) {
        const f = run.flood as FloodReport;
        t.diagnostic(`bystander during ${what}: ${latencyLine(run.bystander)}; daemon CPU ${(run.cpu * 100).toFixed(0)}%`);
        t.diagnostic(`  the flood: ${f.connections} connections, ${f.ok} answered 200, ${f.refused} refused 429`);
      }
      for (const run of [quiet, piped, looped]) assert.deepEqual(onlyOk(run.bystander), ['200']);
      // The pipelined flood went far over the rate (1024/s, bursts of 4096): refused, with the envelope.
      const pipedFlood = piped.flood as FloodReport;
      assert.ok(pipedFlood.refused > 0, JSON.stringify(pipedFlood));
      assert.match(pipedFlood.sample, /^HTTP\/1\.1 429 Too Many Requests\r\n/);
      assert.match(pipedFlood.sample, /\r\nRetry-After: 1\r\n/);
      assert.match(pipedFlood.sample, /\r\n\r\n\{"type":"error","error":"too many requests from this container","error_code":429\}$/);
      const metrics = await metricsOf(daemon);
      t.diagnostic(
        `refusals: ${metrics.get('devapollo_refused_peers_total{reason="request rate limit"}') ?? 0} for the rate, ${metrics.get('devapollo_refused_peers_total{reason="pipelined requests"}') ?? 0} connections closed for sending too far ahead`,
      );
      assert.equal(daemon.pid, pid);
      // The flooder itself is served again once its bucket has refilled.
      await eventually(async () => (await daemon.curl('flooder', '/1.0/config/user.foo')).out === 'flood', 'the flooder is served again');
    } finally {
      await daemon.destroy();
    }
  });

  test('over its rate a connection gets 429 with Retry-After and the envelope, is not read, and is served again once the bucket refills', async () => {
    const daemon = await TestDaemon.start({ args: ['--rate-limit', '5', '--rate-burst', '10'] });
    try {
      await daemon.launch('eager', { config: { 'user.foo': 'eager' } });
      const script = guestScript(
        'eager.cjs',
        `const net = require('net');
const connect = () => new Promise((resolve) => { const s = net.connect('/dev/apollo/sock', () => resolve(s)); s.on('error', () => undefined); });
const ask = (s) => new Promise((resolve) => {
  let a = '';
  const onData = (c) => {
    a += c.toString('latin1');
    const end = a.indexOf('\\r\\n\\r\\n');
    const length = Number(/\\r\\ncontent-length: (\\d+)/i.exec(a)?.[1] ?? -1);
    if (end !== -1 && length >= 0 && a.length >= end + 4 + length) { s.off('data', onData); resolve(a); }
  };
  s.on('data', onData);
  s.write('GET /1.0/config/user.foo HTTP/1.1\\r\\nHost: apollo\\r\\n\\r\\n');
});
(async () => {
  const s = await connect();
  const statuses = [];
  let refusal = '';
  for (let i = 0; i < 11; i++) {
    const answer = await ask(s);
    statuses.push(answer.slice(9, 12));
    if (answer.startsWith('HTTP/1.1 429')) refusal = answer;
  }
  // Straight after the refusal, on the same connection and on a new one.
  const [again, fresh] = await Promise.all([ask(s), connect().then(ask)]);
  console.log(JSON.stringify({ statuses, refusal, again: again.slice(9, 12), fresh: fresh.slice(9, 12) }));
  process.exit(0);
})();
`,
      );
      const r = await daemon.exec('eager', [process.execPath, script]);
      assert.equal(r.code, 0, r.stderr);
      const { statuses, refusal, again, fresh } = JSON.parse(r.out) as {
        statuses: string[];
        refusal: string;
        again: string;
        fresh: string;
      };
      // The burst of 10, then a refusal.
      assert.deepEqual(statuses, [...Array.from({ length: 10 }, () => '200'), '429']);
      assert.match(refusal, /\r\nRetry-After: 1\r\n/i);
      assert.match(refusal, /\r\nContent-Type: application\/json\r\n/i);
      assert.match(refusal, /\r\n\r\n\{"type":"error","error":"too many requests from this container","error_code":429\}$/);
      // Asked again at once: not read until the second it was told has passed, then served.
      assert.equal(again, '200');
      assert.equal(fresh, '200');
    } finally {
      await daemon.destroy();
    }
  });
});
