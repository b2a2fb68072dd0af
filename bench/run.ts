/**
 * `npm run bench`: every benchmark of issues 3, 4, 7, 19 and 20, each side by side with its
 * baseline in the same run. Prints a table; a full run (not --quick) also merges its
 * figures into docs/performance.json and regenerates docs/PERFORMANCE.md from it.
 *
 *   npm run bench                                   # everything (about 10 minutes)
 *   npm run bench -- --quick                        # a few minutes; prints only
 *   npm run bench -- --only keepalive,cold-start    # some benchmarks
 *   npm run bench -- --only scale --containers 2000 # another container count
 *   npm run bench -- --only keepalive --rounds 51   # more rounds, a narrower interval
 *   npm run bench -- --only history --history 200,2000 --mixed-minutes 10
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { runColdStart } from './cases/cold-start.js';
import { runEvents } from './cases/events.js';
import { runGuestWrites } from './cases/guest-writes.js';
import { runHistory } from './cases/history.js';
import { runIdentity } from './cases/identity.js';
import { runScale } from './cases/scale.js';
import { runThroughput, type ThroughputMode } from './cases/throughput.js';
import { installCleanupHooks } from './lib/cleanup.js';
import type { BenchContext } from './lib/context.js';
import { repoRoot } from './lib/daemon.js';
import { machine } from './lib/proc.js';
import { type BenchResult, benchmarkOrder, type PerformanceFile, renderMarkdown, renderTable, storeResults } from './lib/report.js';

const usage = `usage: npm run bench -- [--quick] [--only ${benchmarkOrder.join(',')}] [--containers N] [--rounds N] [--history N,N...] [--mixed-minutes M] [--no-write] [--render]`;

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      only: { type: 'string' },
      containers: { type: 'string' },
      rounds: { type: 'string' },
      history: { type: 'string' },
      'mixed-minutes': { type: 'string' },
      'no-write': { type: 'boolean', default: false },
      render: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${usage}\n`);
    return 0;
  }
  if (values.render) {
    // Only the document: docs/PERFORMANCE.md again from docs/performance.json, nothing measured.
    const data = JSON.parse(fs.readFileSync(path.join(repoRoot, 'docs/performance.json'), 'utf8')) as PerformanceFile;
    fs.writeFileSync(path.join(repoRoot, 'docs/PERFORMANCE.md'), renderMarkdown(data));
    return 0;
  }
  const selected = values.only === undefined ? benchmarkOrder : values.only.split(',').map((s) => s.trim());
  const unknown = selected.filter((id) => !benchmarkOrder.includes(id));
  if (unknown.length > 0) {
    process.stderr.write(`Error: unknown benchmark ${unknown.join(', ')}\n${usage}\n`);
    return 2;
  }
  const containers = values.containers === undefined ? undefined : Number(values.containers);
  if (containers !== undefined && !(Number.isInteger(containers) && containers >= 2)) {
    process.stderr.write(`Error: --containers must be an integer of at least 2\n${usage}\n`);
    return 2;
  }
  const rounds = values.rounds === undefined ? undefined : Number(values.rounds);
  if (rounds !== undefined && !(Number.isInteger(rounds) && rounds >= 1 && rounds <= 500)) {
    process.stderr.write(`Error: --rounds must be an integer from 1 to 500\n${usage}\n`);
    return 2;
  }
  const history = values.history === undefined ? undefined : values.history.split(',').map((s) => Number(s.trim()));
  if (history !== undefined && !history.every((n, i) => Number.isInteger(n) && n >= 1 && n <= 100_000 && n > (history[i - 1] ?? 0))) {
    process.stderr.write(
      `Error: --history must be increasing launch counts from 1 to 100000, comma-separated, not ${JSON.stringify(values.history)}\n${usage}\n`,
    );
    return 2;
  }
  const mixedMinutes = values['mixed-minutes'] === undefined ? undefined : Number(values['mixed-minutes']);
  if (mixedMinutes !== undefined && !(Number.isFinite(mixedMinutes) && mixedMinutes >= 0 && mixedMinutes <= 600)) {
    process.stderr.write(
      `Error: --mixed-minutes must be a number of minutes from 0 to 600, not ${JSON.stringify(values['mixed-minutes'])}\n${usage}\n`,
    );
    return 2;
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write('Error: the benchmarks start real containers: run them as root\n');
    return 2;
  }

  installCleanupHooks();
  const started = Date.now();
  const info = machine();
  const ctx: BenchContext = {
    quick: values.quick,
    containers,
    rounds,
    history,
    mixedMinutes,
    log: (message) => process.stderr.write(`[${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${message}\n`),
  };
  const results: BenchResult[] = [];
  const failures: string[] = [];
  const attempt = async (ids: readonly string[], run: () => Promise<BenchResult[]>) => {
    if (!ids.some((id) => selected.includes(id))) return;
    ctx.log(`--- ${ids.join(', ')}`);
    try {
      results.push(...(await run()));
    } catch (error) {
      failures.push(`${ids.join(', ')}: ${(error as Error).stack ?? String(error)}`);
      ctx.log(`${ids.join(', ')} failed: ${(error as Error).message}`);
    }
  };

  const modes = (['keepalive', 'reconnect'] as const).filter((m) => selected.includes(m)) as ThroughputMode[];
  await attempt(modes, () => runThroughput(ctx, modes));
  await attempt(['cold-start'], async () => [await runColdStart(ctx)]);
  await attempt(['events'], async () => [await runEvents(ctx)]);
  await attempt(['scale'], async () => [await runScale(ctx)]);
  await attempt(['history'], async () => [await runHistory(ctx)]);
  await attempt(['identity'], async () => [await runIdentity(ctx)]);
  await attempt(['guest-writes'], async () => [await runGuestWrites(ctx)]);

  if (results.length > 0) process.stdout.write(`${renderTable(results)}\n`);
  const seconds = Math.round((Date.now() - started) / 1000);
  const argv = process.argv.slice(2);
  const command = `npm run bench${argv.length > 0 ? ` -- ${argv.join(' ')}` : ''}`;
  const run = {
    command,
    date: `${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC`,
    commit: gitCommit(),
    quick: values.quick,
    machine: info,
    seconds,
  };
  if (results.length > 0) {
    const jsonFile =
      values.quick || values['no-write'] ? path.join(repoRoot, 'dist-bench/last-run.json') : path.join(repoRoot, 'docs/performance.json');
    const stored = storeResults(jsonFile, results, run);
    if (!values.quick && !values['no-write']) {
      fs.writeFileSync(path.join(repoRoot, 'docs/PERFORMANCE.md'), renderMarkdown(stored));
      ctx.log('wrote docs/performance.json and docs/PERFORMANCE.md');
    } else {
      ctx.log(`wrote ${path.relative(repoRoot, jsonFile)} (docs/ are written by full runs only)`);
    }
  }
  ctx.log(`done in ${seconds} s`);
  for (const failure of failures) process.stderr.write(`Error: ${failure}\n`);
  return failures.length > 0 ? 1 : 0;
}

/** The commit measured, marked "+changes" when the work tree differs from it. */
function gitCommit(): string {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repoRoot, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no', '--', 'src', 'scripts', 'libexec', 'bin'], {
      cwd: repoRoot,
      encoding: 'utf8',
    }).trim();
    return dirty === '' ? commit : `${commit}+changes`;
  } catch {
    return 'unknown';
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`Error: ${(error as Error).stack ?? String(error)}\n`);
    process.exitCode = 1;
  },
);
