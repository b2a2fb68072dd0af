/**
 * Issue 19: identity tokens from one container, beside a plain config GET in the same run,
 * and what issuing does to another container's GETs.
 *
 * Rounds alternate the two loads from the load container (10 kept-alive connections,
 * autocannon): `GET /1.0/identity/token?audience=bench&ttl=60` (an ES256 signature each)
 * and `GET /1.0/config/user.foo`. Then a bystander container's GETs (one kept-alive
 * connection, closed loop: its rate is the inverse of its latency) alone, while the load
 * container issues tokens, and while it makes the same number of connections' config
 * GETs; the last pair says whether a token costs a neighbour more than a GET does. Last,
 * on a daemon with the limits as shipped (1024 requests and 16 tokens a second per
 * container), the bystander beside a container that asks for tokens as fast as it can
 * (all but 16 a second refused) and beside the same GET flood: what a flood of token
 * requests costs a neighbour as shipped.
 */
import type { BenchContext } from '../lib/context.js';
import { BenchDaemon } from '../lib/daemon.js';
import { pin } from '../lib/proc.js';
import type { BenchResult, Row } from '../lib/report.js';
import { median, medianInterval, spread } from '../lib/stats.js';
import { fooValue, type LoadSample, loadContainer, loadNote, loadRun } from './throughput.js';

const bystander = 'bench-bystander';
const tokenPath = '/1.0/identity/token?audience=bench&ttl=60';

type Neighbour = 'alone' | 'tokens' | 'gets' | 'limited tokens' | 'limited gets';

export async function runIdentity(ctx: BenchContext): Promise<BenchResult> {
  const rounds = ctx.rounds ?? (ctx.quick ? 3 : 9);
  const seconds = ctx.quick ? 2 : 3;
  const warmupSeconds = ctx.quick ? 0.5 : 1;
  const daemon = await BenchDaemon.start();
  try {
    await daemon.launch(loadContainer, { privileged: true, config: { 'user.foo': fooValue } });
    await daemon.launch(bystander, { privileged: true, config: { 'user.foo': fooValue } });
    pin(daemon.pid, '0');
    const load = (path: string, expectBody: string | null, runSeconds = seconds, warmup = warmupSeconds) =>
      loadRun(daemon, {
        container: loadContainer,
        socketPath: '/dev/apollo/sock',
        serverPid: daemon.pid,
        reconnect: false,
        seconds: runSeconds,
        warmupSeconds: warmup,
        path,
        expectBody,
      });
    const neighbour = () =>
      loadRun(daemon, {
        container: bystander,
        socketPath: '/dev/apollo/sock',
        serverPid: daemon.pid,
        reconnect: false,
        seconds,
        warmupSeconds: 0.5,
        connections: 1,
      });
    /** The bystander measured while `background` runs for longer on either side of it. */
    const beside = async (background: Promise<LoadSample>): Promise<LoadSample> => {
      await new Promise((resolve) => setTimeout(resolve, (warmupSeconds + 1) * 1000));
      const sample = await neighbour();
      await background;
      return sample;
    };

    const samples: { tokens: LoadSample[]; gets: LoadSample[] } = { tokens: [], gets: [] };
    const neighbours: Record<Neighbour, LoadSample[]> = { alone: [], tokens: [], gets: [], 'limited tokens': [], 'limited gets': [] };
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? (['tokens', 'gets'] as const) : (['gets', 'tokens'] as const);
      for (const side of order) {
        const sample = side === 'tokens' ? await load(tokenPath, null) : await load('/1.0/config/user.foo', fooValue);
        if (sample.errors > 0) throw new Error(`identity ${side}: ${sample.errors} errors`);
        samples[side].push(sample);
        ctx.log(
          `identity round ${round + 1}/${rounds} ${side}: ${Math.round(sample.requests_per_second)} req/s, p99 ${sample.latency_p99_ms} ms, ${sample.server_cpu_us_per_request.toFixed(1)} µs CPU/req`,
        );
      }
      const neighbourOrder: readonly Neighbour[] = round % 2 === 0 ? ['alone', 'tokens', 'gets'] : ['gets', 'tokens', 'alone'];
      for (const beside_ of neighbourOrder) {
        const long = seconds + warmupSeconds + 3;
        const sample =
          beside_ === 'alone'
            ? await neighbour()
            : await beside(beside_ === 'tokens' ? load(tokenPath, null, long, 0) : load('/1.0/config/user.foo', fooValue, long, 0));
        if (sample.errors > 0) throw new Error(`identity bystander ${beside_}: ${sample.errors} errors`);
        neighbours[beside_].push(sample);
        ctx.log(`identity round ${round + 1}/${rounds} bystander (${beside_}): ${Math.round(sample.requests_per_second)} req/s`);
      }
    }
    daemon.destroy();
    await limitedRounds(ctx, rounds, seconds, warmupSeconds, neighbours);
    return summarize(samples, neighbours);
  } finally {
    daemon.destroy();
  }
}

