/**
 * Issue 4: the time from a config change (`devapollo config set`, i.e. the admin API's
 * PATCH) to its delivery on guest event streams, with 1, 100 and 1,000 watchers open
 * across many containers; p50 and p99. Target: p99 under 50 ms at 1,000 watchers.
 *
 * Send and receipt times come from the same system-wide monotonic clock (CLOCK_MONOTONIC
 * through process.hrtime), read by the benchmark just before it sends the PATCH and by
 * the watcher as the bytes arrive.
 */
import type { Agent } from '../lib/agent.js';
import { tempDir } from '../lib/cleanup.js';
import { agentScript, type BenchContext, installAgent } from '../lib/context.js';
import { BenchDaemon } from '../lib/daemon.js';
import { pin } from '../lib/proc.js';
import type { BenchResult, Row } from '../lib/report.js';
import { median, quantile, round } from '../lib/stats.js';

const maxContainers = 50;
const levels = [1, 100, 1000] as const;

interface Level {
  readonly watchers: number;
  readonly containers: number;
  /** Milliseconds from sending the PATCH to each watcher's receipt, one change at a time. */
  readonly sequential: number[];
  /** The same with a change sent to every container at once. */
  readonly burst: number[];
  /** Milliseconds until the PATCH itself was answered (after the state file's fsync), one at a time. */
  readonly acknowledged: number[];
  /** The same while every container's PATCH was in flight at once. */
  readonly acknowledgedInBurst: number[];
  lost: number;
}

