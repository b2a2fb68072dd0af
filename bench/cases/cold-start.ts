/**
 * Issue 3 (and issue 7, benchmark 5): the cold start of `devapollo-guest get KEY`, a whole
 * process from spawn to exit inside an unprivileged container, against `curl
 * --unix-socket` and a minimal Node script doing the same GET. Target: within 1.3x of the
 * minimal Node script.
 */
import path from 'node:path';
import { tempDir } from '../lib/cleanup.js';
import { agentScript, agentSource, type BenchContext, installAgent } from '../lib/context.js';
import { BenchDaemon, repoRoot } from '../lib/daemon.js';
import { pin } from '../lib/proc.js';
import type { BenchResult } from '../lib/report.js';
import { median, quantile } from '../lib/stats.js';

const value = 'hello from devapollo';

export async function runColdStart(ctx: BenchContext): Promise<BenchResult> {
  const rounds = ctx.quick ? 15 : 60;
  const daemon = await BenchDaemon.start();
  // The container's root (an unprivileged host uid) must be able to read every file it runs.
  const tools = tempDir('devapollo-bench-cold-', { worldReadable: true });
  try {
    const guest = installAgent(tools.dir, path.join(repoRoot, 'dist/devapollo-guest.cjs'), 'devapollo-guest.cjs');
    const minimal = installAgent(tools.dir, agentSource('minimal-get.cjs'), 'minimal-get.cjs');
    const driver = installAgent(tools.dir, agentScript('cold-start'), 'cold-start.mjs');

    await daemon.launch('bench-cold', { config: { 'user.foo': value } });
    pin(daemon.pid, '0');
    const options = {
      rounds,
      warmup: 3,
      expect: value,
      commands: {
        'devapollo-guest get': [process.execPath, guest, 'get', 'user.foo'],
        'minimal node': [process.execPath, minimal, 'user.foo'],
        curl: ['curl', '-s', '--unix-socket', '/dev/apollo/sock', 'http://apollo/1.0/config/user.foo'],
      },
    };
    ctx.log(`cold start: ${rounds} rounds of each command`);
    const agent = daemon.spawnIn('bench-cold', 'cold-start driver', [
      'taskset',
      '-c',
      '1',
      process.execPath,
      driver,
      JSON.stringify(options),
    ]);
    const times = JSON.parse(await agent.nextLine(600_000)) as Record<string, number[]>;
    await agent.stop();
    const guestMs = times['devapollo-guest get'] ?? [];
    const nodeMs = times['minimal node'] ?? [];
    const curlMs = times['curl'] ?? [];
    const g = median(guestMs);
    const n = median(nodeMs);
    const c = median(curlMs);
    ctx.log(`cold start medians: guest ${g.toFixed(1)} ms, minimal node ${n.toFixed(1)} ms, curl ${c.toFixed(1)} ms`);
    return {
      id: 'cold-start',
      title: 'Cold start of `devapollo-guest get KEY` (issue 3; issue 7, benchmark 5)',
      method:
        `Whole processes, spawn to exit, timed by a driver inside an unprivileged container (pinned to core 1; the daemon to core 0), ` +
        `${rounds} rounds with the three commands interleaved (the order rotates each round) after 3 warm-up rounds; each output is checked ` +
        'byte for byte. `devapollo-guest` is the bundled `dist/devapollo-guest.cjs`; the minimal Node script is `bench/agents/minimal-get.cjs` ' +
        '(`http.get` on the socket, piped to stdout); both run as `node FILE`.',
      rows: [
        {
          metric: 'get KEY, median',
          value: g,
          unit: 'ms',
          baseline: n,
          baselineName: 'minimal node',
          ratio: g / n,
          target: '<= 1.3x',
          met: g / n <= 1.3,
        },
        {
          metric: 'get KEY, p90',
          value: quantile(guestMs, 0.9),
          unit: 'ms',
          baseline: quantile(nodeMs, 0.9),
          baselineName: 'minimal node',
          ratio: quantile(guestMs, 0.9) / quantile(nodeMs, 0.9),
        },
        { metric: 'get KEY vs curl, median', value: g, unit: 'ms', baseline: c, baselineName: 'curl', ratio: g / c },
      ],
      notes: [
        `Per-round samples are independent processes; interquartile ranges: devapollo-guest ${iqr(guestMs)}, minimal node ${iqr(nodeMs)}, curl ${iqr(curlMs)}.`,
      ],
      raw: times,
    };
  } finally {
    daemon.destroy();
    tools.remove();
  }
}

function iqr(samples: readonly number[]): string {
  return `${quantile(samples, 0.25).toFixed(1)}–${quantile(samples, 0.75).toFixed(1)} ms`;
}
