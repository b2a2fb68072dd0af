/**
 * Profiles the daemon under one benchmark's load: `node dist-bench/profile.js
 * [keepalive|reconnect] [SECONDS] [--baseline] [--gc | --perf]` (after `npm run bench` has built
 * it). The daemon (or, with --baseline, the bare node:http server it is compared with)
 * runs with --cpu-prof; the summary lists the functions with the most self time, and the
 * .cpuprofile file is kept in dist-bench/ for Chrome DevTools. With --gc it runs with
 * V8's --trace-gc-nvp instead, and the summary is what the garbage collector did per
 * request while the load was measured: bytes allocated and promoted to the old
 * generation, and collector time on the main thread and on helper threads. With --perf it
 * runs with --perf-basic-prof under `perf record` (Debian's linux-perf) instead, and the
 * summary is CPU time per request by function, the kernel's, V8's and Node's native code
 * included: in microseconds, so that a daemon run and a --baseline run compare directly.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { etagOf, fooValue, loadContainer, loadDaemon, loadRun, startBaselineServer } from './cases/throughput.js';
import { installCleanupHooks, onCleanup, tempDir } from './lib/cleanup.js';
import { BenchDaemon, repoRoot } from './lib/daemon.js';
import { pin } from './lib/proc.js';

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly children?: readonly number[];
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
}

/** Self time per function (name, file, line), in percent of all samples. */
function summarize(profile: CpuProfile, top: number): string[] {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const counts = new Map<string, number>();
  for (const id of profile.samples) {
    const frame = byId.get(id)?.callFrame;
    if (frame === undefined) continue;
    const file = frame.url.replace(/^file:\/\//, '').replace(`${process.cwd()}/`, '');
    const key = `${frame.functionName || '(anonymous)'}  ${file}:${frame.lineNumber + 1}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  const total = profile.samples.length;
  return [...counts.entries()]
    .sort(([, a], [, b]) => b - a)
    .slice(0, top)
    .map(([key, n]) => `${((100 * n) / total).toFixed(1).padStart(5)}%  ${key}`);
}

/** Totals of V8's --trace-gc-nvp lines: one line per collection, name=value pairs. */
function summarizeGc(lines: readonly string[], requests: number): string[] {
  let allocated = 0;
  let promoted = 0;
  let pauseMs = 0;
  let backgroundMs = 0;
  let scavenges = 0;
  let full = 0;
  for (const line of lines) {
    const pairs = new Map([...line.matchAll(/(\S+)=([\d.]+|\w+)/g)].map((m) => [m[1] as string, m[2] as string]));
    const pause = pairs.get('pause');
    if (pause === undefined) continue;
    pauseMs += Number(pause);
    allocated += Number(pairs.get('allocated') ?? 0);
    promoted += Number(pairs.get('promoted') ?? 0);
    for (const [name, value] of pairs) if (name.startsWith('background.')) backgroundMs += Number(value);
    if (pairs.get('gc') === 's') scavenges++;
    else full++;
  }
  const per = (x: number) => x / Math.max(requests, 1);
  return [
    `collections: ${scavenges} scavenges, ${full} full (mark-compact) over ${requests} requests`,
    `allocated: ${(per(allocated) / 1024).toFixed(1)} KiB/req`,
    `promoted to the old generation: ${(per(promoted) / 1024).toFixed(2)} KiB/req`,
    `collector pauses (main thread): ${per(pauseMs * 1000).toFixed(2)} µs/req`,
    `collector work on helper threads: ${per(backgroundMs * 1000).toFixed(2)} µs/req`,
  ];
}

/** `perf record` takes a sample every 500 µs of CPU time of each thread (a fixed period, not a rate it adapts). */
const perfPeriodNs = 500_000;

/**
 * `perf report` of a recording, as CPU time per request by function (`[k]` the kernel,
 * `JS:` JavaScript, the rest V8, Node and libraries), with totals by kind.
 */
function summarizePerf(file: string, requests: number, top: number): string[] {
  const report = execFileSync('perf', ['report', '-i', file, '--no-children', '--sort', 'sym', '-n', '--stdio', '-g', 'none'], {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const perRequest = (samples: number) => (samples * perfPeriodNs) / 1000 / Math.max(requests, 1);
  const bySymbol: [string, number][] = [];
  const byKind = new Map<string, number>();
  for (const line of report.split('\n')) {
    const match = /^\s*[\d.]+%\s+(\d+)\s+(.*\S)\s*$/.exec(line);
    if (match === null) continue;
    const symbol = (match[2] as string).replace(/\s+/g, ' ');
    const micros = perRequest(Number(match[1]));
    bySymbol.push([symbol, micros]);
    const kind = symbol.startsWith('[k]') ? 'kernel' : symbol.includes(' JS:') ? 'JavaScript' : 'V8, Node and libraries (native)';
    byKind.set(kind, (byKind.get(kind) ?? 0) + micros);
  }
  const total = [...byKind.values()].reduce((a, b) => a + b, 0);
  return [
    `CPU per request, all threads: ${total.toFixed(2)} µs`,
    ...[...byKind.entries()].map(([kind, micros]) => `  ${kind}: ${micros.toFixed(2)} µs`),
    '',
    ...bySymbol
      .sort(([, a], [, b]) => b - a)
      .slice(0, top)
      .map(([symbol, micros]) => `${micros.toFixed(3).padStart(7)} µs  ${symbol}`),
  ];
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const baseline = args.includes('--baseline');
  const gc = args.includes('--gc');
  const perf = args.includes('--perf');
  if (perf && gc) throw new Error('--perf and --gc: one at a time');
  if (perf) {
    try {
      execFileSync('perf', ['--version'], { stdio: 'ignore' });
    } catch {
      throw new Error('--perf needs perf (Debian package linux-perf)');
    }
  }
  const positional = args.filter((a) => !a.startsWith('--'));
  const mode = positional[0] === 'keepalive' ? 'keepalive' : 'reconnect';
  const seconds = Number(positional[1] ?? 5);
  installCleanupHooks();
  const { dir: profileDir } = tempDir('devapollo-profile-', { worldReadable: true });
  const nodeArgs = perf ? ['--perf-basic-prof'] : gc ? ['--trace-gc-nvp'] : ['--cpu-prof', '--cpu-prof-dir', profileDir];
  const perfFile = path.join(profileDir, 'perf.data');
  let recorder: ChildProcess | undefined;
  let recorded: Promise<unknown> = Promise.resolve();
  let profiledPid = 0;
  /** node --perf-basic-prof names its JIT code in /tmp/perf-PID.map: removed with the run. */
  const recordPerfOf = (pid: number) => {
    profiledPid = pid;
    onCleanup(() => fs.rmSync(`/tmp/perf-${pid}.map`, { force: true }));
  };
  // The daemon's standard output goes to a file; the baseline's comes back as lines.
  const gcFile = path.join(profileDir, 'gc.log');
  const daemon = await BenchDaemon.start({ nodeArgs: baseline ? [] : nodeArgs, ...(gc && !baseline ? { stdoutFile: gcFile } : {}) });
  const name = baseline ? `baseline-${mode}` : `daemon-${mode}`;
  const gcLines: string[] = [];
  let measuring = false;
  let measuredFrom = 0;
  const onMeasure = (phase: 'start' | 'end'): void => {
    measuring = phase === 'start';
    if (perf && phase === 'start') {
      recorder = spawn('perf', ['record', '-q', '-e', 'cpu-clock', '-c', String(perfPeriodNs), '-p', String(profiledPid), '-o', perfFile], {
        stdio: 'ignore',
      });
      const stop = onCleanup(() => recorder?.kill('SIGKILL'));
      recorded = once(recorder, 'exit').then(stop);
    }
    if (perf && phase === 'end') recorder?.kill('SIGINT');
    if (!baseline && gc) {
      const size = fs.statSync(gcFile).size;
      if (phase === 'start') measuredFrom = size;
      else gcLines.push(...fs.readFileSync(gcFile, 'utf8').slice(measuredFrom).split('\n'));
    }
  };
  try {
    await daemon.launch(loadContainer, { privileged: true, config: { 'user.foo': fooValue } });
    let sample: Awaited<ReturnType<typeof loadRun>>;
    if (baseline) {
      const socketPath = path.join(profileDir, 'baseline.sock');
      const etag = await etagOf(daemon);
      const server = await startBaselineServer(socketPath, etag, nodeArgs);
      server.onLine = (line) => {
        if (measuring) gcLines.push(line);
      };
      const serverPid = server.pid as number;
      if (perf) recordPerfOf(serverPid);
      sample = await loadRun(daemon, {
        container: loadContainer,
        socketPath,
        serverPid,
        reconnect: mode === 'reconnect',
        seconds,
        warmupSeconds: 1,
        onMeasure,
      });
      await server.stop();
    } else {
      if (perf) recordPerfOf(daemon.pid);
      pin(daemon.pid, '0');
      sample = await loadDaemon(daemon, mode === 'reconnect', seconds, 1, onMeasure);
    }
    process.stdout.write(
      `${name}: ${Math.round(sample.requests_per_second)} req/s, ${sample.server_cpu_us_per_request.toFixed(1)} µs CPU/req` +
        `${gc ? '' : ' (profiling slows both)'}\n`,
    );
    if (perf) {
      await recorded;
      process.stdout.write(`${summarizePerf(perfFile, sample.requests, 40).join('\n')}\n`);
      await daemon.stop();
      return;
    }
    await daemon.stop();
    if (gc) {
      process.stdout.write(`${summarizeGc(gcLines, sample.requests).join('\n')}\n`);
      return;
    }
  } finally {
    daemon.destroy();
  }
  const file = fs.readdirSync(profileDir).find((f) => f.endsWith('.cpuprofile'));
  if (file === undefined) throw new Error(`no profile in ${profileDir}`);
  // Kept in dist-bench/ (git-ignored); the temporary directory goes with the run.
  const kept = path.join(repoRoot, 'dist-bench', `${name}.cpuprofile`);
  fs.copyFileSync(path.join(profileDir, file), kept);
  const profile = JSON.parse(fs.readFileSync(kept, 'utf8')) as CpuProfile;
  process.stdout.write(`${summarize(profile, 30).join('\n')}\n\nprofile: ${kept}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`Error: ${(error as Error).stack ?? String(error)}\n`);
  process.exitCode = 1;
});
