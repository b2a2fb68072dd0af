/**
 * Issue 18: keep-alive throughput of one daemon that is never restarted, fresh and then
 * after its history: N launches and deletes (N = 200, then 2,000 in all, by default),
 * then minutes of mixed load (config sets, launches and deletes, admin reads, and 50
 * containers each holding an event stream and making GETs), each time against a bare
 * node:http server measured in the same interleaved rounds. What counts is each phase's
 * ratio to the bare server divided by the fresh daemon's ratio ("bare-adjusted"): the
 * machine's own drift over the run cancels out of it. Target: >= 0.95x after any history.
 *
 * The containers of the history are deleted again before each measurement: the daemon
 * then serves what it served fresh (the load container alone), so whatever differs is
 * what the history left behind.
 */
import path from 'node:path';
import type { Agent } from '../lib/agent.js';
import { tempDir } from '../lib/cleanup.js';
import { agentScript, type BenchContext, installAgent } from '../lib/context.js';
import { BenchDaemon, launchMany } from '../lib/daemon.js';
import { cpuSplit, pin } from '../lib/proc.js';
import type { BenchResult, Row } from '../lib/report.js';
import { median, medianInterval, spread } from '../lib/stats.js';
import { etagOf, fooValue, type LoadSample, loadContainer, loadNote, loadRun, startBaselineServer } from './throughput.js';

/** Containers that run the mixed load's guest agents. */
const mixedContainers = 50;

interface Phase {
  readonly name: string;
  readonly devapollo: LoadSample[];
  readonly baseline: LoadSample[];
  /** What happened in the phase before its rounds, for the notes. */
  readonly history: string;
  /**
   * The daemon's own CPU time while the bare server's rounds ran, in ms per second of
   * round: both servers share core 0, so a daemon busy meanwhile slows the bare server.
   */
  readonly daemonBusyDuringBaseline: number[];
}

export async function runHistory(ctx: BenchContext): Promise<BenchResult> {
  const counts = ctx.history ?? (ctx.quick ? [20, 100] : [200, 2000]);
  const mixedSeconds = Math.round((ctx.mixedMinutes ?? (ctx.quick ? 0.5 : 10)) * 60);
  const rounds = ctx.rounds ?? (ctx.quick ? 3 : 9);
  const seconds = ctx.quick ? 2 : 3;
  const warmupSeconds = ctx.quick ? 0.5 : 1;
  const daemon = await BenchDaemon.start();
  const tmp = tempDir('devapollo-bench-history-', { worldReadable: true });
  try {
    await daemon.launch(loadContainer, { privileged: true, config: { 'user.foo': fooValue } });
    const etag = await etagOf(daemon);
    const baselineSocket = path.join(tmp.dir, 'baseline.sock');
    const baseline = await startBaselineServer(baselineSocket, etag);
    pin(daemon.pid, '0');
    const sides = {
      devapollo: { socketPath: '/dev/apollo/sock', serverPid: daemon.pid },
      baseline: { socketPath: baselineSocket, serverPid: baseline.pid as number },
    };
    // Warm both sides up before "fresh" is measured, long enough for V8 to have optimized
    // the request path: a daemon measured while it is still warming up makes every later
    // phase look better than fresh (a quick run with 1.5 s of it had fresh at 0.29x).
    for (const side of Object.values(sides)) {
      await loadRun(daemon, { container: loadContainer, ...side, reconnect: false, seconds: ctx.quick ? 4 : 8, warmupSeconds });
    }

    const phases: Phase[] = [];
    const measure = async (name: string, history: string) => {
      const phase: Phase = { name, devapollo: [], baseline: [], history, daemonBusyDuringBaseline: [] };
      for (let round = 0; round < rounds; round++) {
        const order = round % 2 === 0 ? (['devapollo', 'baseline'] as const) : (['baseline', 'devapollo'] as const);
        for (const side of order) {
          const cpuBefore = cpuSplit(daemon.pid);
          const started = process.hrtime.bigint();
          const sample = await loadRun(daemon, { container: loadContainer, ...sides[side], reconnect: false, seconds, warmupSeconds });
          if (sample.errors > 0) throw new Error(`history ${name} ${side}: ${sample.errors} errors`);
          phase[side].push(sample);
          if (side === 'baseline') {
            const cpuAfter = cpuSplit(daemon.pid);
            const busy = cpuAfter.user + cpuAfter.system - cpuBefore.user - cpuBefore.system;
            phase.daemonBusyDuringBaseline.push((busy * 1000) / (Number(process.hrtime.bigint() - started) / 1e9));
          }
        }
        const d = phase.devapollo.at(-1) as LoadSample;
        const b = phase.baseline.at(-1) as LoadSample;
        ctx.log(
          `history ${name} round ${round + 1}/${rounds}: ${Math.round(d.requests_per_second)} against ${Math.round(b.requests_per_second)} req/s ` +
            `(${(d.requests_per_second / b.requests_per_second).toFixed(2)}x), ${d.server_cpu_us_per_request.toFixed(1)} against ${b.server_cpu_us_per_request.toFixed(1)} µs CPU/req; ` +
            `the daemon busy ${(phase.daemonBusyDuringBaseline.at(-1) ?? 0).toFixed(1)} ms/s during the bare server's round`,
        );
      }
      phases.push(phase);
    };

    await measure('fresh', 'a new daemon serving the load container only');
    let done = 0;
    for (const count of counts) {
      const started = Date.now();
      await churn(daemon, `h${done}-`, count - done);
      const took = (Date.now() - started) / 1000;
      ctx.log(`history: ${count - done} launches and deletes in ${took.toFixed(0)} s (${count} in all)`);
      done = count;
      await measure(
        `after ${count.toLocaleString('en-US')} launches and deletes`,
        `${count.toLocaleString('en-US')} containers launched and deleted in all`,
      );
    }
    if (mixedSeconds > 0) {
      const summary = await mixedLoad(ctx, daemon, tmp.dir, mixedSeconds);
      await measure(`after ${formatDuration(mixedSeconds)} of mixed load`, summary);
    }
    await baseline.stop();
    return summarize(phases, { counts, mixedSeconds, rounds, seconds });
  } finally {
    daemon.destroy();
    tmp.remove();
  }
}

