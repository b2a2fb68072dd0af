/**
 * Issue 7, benchmarks 1 and 2: throughput of `GET /1.0/config/user.foo` from inside a
 * container, with kept-alive connections and with a new connection per request, against
 * a bare node:http server on a Unix socket answering the same bytes.
 *
 * The load generator (autocannon) runs inside a privileged container: its root is host
 * root, so it can run the compiled agent and autocannon straight from the checkout's
 * node_modules (an unprivileged root may not be able to enter the checkout). The daemon
 * does exactly the same work per connection for a privileged container as for any other:
 * SO_PEERCRED, SO_PEERPIDFD, the namespace id and one map lookup. The baseline run uses
 * the same load generator in the same container, so both sides pay the same client costs.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Agent } from '../lib/agent.js';
import { tempDir } from '../lib/cleanup.js';
import { agentScript, type BenchContext } from '../lib/context.js';
import { BenchDaemon } from '../lib/daemon.js';
import { cpuSplit, pin } from '../lib/proc.js';
import type { BenchResult, Row } from '../lib/report.js';
import { median, medianInterval, spread } from '../lib/stats.js';

export type ThroughputMode = 'keepalive' | 'reconnect';

/** One load-generator run against one server. */
export interface LoadSample {
  readonly requests: number;
  readonly requests_per_second: number;
  readonly latency_p50_ms: number;
  readonly latency_p99_ms: number;
  readonly errors: number;
  /** The server process's user+system CPU time per request, in microseconds. */
  readonly server_cpu_us_per_request: number;
  /** Of that: system time, and the time of threads other than the event loop (GC, libuv). */
  readonly server_system_us_per_request: number;
  readonly server_helper_threads_us_per_request: number;
  /** The machine's 1-minute load average when the round ended (other work included). */
  readonly load_average: number;
}

/** "the 1-minute load average ranged from A to B": how busy the machine was meanwhile. */
export function loadNote(samples: readonly LoadSample[]): string {
  const loads = samples.map((s) => s.load_average);
  return `The machine's 1-minute load average at the end of the rounds ranged from ${Math.min(...loads).toFixed(1)} to ${Math.max(...loads).toFixed(1)} (2 cores; other work ran meanwhile).`;
}

export const loadContainer = 'bench-load';
export const fooValue = 'hello from devapollo';

/**
 * Runs autocannon once inside `container` against `socketPath`, and reads the CPU time of
 * `serverPid` around the measured part only (after the check and the warm-up).
 */
export async function loadRun(
  daemon: BenchDaemon,
  options: {
    container: string;
    socketPath: string;
    serverPid: number;
    reconnect: boolean;
    seconds: number;
    warmupSeconds: number;
    connections?: number;
    /** What is asked for (default the config key) and the body it must answer (null: any 200). */
    path?: string;
    expectBody?: string | null;
    /** Stop after this many requests instead of after `seconds`. */
    maxRequests?: number;
    /** Called as the measured part starts and once it has ended (for profilers). */
    onMeasure?: (phase: 'start' | 'end') => void;
  },
): Promise<LoadSample> {
  const spec = {
    socketPath: options.socketPath,
    path: options.path ?? '/1.0/config/user.foo',
    connections: options.connections ?? 10,
    seconds: options.seconds,
    warmupSeconds: options.warmupSeconds,
    reconnect: options.reconnect,
    expectBody: options.expectBody === undefined ? fooValue : options.expectBody,
    ...(options.maxRequests === undefined ? {} : { maxRequests: options.maxRequests }),
  };
  const agent = daemon.spawnIn(options.container, 'load generator', [
    'taskset',
    '-c',
    '1',
    process.execPath,
    agentScript('loadgen'),
    JSON.stringify(spec),
  ]);
  await agent.expect('ready', 120_000);
  options.onMeasure?.('start');
  const before = cpuSplit(options.serverPid);
  agent.send('go');
  const line = await agent.nextLine((options.seconds + 60) * 1000);
  const after = cpuSplit(options.serverPid);
  options.onMeasure?.('end');
  await agent.stop();
  const result = JSON.parse(line) as {
    requests: number;
    requests_per_second: number;
    latency_p50_ms: number;
    latency_p99_ms: number;
    errors: number;
  };
  const perRequest = (seconds: number) => (seconds * 1e6) / Math.max(result.requests, 1);
  const total = after.user + after.system - before.user - before.system;
  return {
    ...result,
    server_cpu_us_per_request: perRequest(total),
    server_system_us_per_request: perRequest(after.system - before.system),
    server_helper_threads_us_per_request: perRequest(total - (after.mainThread - before.mainThread)),
    load_average: Number(fs.readFileSync('/proc/loadavg', 'utf8').split(' ')[0]),
  };
}