export async function runEvents(ctx: BenchContext): Promise<BenchResult> {
  const rounds = ctx.quick ? 40 : 150;
  const burstRounds = ctx.quick ? 5 : 20;
  const daemon = await BenchDaemon.start();
  const tools = tempDir('devapollo-bench-watch-', { worldReadable: true });
  try {
    const watcher = installAgent(tools.dir, agentScript('watcher'), 'watcher.mjs');
    const names = Array.from({ length: maxContainers }, (_, i) => `w${String(i + 1).padStart(2, '0')}`);
    for (const name of names) await daemon.launch(name);
    pin(daemon.pid, '0');

    const results: Level[] = [];
    for (const watchers of levels) {
      const containers = Math.min(watchers, maxContainers);
      const streams = watchers / containers;
      ctx.log(`events: ${watchers} watchers (${containers} containers × ${streams})`);
      // receipts.get(value) = receipt times (ns) of that value, from any watcher.
      const receipts = new Map<string, bigint[]>();
      const agents: Agent[] = names.slice(0, containers).map((name) => {
        const agent = daemon.spawnIn(name, `watchers in ${name}`, [
          'taskset',
          '-c',
          '1',
          process.execPath,
          watcher,
          JSON.stringify({ streams }),
        ]);
        return agent;
      });
      for (const agent of agents) await agent.expect('ready', 120_000);
      for (const agent of agents) {
        agent.onLine = (line) => {
          const [value = '', ns = '0'] = line.split(' ');
          let list = receipts.get(value);
          if (list === undefined) {
            list = [];
            receipts.set(value, list);
          }
          list.push(BigInt(ns));
        };
      }
      const level: Level = { watchers, containers, sequential: [], burst: [], acknowledged: [], acknowledgedInBurst: [], lost: 0 };

      /** Sets user.bench on a container; resolves with the send time once all its watchers have it. */
      const change = async (name: string, value: string, into: number[], acks: number[]) => {
        const sent = process.hrtime.bigint();
        await daemon.setConfig(name, { 'user.bench': value });
        acks.push(Number(process.hrtime.bigint() - sent) / 1e6);
        const deadline = Date.now() + 5_000;
        while ((receipts.get(value)?.length ?? 0) < streams && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, 1));
        }
        const got = receipts.get(value) ?? [];
        level.lost += streams - got.length;
        for (const at of got) into.push(Number(at - sent) / 1e6);
        receipts.delete(value);
      };

      for (let r = 0; r < rounds; r++) {
        await change(names[r % containers] as string, `s${watchers}-${r}`, level.sequential, level.acknowledged);
        // A short pause: each change is timed alone, not queued behind the previous one.
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      if (containers > 1) {
        for (let r = 0; r < burstRounds; r++) {
          await Promise.all(
            names.slice(0, containers).map((name) => change(name, `b${watchers}-${r}-${name}`, level.burst, level.acknowledgedInBurst)),
          );
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      }
      for (const agent of agents) await agent.stop();
      results.push(level);
      ctx.log(
        `  p50 ${quantile(level.sequential, 0.5).toFixed(2)} ms, p99 ${quantile(level.sequential, 0.99).toFixed(2)} ms` +
          (level.burst.length > 0 ? `; burst p99 ${quantile(level.burst, 0.99).toFixed(2)} ms` : '') +
          (level.lost > 0 ? `; ${level.lost} lost` : ''),
      );
    }

    const one = results[0] as Level;
    const rows: Row[] = [];
    const label = (level: Level) => `${level.watchers.toLocaleString('en-US')} watcher${level.watchers === 1 ? '' : 's'}`;
    for (const level of results) {
      const p50 = quantile(level.sequential, 0.5);
      const p99 = quantile(level.sequential, 0.99);
      const atOne = level !== one;
      rows.push(
        {
          metric: `${label(level)}: p50`,
          value: p50,
          unit: 'ms',
          ...(atOne
            ? { baseline: quantile(one.sequential, 0.5), baselineName: '1 watcher', ratio: p50 / quantile(one.sequential, 0.5) }
            : {}),
        },
        {
          metric: `${label(level)}: p99`,
          value: p99,
          unit: 'ms',
          ...(atOne
            ? { baseline: quantile(one.sequential, 0.99), baselineName: '1 watcher', ratio: p99 / quantile(one.sequential, 0.99) }
            : {}),
          ...(level.watchers === 1000 ? { target: '< 50 ms', met: p99 < 50 } : {}),
        },
      );
    }
    for (const level of results.filter((l) => l.burst.length > 0)) {
      rows.push(
        {
          metric: `${label(level)}, all ${level.containers} containers changed at once: p50`,
          value: quantile(level.burst, 0.5),
          unit: 'ms',
        },
        {
          metric: `${label(level)}, all ${level.containers} containers changed at once: p99`,
          value: quantile(level.burst, 0.99),
          unit: 'ms',
        },
      );
    }
    const lost = results.reduce((n, l) => n + l.lost, 0);
    const acks = results.flatMap((l) => l.acknowledged);
    const burstAcks = results.flatMap((l) => l.acknowledgedInBurst);
    return {
      id: 'events',
      title: 'Config change to delivery on event streams (issue 4)',
      method:
        `Watchers are \`GET /1.0/events?type=config\` streams opened from inside unprivileged containers (1 watcher in 1 container; ` +
        `100 as 2 in each of ${maxContainers} containers; 1,000 as 20 in each of ${maxContainers}), one Node process per container pinned to ` +
        'core 1, the daemon on core 0. The benchmark sends `PATCH /1.0/containers/NAME/config` (what `devapollo config set` sends) to one ' +
        `container at a time, round-robin, ${rounds} changes per level, and times each of that container's watchers from just before the ` +
        'request to the arrival of the event; the change is acknowledged only after its state file is fsynced, and the event follows. ' +
        `The "at once" rows send a change to every container together (${burstRounds} times), so that all watchers hear one at the same moment.`,
      rows,
      notes: [
        `A PATCH is answered once the state file is written and fsynced; the event goes out just before the answer. Sent one at a time, ` +
          `the PATCH took ${median(acks).toFixed(2)} ms at the median and ${quantile(acks, 0.99).toFixed(2)} ms at p99: most of the ` +
          `delivery time is that durable write, not the stream. With every container's PATCH in flight at once they queue behind ` +
          `each other's fsyncs (${median(burstAcks).toFixed(1)} ms at the median), which is what the "at once" rows show.`,
        lost === 0 ? 'No event was lost.' : `${lost} events did not arrive within 5 s.`,
      ],
      // Every latency, to the microsecond (there are tens of thousands).
      raw: results.map((l) => ({
        ...l,
        sequential: l.sequential.map((v) => round(v, 3)),
        burst: l.burst.map((v) => round(v, 3)),
        acknowledged: l.acknowledged.map((v) => round(v, 3)),
        acknowledgedInBurst: l.acknowledgedInBurst.map((v) => round(v, 3)),
      })),
    };
  } finally {
    daemon.destroy();
    tools.remove();
  }
}