/** Launches `count` containers (4 at a time, in batches of 100) and deletes each again. */
async function churn(daemon: BenchDaemon, prefix: string, count: number): Promise<void> {
  for (let start = 0; start < count; start += 100) {
    const names = Array.from({ length: Math.min(100, count - start) }, (_, i) => `${prefix}${start + i}`);
    const launched = await launchMany(daemon, names, 4, (name) => ({ 'user.foo': name, 'user.meta-data': 'local-hostname: x' }));
    if (launched.error !== undefined) throw new Error(`history: ${launched.error}`);
    await deleteAll(daemon, names);
  }
}

async function deleteAll(daemon: BenchDaemon, names: readonly string[]): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < names.length) {
      const name = names[next++] as string;
      await daemon.admin('DELETE', `/1.0/containers/${name}?force=true`);
      daemon.inits.delete(name);
    }
  };
  await Promise.all(Array.from({ length: 4 }, worker));
}

/**
 * The mixed load: 50 containers, each with a guest agent (an event stream and GETs), and
 * meanwhile, from the admin API, a config set every 20 ms, a launch and delete in turn,
 * and reads of the container list and the status. Deletes the 50 at the end.
 */
export async function mixedLoad(ctx: BenchContext, daemon: BenchDaemon, dir: string, seconds: number): Promise<string> {
  const script = installAgent(dir, agentScript('guest-mix'), 'guest-mix.mjs');
  const names = Array.from({ length: mixedContainers }, (_, i) => `mix${String(i + 1).padStart(2, '0')}`);
  const launched = await launchMany(daemon, names, 4, (name) => ({ 'user.foo': name }));
  if (launched.error !== undefined) throw new Error(`history mixed load: ${launched.error}`);
  const agents: Agent[] = names.map((name) =>
    daemon.spawnIn(name, `guest load in ${name}`, ['taskset', '-c', '1', process.execPath, script, JSON.stringify({ pauseMs: 20 })]),
  );
  for (const agent of agents) await agent.expect('ready', 120_000);
  ctx.log(`history: mixed load for ${formatDuration(seconds)} (${mixedContainers} containers with an event stream and GETs each)`);
  const deadline = Date.now() + seconds * 1000;
  let sets = 0;
  let churned = 0;
  let reads = 0;
  const setter = async () => {
    for (let i = 0; Date.now() < deadline; i++) {
      await daemon.setConfig(names[i % names.length] as string, { 'user.bench': String(i) });
      sets++;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  const launcher = async () => {
    for (let i = 0; Date.now() < deadline; i++) {
      const name = `mixc${i}`;
      await daemon.launch(name, { config: { 'user.foo': name } });
      await daemon.admin('DELETE', `/1.0/containers/${name}?force=true`);
      daemon.inits.delete(name);
      churned++;
    }
  };
  const reader = async () => {
    while (Date.now() < deadline) {
      await daemon.admin('GET', '/1.0/containers');
      await daemon.status();
      reads += 2;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };
  await Promise.all([setter(), launcher(), reader()]);
  let requests = 0;
  let events = 0;
  let errors = 0;
  for (const agent of agents) {
    await agent.stop();
    const [, r = '0', e = '0', x = '0'] = (await agent.nextLine(10_000)).split(' ');
    requests += Number(r);
    events += Number(e);
    errors += Number(x);
  }
  if (errors > 0) throw new Error(`history mixed load: ${errors} guest requests failed`);
  await deleteAll(daemon, names);
  return (
    `${formatDuration(seconds)}: ${mixedContainers} containers made ${requests.toLocaleString('en-US')} guest GETs and heard ${events.toLocaleString('en-US')} events; ` +
    `${sets.toLocaleString('en-US')} config sets, ${churned.toLocaleString('en-US')} more launches and deletes, ${reads.toLocaleString('en-US')} admin reads; the 50 deleted before the rounds`
  );
}

function formatDuration(seconds: number): string {
  return seconds >= 120 ? `${Math.round(seconds / 60)} minutes` : `${seconds} s`;
}

function summarize(
  phases: readonly Phase[],
  how: { counts: readonly number[]; mixedSeconds: number; rounds: number; seconds: number },
): BenchResult {
  const fresh = phases[0] as Phase;
  const ratioOf = (p: Phase, field: 'requests_per_second' | 'server_cpu_us_per_request') =>
    median(p.devapollo.map((s) => s[field])) / median(p.baseline.map((s) => s[field]));
  const paired = (p: Phase, field: 'requests_per_second' | 'server_cpu_us_per_request') =>
    p.devapollo.map((d, i) => d[field] / (p.baseline[i]?.[field] ?? Number.NaN));
  const freshRatio = ratioOf(fresh, 'requests_per_second');
  const freshPaired = median(paired(fresh, 'requests_per_second'));
  const rows: Row[] = [];
  for (const phase of phases) {
    const rps = median(phase.devapollo.map((s) => s.requests_per_second));
    const rpsBase = median(phase.baseline.map((s) => s.requests_per_second));
    const ratios = paired(phase, 'requests_per_second');
    const interval = medianInterval(ratios);
    rows.push({
      metric: `${phase.name}: throughput`,
      value: rps,
      unit: 'req/s',
      baseline: rpsBase,
      baselineName: 'node:http',
      ratio: rps / rpsBase,
      spread: Math.max(spread(phase.devapollo.map((s) => s.requests_per_second)), spread(phase.baseline.map((s) => s.requests_per_second))),
    });
    rows.push({
      metric: `${phase.name}: throughput, round by round`,
      unit: '',
      ratio: median(ratios),
      ...(interval === undefined ? {} : { interval }),
    });
    rows.push({
      metric: `${phase.name}: CPU per request`,
      value: median(phase.devapollo.map((s) => s.server_cpu_us_per_request)),
      unit: 'µs',
      baseline: median(phase.baseline.map((s) => s.server_cpu_us_per_request)),
      baselineName: 'node:http',
      ratio: ratioOf(phase, 'server_cpu_us_per_request'),
    });
    if (phase !== fresh) {
      const adjusted = rps / rpsBase / freshRatio;
      rows.push({
        metric: `${phase.name}: against fresh, bare-adjusted`,
        unit: '',
        ratio: adjusted,
        target: '>= 0.95x',
        met: adjusted >= 0.95,
      });
      rows.push({ metric: `${phase.name}: against fresh, bare-adjusted, round by round`, unit: '', ratio: median(ratios) / freshPaired });
    }
  }
  const counts = how.counts.map((n) => n.toLocaleString('en-US')).join(' and ');
  return {
    id: 'history',
    title: "Throughput after the daemon's history (issue 18)",
    method:
      'One daemon, never restarted, measured fresh and then after its history, each time in ' +
      `${how.rounds} rounds of ${how.seconds} s alternating with a bare \`node:http\` server (the keep-alive benchmark's load: ` +
      '`GET /1.0/config/user.foo` from inside a privileged container, autocannon, 10 kept-alive connections, the server on core 0 and ' +
      `the load on core 1, rate limit off). The history: containers launched and deleted through the admin API (${counts} in all, ` +
      `4 at a time), then ${how.mixedSeconds > 0 ? formatDuration(how.mixedSeconds) : 'no'} of mixed load (50 unprivileged containers each holding an event stream ` +
      'and making GETs of config keys, the key list, meta-data and /1.0, every tenth on a new connection; meanwhile a config set every 20 ms, ' +
      "launches and deletes one after another, admin reads of the list and the status). The history's containers are deleted before each " +
      "phase's rounds. \"Bare-adjusted\" is the phase's ratio to the bare server divided by the fresh daemon's: a drift of the machine " +
      'over the run cancels out of it.',
    rows,
    notes: [
      ...phases.map(
        (p) =>
          `${p.name}: ${p.history}; throughput ratio round by round ${paired(p, 'requests_per_second')
            .map((r) => `${r.toFixed(2)}x`)
            .join(', ')}; the daemon's own CPU while the bare server's rounds ran (the same core), median ` +
          `${median(p.daemonBusyDuringBaseline).toFixed(1)} ms a second.`,
      ),
      loadNote(phases.flatMap((p) => [...p.devapollo, ...p.baseline])),
    ],
    raw: phases,
  };
}
