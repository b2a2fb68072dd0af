/**
 * Profiles the daemon under one benchmark's load: `node dist-bench/profile.js
 * [keepalive|reconnect] [SECONDS]` (after `npm run bench` has built it). The daemon runs
 * with --cpu-prof; the summary lists the functions with the most self time, and the
 * .cpuprofile file is kept in dist-bench/ for Chrome DevTools.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fooValue, loadContainer, loadDaemon } from './cases/throughput.js';
import { installCleanupHooks, tempDir } from './lib/cleanup.js';
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

async function main(): Promise<void> {
  const mode = process.argv[2] === 'keepalive' ? 'keepalive' : 'reconnect';
  const seconds = Number(process.argv[3] ?? 5);
  installCleanupHooks();
  const { dir: profileDir } = tempDir('devapollo-profile-');
  const daemon = await BenchDaemon.start({ nodeArgs: ['--cpu-prof', '--cpu-prof-dir', profileDir] });
  try {
    await daemon.launch(loadContainer, { privileged: true, config: { 'user.foo': fooValue } });
    pin(daemon.pid, '0');
    const sample = await loadDaemon(daemon, mode === 'reconnect', seconds, 1);
    process.stdout.write(
      `${mode}: ${Math.round(sample.requests_per_second)} req/s, ${sample.server_cpu_us_per_request.toFixed(1)} µs CPU/req (profiling slows both)\n`,
    );
    await daemon.stop();
  } finally {
    daemon.destroy();
  }
  const file = fs.readdirSync(profileDir).find((f) => f.endsWith('.cpuprofile'));
  if (file === undefined) throw new Error(`no profile in ${profileDir}`);
  // Kept in dist-bench/ (git-ignored); the temporary directory goes with the run.
  const kept = path.join(repoRoot, 'dist-bench', `daemon-${mode}.cpuprofile`);
  fs.copyFileSync(path.join(profileDir, file), kept);
  const profile = JSON.parse(fs.readFileSync(kept, 'utf8')) as CpuProfile;
  process.stdout.write(`${summarize(profile, 30).join('\n')}\n\nprofile: ${kept}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`Error: ${(error as Error).stack ?? String(error)}\n`);
  process.exitCode = 1;
});