/** loadRun against the daemon itself, from the load container. */
export function loadDaemon(
  daemon: BenchDaemon,
  reconnect: boolean,
  seconds: number,
  warmupSeconds: number,
  onMeasure?: (phase: 'start' | 'end') => void,
): Promise<LoadSample> {
  return loadRun(daemon, {
    container: loadContainer,
    socketPath: '/dev/apollo/sock',
    serverPid: daemon.pid,
    reconnect,
    seconds,
    warmupSeconds,
    ...(onMeasure === undefined ? {} : { onMeasure }),
  });
}

/** The ETag devapollo sends for the key, so that the baseline sends the same bytes. */
export async function etagOf(daemon: BenchDaemon): Promise<string> {
  const curl = daemon.spawnIn(loadContainer, 'curl', [
    'curl',
    '-sS',
    '-D',
    '-',
    '-o',
    '/dev/null',
    '--unix-socket',
    '/dev/apollo/sock',
    'http://apollo/1.0/config/user.foo',
  ]);
  for (;;) {
    const line = await curl.nextLine(30_000);
    const match = /^etag:\s*(.+?)\s*$/i.exec(line);
    if (match) {
      await curl.stop();
      return match[1] as string;
    }
  }
}

/**
 * The bare node:http server (bench/agents/baseline-server.ts) on `socketPath`, pinned to
 * core 0, answering the path with devapollo's bytes; resolves once it listens. `nodeArgs`
 * go to its node (profiling flags; V8 may print a line of its own before "listening").
 */
export async function startBaselineServer(socketPath: string, etag: string, nodeArgs: readonly string[] = []): Promise<Agent> {
  const server = new Agent('baseline server', 'taskset', [
    '-c',
    '0',
    process.execPath,
    ...nodeArgs,
    agentScript('baseline-server'),
    socketPath,
    '/1.0/config/user.foo',
    fooValue,
    etag,
  ]);
  let line = await server.nextLine();
  while (!line.startsWith('listening')) line = await server.nextLine();
  return server;
}

/**
 * Rounds each daemon and bare-server process serves before both are replaced. On this
 * machine one process can run a quarter slower than an identical one for as long as it
 * lives (two daemons of the same build, 20 alternating rounds: 0.77x the CPU per request,
 * interval 0.64x to 0.82x), a luck that more rounds against the same two processes never
 * average out; fresh processes every few rounds do.
 */
export const roundsPerProcess = 5;

