/**
 * What a benchmark reports, and how: a table on the terminal, docs/performance.json (the
 * raw figures, one entry per benchmark, each with the run that produced it) and
 * docs/PERFORMANCE.md, generated from that JSON.
 */
import fs from 'node:fs';
import path from 'node:path';
import Table from 'cli-table3';
import { round } from './stats.js';

/** One line of a benchmark's results: devapollo's figure, its baseline, and the ratio. */
export interface Row {
  readonly metric: string;
  readonly value: number;
  readonly unit: string;
  readonly baseline?: number;
  readonly baselineName?: string;
  /** value / baseline unless said otherwise. */
  readonly ratio?: number;
  /** e.g. ">= 0.9x", "< 150 MiB". */
  readonly target?: string;
  readonly met?: boolean;
  /** (max - min) / median of the samples behind `value`, when there were several. */
  readonly spread?: number;
}

export interface BenchResult {
  readonly id: string;
  readonly title: string;
  /** What was measured, how, and against what, in a few sentences. */
  readonly method: string;
  readonly rows: Row[];
  readonly notes: string[];
  readonly raw: unknown;
}

export interface RunInfo {
  readonly command: string;
  readonly date: string;
  readonly quick: boolean;
  /** The commit measured ("+changes" when src/, scripts/, libexec/ or bin/ differed from it). */
  readonly commit?: string;
  readonly machine: Record<string, string | number>;
  readonly seconds?: number;
}

export interface StoredResult extends BenchResult {
  readonly run: RunInfo;
}

export interface PerformanceFile {
  readonly generated_by: string;
  readonly benchmarks: Record<string, StoredResult>;
}

/** Benchmarks in the order the documents show them. */
export const benchmarkOrder = ['keepalive', 'reconnect', 'cold-start', 'events', 'scale'];

function formatNumber(value: number | undefined, unit = ''): string {
  if (value === undefined || Number.isNaN(value)) return '–';
  const digits = Math.abs(value) >= 100 ? 0 : Math.abs(value) >= 10 ? 1 : 2;
  const text = round(value, digits).toLocaleString('en-US');
  return unit === '' ? text : `${text} ${unit}`;
}

function verdict(row: Row): string {
  if (row.met === undefined) return '';
  return row.met ? 'met' : 'MISSED';
}

function ratioText(row: Row): string {
  return row.ratio === undefined ? '' : `${round(row.ratio, 2).toFixed(2)}x`;
}

/** The results as a terminal table. */
export function renderTable(results: readonly BenchResult[]): string {
  const table = new Table({
    head: ['benchmark', 'metric', 'devapollo', 'baseline', 'ratio', 'target', '', 'spread'],
    style: { head: [], border: [] },
  });
  for (const result of results) {
    for (const row of result.rows) {
      table.push([
        result.id,
        row.metric,
        formatNumber(row.value, row.unit),
        row.baseline === undefined ? '' : `${formatNumber(row.baseline, row.unit)}${row.baselineName ? ` (${row.baselineName})` : ''}`,
        ratioText(row),
        row.target ?? '',
        verdict(row),
        row.spread === undefined ? '' : `±${Math.round((row.spread * 100) / 2)}%`,
      ]);
    }
  }
  return table.toString();
}

/** Merges this run's results into docs/performance.json (other benchmarks' entries stay). */
export function storeResults(file: string, results: readonly BenchResult[], run: RunInfo): PerformanceFile {
  let current: PerformanceFile = { generated_by: 'npm run bench', benchmarks: {} };
  try {
    current = JSON.parse(fs.readFileSync(file, 'utf8')) as PerformanceFile;
  } catch {
    // First run.
  }
  const benchmarks: Record<string, StoredResult> = { ...current.benchmarks };
  for (const result of results) benchmarks[result.id] = { ...result, run };
  const next: PerformanceFile = { generated_by: 'npm run bench', benchmarks };
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, `${stringify(next)}\n`);
  return next;
}

/** Indented JSON with every array of numbers on one line (there are tens of thousands of samples). */
function stringify(value: unknown): string {
  return JSON.stringify(value, null, 2).replace(/\[\s*(-?[\d.e+-]+(?:,\s*-?[\d.e+-]+)*)\s*\]/g, (_, numbers: string) =>
    `[${numbers.split(/,\s*/).join(',')}]`,
  );
}

function markdownTable(rows: readonly Row[]): string {
  const lines = ['| metric | devapollo | baseline | ratio | target | | spread |', '|---|---:|---:|---:|---|---|---:|'];
  for (const row of rows) {
    const baseline =
      row.baseline === undefined ? '' : `${formatNumber(row.baseline, row.unit)}${row.baselineName ? ` (${row.baselineName})` : ''}`;
    const spread = row.spread === undefined ? '' : `±${Math.round((row.spread * 100) / 2)}%`;
    lines.push(
      `| ${row.metric} | ${formatNumber(row.value, row.unit)} | ${baseline} | ${ratioText(row)} | ${row.target ?? ''} | ${verdict(row)} | ${spread} |`,
    );
  }
  return lines.join('\n');
}

