/**
 * Load from inside containers for the reliability suite: a bystander that measures its
 * own request latency, and the daemon's metrics as numbers.
 */
import { run, type TestDaemon } from './daemon.js';

/**
 * A node script run inside a container: GETs `/1.0/config/user.foo` one after another on
 * one kept-alive connection for SECONDS seconds (after DELAY seconds), starting one every
 * 2 ms at most (500 a second: well under the default rate limit, so that the bystander
 * never meets its own), and prints what it measured as JSON: the count, statuses (and
 * failed connects, retried), and p50/p99/max latency in milliseconds.
 */
export const bystanderScript = `
const net = require('net');
const [, , secondsArg, delayArg] = process.argv;
const request = Buffer.from('GET /1.0/config/user.foo HTTP/1.1\\r\\nHost: apollo\\r\\n\\r\\n');
const latencies = [];
const statuses = {};
let socket;
/** Connects, again after a failure (a full listen backlog says EAGAIN), counting failures. */
const connect = () => new Promise((resolve) => {
  const attempt = net.connect('/dev/apollo/sock');
  let connected = false;
  attempt.once('connect', () => {
    connected = true;
    socket = attempt;
    resolve();
  });
  attempt.on('error', () => {
    if (connected) return;
    statuses['connect failed'] = (statuses['connect failed'] || 0) + 1;
    setTimeout(() => connect().then(resolve), 1);
  });
});
/** One request; resolves once a whole answer (headers and Content-Length bytes) is in. */
const one = () => new Promise((resolve) => {
  let buffered = '';
  const started = process.hrtime.bigint();
  const onData = (chunk) => {
    buffered += chunk.toString('latin1');
    const end = buffered.indexOf('\\r\\n\\r\\n');
    if (end === -1) return;
    const length = Number(/\\r\\ncontent-length: (\\d+)/i.exec(buffered)?.[1] ?? 0);
    if (buffered.length < end + 4 + length) return;
    socket.off('data', onData);
    socket.off('close', onClose);
    latencies.push(Number(process.hrtime.bigint() - started) / 1e6);
    const status = buffered.slice(9, 12);
    statuses[status] = (statuses[status] || 0) + 1;
    resolve(true);
  };
  const onClose = () => {
    socket.off('data', onData);
    statuses.closed = (statuses.closed || 0) + 1;
    resolve(false);
  };
  socket.on('data', onData);
  socket.once('close', onClose);
  socket.write(request);
});
(async () => {
  await new Promise((resolve) => setTimeout(resolve, Number(delayArg || 0) * 1000));
  await connect();
  const deadline = Date.now() + Number(secondsArg) * 1000;
  while (Date.now() < deadline) {
    const next = Date.now() + 2;
    if (!(await one())) await connect();
    const rest = next - Date.now();
    if (rest > 0) await new Promise((resolve) => setTimeout(resolve, rest));
  }
  socket.destroy();
  latencies.sort((a, b) => a - b);
  const at = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
  console.log(JSON.stringify({ count: latencies.length, statuses, p50: at(0.5), p99: at(0.99), max: latencies.at(-1) ?? 0 }));
})();
`;

/** What the bystander printed. */
export interface BystanderReport {
  readonly count: number;
  readonly statuses: Record<string, number>;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

/** "p50 0.41 ms, p99 1.9 ms, max 7.2 ms (8,112 requests)". */
export function latencyLine(report: BystanderReport): string {
  const failed = report.statuses['connect failed'];
  const connects = failed === undefined ? '' : `; ${failed} connects failed and were retried`;
  return `p50 ${report.p50.toFixed(2)} ms, p99 ${report.p99.toFixed(2)} ms, max ${report.max.toFixed(1)} ms (${report.count} requests${connects})`;
}

/** Every request the bystander made was answered 200 (failed connects aside). */
export function onlyOk(report: BystanderReport): string[] {
  return Object.keys(report.statuses).filter((status) => status !== 'connect failed');
}

/** The daemon's metrics: each sample line's value by its name and labels as written. */
export async function metricsOf(daemon: TestDaemon): Promise<Map<string, number>> {
  const r = await run('curl', ['-sS', '--unix-socket', `${daemon.dir}/unix.socket`, 'http://d/metrics']);
  const samples = new Map<string, number>();
  for (const line of r.out.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    samples.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return samples;
}