export async function runThroughput(ctx: BenchContext, modes: readonly ThroughputMode[]): Promise<BenchResult[]> {
  // Many short rounds rather than a few long ones: on a shared machine a burst of other
  // work spoils a round, and the median of many rounds shrugs off a few spoiled ones.
  const rounds = ctx.rounds ?? (ctx.quick ? 3 : 17);
  const seconds = ctx.quick ? 2 : 3;
  const warmupSeconds = ctx.quick ? 0.5 : 1;
  const daemon = await BenchDaemon.start();
  // Beside the daemons replaced every few rounds, one that serves the whole run: neither
  // the luck of one process nor what a long life does to it hides behind the other.
  const longLived = await BenchDaemon.start();
  const tmp = tempDir('devapollo-bench-baseline-', { worldReadable: true });
  try {
    await daemon.launch(loadContainer, { privileged: true, config: { 'user.foo': fooValue } });
    await longLived.launch(loadContainer, { privileged: true, config: { 'user.foo': fooValue } });
    const etag = await etagOf(daemon);
    const baselineSocket = path.join(tmp.dir, 'baseline.sock');
    let baseline = await startBaselineServer(baselineSocket, etag);
    pin(daemon.pid, '0');
    pin(longLived.pid, '0');

    const results: BenchResult[] = [];
    for (const mode of modes) {
      const reconnect = mode === 'reconnect';
      const samples: Samples = { devapollo: [], baseline: [], longLived: [] };
      await loadRun(longLived, {
        container: loadContainer,
        socketPath: '/dev/apollo/sock',
        serverPid: longLived.pid,
        reconnect,
        seconds: 1,
        warmupSeconds,
      });
      for (let round = 0; round < rounds; round++) {
        if (round > 0 && round % roundsPerProcess === 0) {
          // A new daemon (it re-adopts the load container) and a new bare server, each
          // warmed up by one unrecorded run before it is measured.
          await daemon.stop();
          await daemon.spawn();
          pin(daemon.pid, '0');
          await baseline.stop();
          baseline = await startBaselineServer(baselineSocket, etag);
          for (const [socketPath, serverPid] of [
            ['/dev/apollo/sock', daemon.pid],
            [baselineSocket, baseline.pid as number],
          ] as const) {
            await loadRun(daemon, { container: loadContainer, socketPath, serverPid, reconnect, seconds: 1, warmupSeconds });
          }
          ctx.log(`${mode}: a new daemon and a new bare server`);
        }
        // Alternate which side goes first, so that a drift in the machine's load hits both.
        const order =
          round % 2 === 0 ? (['devapollo', 'baseline', 'longLived'] as const) : (['longLived', 'baseline', 'devapollo'] as const);
        for (const side of order) {
          const server = side === 'longLived' ? longLived : daemon;
          const sample = await loadRun(server, {
            container: loadContainer,
            socketPath: side === 'baseline' ? baselineSocket : '/dev/apollo/sock',
            serverPid: side === 'baseline' ? (baseline.pid as number) : server.pid,
            reconnect,
            seconds,
            warmupSeconds,
          });
          if (sample.errors > 0) throw new Error(`${mode} ${side}: ${sample.errors} errors`);
          samples[side].push(sample);
          ctx.log(
            `${mode} round ${round + 1}/${rounds} ${side}: ${Math.round(sample.requests_per_second)} req/s, ` +
              `${sample.server_cpu_us_per_request.toFixed(1)} µs CPU/req`,
          );
        }
      }
      results.push(summarize(mode, samples));
    }
    await baseline.stop();
    return results;
  } finally {
    daemon.destroy();
    longLived.destroy();
    tmp.remove();
  }
}

/** The rounds of one mode: the daemons replaced every few rounds, the bare server, the daemon never replaced. */
interface Samples {
  readonly devapollo: LoadSample[];
  readonly baseline: LoadSample[];
  readonly longLived: LoadSample[];
}