/** docs/PERFORMANCE.md, entirely from the JSON file. */
export function renderMarkdown(data: PerformanceFile): string {
  const entries = benchmarkOrder.map((id) => data.benchmarks[id]).filter((e): e is StoredResult => e !== undefined);
  const out: string[] = [
    '# Performance',
    '',
    '<!-- Generated by `npm run bench` from docs/performance.json: do not edit by hand. -->',
    '',
    'Each benchmark runs devapollo side by side with a baseline in the same run, in alternating',
    'rounds, and reports the median of the rounds and the ratio. The machine has two cores:',
    'the daemon (or the baseline server) is pinned to core 0 and the load generator to core 1',
    "(`taskset`), and the daemon's own CPU time per request is reported too, read from",
    '`/proc/PID/stat` around each round. Other work (other engineers\' test suites) ran on the',
    'same machine during these runs, on both cores: throughput moved by a third between rounds',
    'of the same server. "spread" is half the distance between the slowest and the fastest round',
    'relative to the median; the CPU time per request is the steadier figure, because it does not',
    "depend on how much of a core the load generator got. Targets are from issues 3, 4 and 7; no",
    'test asserts on time.',
    '',
    'Run it: `npm run bench` (all of it, about 10 minutes), `npm run bench -- --quick` (a few',
    'minutes: fewer rounds, 1,000 containers; it prints but does not write these files),',
    '`npm run bench -- --only keepalive,reconnect,cold-start,events,scale`, `--containers N`.',
    '`node dist-bench/profile.js keepalive|reconnect` profiles the daemon under that load',
    '(`--cpu-prof`) and lists the functions with the most self time.',
    '',
    '## What the figures changed',
    '',
    '- Request path (`src/server/http/router.ts`): replies built without an object spread',
    '  (a V8 slow path, about 1 µs a reply), string bodies written in one write with the',
    '  headers instead of a writev, synchronous handlers not awaited, parameterless routes',
    '  found with one map lookup. Keep-alive, daemon CPU per request: 24.8 µs before, 18.2 µs',
    '  after, against 18.8 and 17.7 µs for the bare server in the same runs; throughput 0.79x',
    '  before, 0.94x after. Per-request metrics came in later (a `close` listener on every',
    '  response, about 4 µs a request); they are now reported right after the answer is',
    '  written instead: CPU per request against the bare server 1.49x and 1.52x before, 1.39x',
    '  and 1.39x after, in two interleaved pairs of runs.',
    '- Guest CLI cold start (`scripts/bundle-guest.js`, `src/client/api-client.ts`): the full',
    '  CLI (yargs, yaml, cli-table3, chalk) is embedded as a string and compiled only for',
    "  commands other than `get`, and requests no longer let Node's agent run its IPv6",
    '  regular expression on the Host header. `get KEY`: 170.7 ms before, 148.8 ms after,',
    '  against 146.6 ms for the minimal Node script in the same run: 1.16x before, 1.01x after.',
    '- Per-connection identity (`src/server/kernel/peer.ts`) was profiled and left as it is:',
    '  SO_PEERCRED, SO_PEERPIDFD, PIDFD_GET_PID_NAMESPACE, NS_GET_ID, a poll of the pidfd and',
    '  two closes, about 11 µs in a tight loop and 20 to 25 µs between real connections. Every',
    '  one of them is needed to name the peer without trusting a pid, and nothing is cached:',
    '  this is most of what a new connection costs devapollo over a bare server.',
    '',
    '## Left open',
    '',
    '- Throughput against the bare server moved a lot between full runs on this shared',
    '  machine: kept alive 0.57x to 0.94x (target 0.9x), a new connection per request 0.49x',
    '  to 1.06x (target 0.8x; the high figure when the load generator, not the server, was',
    "  the limit). The daemon's CPU per request is steadier: 1.03x to 1.55x of the bare",
    "  server's kept alive, 1.4x to 2.3x per new connection. Kept alive, the gap is what every",
    '  request must do and the bare server does not: check that the instance still runs (a',
    '  poll of its pidfd), admit it under the rate limit, count it in the metrics. Per',
    '  connection it is the identity check above, which is not negotiable.',
    '- RSS at 10,000 containers with 1,000 open connections: 128 to 166 MiB over eight runs,',
    '  over the 150 MiB target in five of them. About 45 MiB of it is the node binary\'s code;',
    '  most of the variation is V8\'s young generation, which grows under the load rounds that',
    '  run before the measurement (in a separate measurement after the same load, starting',
    '  the daemon\'s node with `--max-semi-space-size=2` took it from 105 to 87 MiB). The',
    '  daemon\'s node flags (bin/, src/server/daemon.ts) are outside the benchmark work.',
    '- 10,000 containers against 1, new connections: 0.89x to 1.48x over seven runs. The',
    "  part that does grow is the garbage collector's helper threads (about 7 µs more per",
    '  connection on a heap that holds 10,000 containers); system time and the event loop',
    '  do not grow. The rest of the spread is the machine.',
    '',
  ];
  for (const entry of entries) {
    const m = entry.run.machine;
    out.push(`## ${entry.title}`, '', entry.method, '', markdownTable(entry.rows), '');
    for (const note of entry.notes) out.push(`- ${note}`);
    if (entry.notes.length > 0) out.push('');
    out.push(
      `<sub>\`${entry.run.command}\`, ${entry.run.date}${entry.run.commit ? `, commit ${entry.run.commit}` : ''}${entry.run.quick ? ' (quick run)' : ''}; ${m['os']}, kernel ${m['kernel']}, ` +
        `${m['cores']} × ${m['cpu']}, ${m['memory_gib']} GiB, Node ${m['node']}, load average at start ${m['load_average_at_start']}.</sub>`,
      '',
    );
  }
  return `${out.join('\n').trimEnd()}\n`;
}