/** The bystander beside a token flood and beside a GET flood, on a daemon with the limits as shipped. */
async function limitedRounds(
  ctx: BenchContext,
  rounds: number,
  seconds: number,
  warmupSeconds: number,
  neighbours: Record<Neighbour, LoadSample[]>,
): Promise<void> {
  const daemon = await BenchDaemon.start({ shippedLimits: true });
  try {
    await daemon.launch(loadContainer, { privileged: true, config: { 'user.foo': fooValue } });
    await daemon.launch(bystander, { privileged: true, config: { 'user.foo': fooValue } });
    pin(daemon.pid, '0');
    const long = seconds + warmupSeconds + 3;
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? (['limited tokens', 'limited gets'] as const) : (['limited gets', 'limited tokens'] as const);
      for (const side of order) {
        // The flood's refusals (429) are the point here: its own errors are not counted.
        const background = loadRun(daemon, {
          container: loadContainer,
          socketPath: '/dev/apollo/sock',
          serverPid: daemon.pid,
          reconnect: false,
          seconds: long,
          warmupSeconds: 0,
          ...(side === 'limited tokens' ? { path: tokenPath, expectBody: null } : {}),
        });
        await new Promise((resolve) => setTimeout(resolve, (warmupSeconds + 1) * 1000));
        // 3,000 requests (autocannon then ignores the duration), no warm-up: within the
        // bystander's own request burst (4,096, then 1,024 a second) however fast it is answered.
        const sample = await loadRun(daemon, {
          container: bystander,
          socketPath: '/dev/apollo/sock',
          serverPid: daemon.pid,
          reconnect: false,
          seconds: 1.5,
          warmupSeconds: 0,
          connections: 1,
          maxRequests: 3000,
        });
        const flood = await background;
        if (sample.errors > 0) throw new Error(`identity bystander ${side}: ${sample.errors} errors`);
        neighbours[side].push(sample);
        ctx.log(
          `identity round ${round + 1}/${rounds} bystander (${side}): ${Math.round(sample.requests_per_second)} req/s; the flood: ${Math.round(flood.requests_per_second)} req/s, ${flood.errors} refused`,
        );
      }
    }
  } finally {
    daemon.destroy();
  }
}