function summarize(mode: ThroughputMode, samples: Samples): BenchResult {
  const pick = (side: keyof Samples, field: keyof LoadSample) => samples[side].map((s) => s[field]);
  const rps = median(pick('devapollo', 'requests_per_second'));
  const rpsBase = median(pick('baseline', 'requests_per_second'));
  const cpu = median(pick('devapollo', 'server_cpu_us_per_request'));
  const cpuBase = median(pick('baseline', 'server_cpu_us_per_request'));
  const p99 = median(pick('devapollo', 'latency_p99_ms'));
  const p99Base = median(pick('baseline', 'latency_p99_ms'));
  const minimum = mode === 'keepalive' ? 0.9 : 0.8;
  const rows: Row[] = [
    {
      metric: 'throughput',
      value: rps,
      unit: 'req/s',
      baseline: rpsBase,
      baselineName: 'node:http',
      ratio: rps / rpsBase,
      target: `>= ${minimum}x`,
      met: rps / rpsBase >= minimum,
      spread: Math.max(spread(pick('devapollo', 'requests_per_second')), spread(pick('baseline', 'requests_per_second'))),
    },
    {
      metric: 'server CPU per request',
      value: cpu,
      unit: 'µs',
      baseline: cpuBase,
      baselineName: 'node:http',
      ratio: cpu / cpuBase,
      spread: Math.max(spread(pick('devapollo', 'server_cpu_us_per_request')), spread(pick('baseline', 'server_cpu_us_per_request'))),
    },
    // Each devapollo round against the baseline round next to it in time: a slow spell
    // of the machine that spans both cancels out. The median of those ratios, with a 95%
    // interval from the order statistics: how sure a run can be of where the ratio is.
    pairedRow('throughput, round by round (median, 95% interval)', samples, 'requests_per_second'),
    pairedRow('server CPU per request, round by round', samples, 'server_cpu_us_per_request'),
    // The least disturbed round of each side: on a shared machine other work only ever
    // slows a round down, so the best rounds are the closest to what the code costs.
    bestRow(
      'throughput, best round',
      Math.max(...pick('devapollo', 'requests_per_second')),
      Math.max(...pick('baseline', 'requests_per_second')),
      'req/s',
    ),
    bestRow(
      'server CPU per request, best round',
      Math.min(...pick('devapollo', 'server_cpu_us_per_request')),
      Math.min(...pick('baseline', 'server_cpu_us_per_request')),
      'µs',
    ),
    {
      metric: 'throughput, one long-lived daemon (never restarted)',
      value: median(pick('longLived', 'requests_per_second')),
      unit: 'req/s',
      baseline: rpsBase,
      baselineName: 'node:http',
      ratio: median(pick('longLived', 'requests_per_second')) / rpsBase,
      spread: spread(pick('longLived', 'requests_per_second')),
    },
    pairedRow(
      'throughput, one long-lived daemon, round by round',
      { devapollo: samples.longLived, baseline: samples.baseline },
      'requests_per_second',
    ),
    {
      metric: 'server CPU per request, one long-lived daemon',
      value: median(pick('longLived', 'server_cpu_us_per_request')),
      unit: 'µs',
      baseline: cpuBase,
      baselineName: 'node:http',
      ratio: median(pick('longLived', 'server_cpu_us_per_request')) / cpuBase,
    },
    // autocannon counts latency in whole milliseconds: no ratio against a 0.
    {
      metric: 'latency p99',
      value: p99,
      unit: 'ms',
      baseline: p99Base,
      baselineName: 'node:http',
      ...(p99Base > 0 ? { ratio: p99 / p99Base } : {}),
    },
  ];
  const title =
    mode === 'keepalive' ? 'Keep-alive throughput (issue 7, benchmark 1)' : 'A new connection per request (issue 7, benchmark 2)';
  const how =
    mode === 'keepalive'
      ? '10 kept-alive connections'
      : '10 connections, each closed and reopened after every request (autocannon `reconnectRate: 1`), so every request pays the accept and, for devapollo, the peer-credential identity lookup';
  return {
    id: mode,
    title,
    method:
      `\`GET /1.0/config/user.foo\` from inside a container, autocannon over the Unix socket, ${how}, ` +
      'against a bare `node:http` server on a Unix socket that answers the same bytes (status, Content-Type, ETag, body; ' +
      'it also sends the `Keep-Alive: timeout=30` header Node adds, which devapollo, closing idle connections by its own sweep, does not). ' +
      'The load generator runs inside a privileged container (its root is host root, so it runs autocannon from the ' +
      "checkout's node_modules; the daemon's per-connection work is the same as for any container), pinned to core 1; " +
      'the server under test is pinned to core 0. The daemon runs with its request rate limit off (`--rate-limit 0`). ' +
      `Every ${roundsPerProcess} rounds the daemon and the bare server are replaced by new processes (the daemon re-adopts the ` +
      'load container), each warmed up by one unrecorded run: one process can run a quarter slower than an identical one for ' +
      'its whole life here, and only many processes average that out. A third side, one more daemon started once and never replaced, ' +
      'is measured in the same rounds (the "long-lived" rows).',
    rows,
    notes: [pairedNote(samples), loadNote([...samples.devapollo, ...samples.baseline, ...samples.longLived])],
    raw: samples,
  };
}

/**
 * Each devapollo round against the baseline round run right before or after it: a drift
 * in the machine's load over the run cancels out of these ratios.
 */
function pairedNote(samples: { devapollo: LoadSample[]; baseline: LoadSample[] }): string {
  const ratios = samples.devapollo.map((d, i) => d.requests_per_second / (samples.baseline[i]?.requests_per_second ?? Number.NaN));
  const shown = ratios.map((r) => `${r.toFixed(2)}x`).join(', ');
  return `Throughput ratio round by round (each devapollo round against the baseline round next to it in time): ${shown}; median ${median(ratios).toFixed(2)}x.`;
}

/** The median of the round-by-round ratios of one field: a row that is only a ratio. */
function pairedRow(
  metric: string,
  samples: { devapollo: LoadSample[]; baseline: LoadSample[] },
  field: 'requests_per_second' | 'server_cpu_us_per_request',
): Row {
  const pairs = samples.devapollo.flatMap((d, i) => {
    const b = samples.baseline[i];
    return b === undefined ? [] : [[d[field], b[field]] as const];
  });
  const ratios = pairs.map(([d, b]) => d / b);
  const interval = medianInterval(ratios);
  return { metric, unit: '', ratio: median(ratios), ...(interval === undefined ? {} : { interval }) };
}

function bestRow(metric: string, value: number, baseline: number, unit: string): Row {
  return { metric, value, unit, baseline, baselineName: 'node:http', ratio: value / baseline };
}