function summarize(samples: { tokens: LoadSample[]; gets: LoadSample[] }, neighbours: Record<Neighbour, LoadSample[]>): BenchResult {
  const pick = (list: readonly LoadSample[], field: keyof LoadSample) => list.map((s) => s[field]);
  const value = (list: readonly LoadSample[], field: keyof LoadSample) => median(pick(list, field));
  const paired = (a: readonly LoadSample[], b: readonly LoadSample[], field: keyof LoadSample): Pick<Row, 'ratio' | 'interval'> => {
    const ratios = a.flatMap((s, i) => (b[i] === undefined ? [] : [s[field] / (b[i] as LoadSample)[field]]));
    const interval = medianInterval(ratios);
    return { ratio: median(ratios), ...(interval === undefined ? {} : { interval }) };
  };
  const bystanderMs = (list: readonly LoadSample[]) => 1000 / value(list, 'requests_per_second');
  const rows: Row[] = [
    {
      metric: 'tokens issued',
      value: value(samples.tokens, 'requests_per_second'),
      unit: 'req/s',
      baseline: value(samples.gets, 'requests_per_second'),
      baselineName: 'config GET',
      ...paired(samples.tokens, samples.gets, 'requests_per_second'),
      spread: spread(pick(samples.tokens, 'requests_per_second')),
    },
    {
      metric: 'server CPU per request',
      value: value(samples.tokens, 'server_cpu_us_per_request'),
      unit: 'µs',
      baseline: value(samples.gets, 'server_cpu_us_per_request'),
      baselineName: 'config GET',
      ...paired(samples.tokens, samples.gets, 'server_cpu_us_per_request'),
    },
    {
      metric: 'latency p50',
      value: value(samples.tokens, 'latency_p50_ms'),
      unit: 'ms',
      baseline: value(samples.gets, 'latency_p50_ms'),
      baselineName: 'config GET',
    },
    {
      metric: 'latency p99',
      value: value(samples.tokens, 'latency_p99_ms'),
      unit: 'ms',
      baseline: value(samples.gets, 'latency_p99_ms'),
      baselineName: 'config GET',
    },
    {
      metric: "another container's GET latency while tokens are issued",
      value: bystanderMs(neighbours.tokens),
      unit: 'ms',
      baseline: bystanderMs(neighbours.alone),
      baselineName: 'alone',
      ...invert(paired(neighbours.tokens, neighbours.alone, 'requests_per_second')),
    },
    {
      metric: "another container's GET latency while tokens are issued, against while GETs are made",
      value: bystanderMs(neighbours.tokens),
      unit: 'ms',
      baseline: bystanderMs(neighbours.gets),
      baselineName: 'beside GETs',
      ...invert(paired(neighbours.tokens, neighbours.gets, 'requests_per_second')),
    },
    {
      metric: "another container's GET latency beside a token flood, limits as shipped, against beside a GET flood",
      value: bystanderMs(neighbours['limited tokens']),
      unit: 'ms',
      baseline: bystanderMs(neighbours['limited gets']),
      baselineName: 'beside GETs',
      ...invert(paired(neighbours['limited tokens'], neighbours['limited gets'], 'requests_per_second')),
    },
  ];
  return {
    id: 'identity',
    title: 'Identity tokens (issue 19)',
    method:
      `\`GET ${tokenPath}\` (an ES256 signature with jose on Web Crypto each) against \`GET /1.0/config/user.foo\`, ` +
      'alternating round by round, each from 10 kept-alive connections of a privileged container (autocannon, pinned to core 1; ' +
      'the daemon pinned to core 0, its request and token rate limits off (`--rate-limit 0 --token-rate 0`: its capacity, not its limiter), log level warn, so no line per token). ' +
      "Then another container's GETs on one kept-alive connection (closed loop: its mean latency is the inverse of its rate) " +
      'alone, while the first issues tokens, and while it makes config GETs on the same 10 connections; then, on a daemon with the ' +
      'limits as shipped (1024 requests and 16 tokens a second per container), beside the same token flood (all but 16 tokens a second ' +
      'refused with 429) and beside the same GET flood (refused past 1024 a second), there 3,000 GETs a round, within its own burst of 4,096. ' +
      'Ratios are the medians of ' +
      'round-by-round ratios (a latency ratio above 1 is slower), with 95% intervals.',
    rows,
    notes: [loadNote([...samples.tokens, ...samples.gets])],
    raw: { samples, neighbours },
  };
}

/** A ratio of rates as a ratio of (closed-loop) latencies. */
function invert(row: Pick<Row, 'ratio' | 'interval'>): Pick<Row, 'ratio' | 'interval'> {
  return {
    ...(row.ratio === undefined ? {} : { ratio: 1 / row.ratio }),
    ...(row.interval === undefined ? {} : { interval: [1 / row.interval[1], 1 / row.interval[0]] as const }),
  };
}
