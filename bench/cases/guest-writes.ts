/**
 * Issue 20: the guest's durable writes of guest.* keys. (1) Writes a second from one
 * container, one after another on one connection, each answered once its record is
 * fsynced, against a bare loop of the same durable steps on the host (write a file of the
 * record's size, fsync, rename, fsync the directory): what the daemon adds to the disk's
 * own cost. (2) Another container's GET p99 while a neighbour writes as fast as it can,
 * against the same GETs with the neighbour quiet, in alternating rounds. The daemon runs
 * with --guest-write-rate 0 (see lib/daemon.ts): the disk, not the limiter, is measured.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Agent } from '../lib/agent.js';
import { tempDir } from '../lib/cleanup.js';
import { agentScript, type BenchContext, installAgent } from '../lib/context.js';
import { BenchDaemon } from '../lib/daemon.js';
import { pin } from '../lib/proc.js';
import type { BenchResult } from '../lib/report.js';
import { median, quantile, spread } from '../lib/stats.js';

interface RunOutcome {
  readonly count: number;
  readonly seconds: number;
  readonly latenciesMs: number[];
  readonly failures: number;
}

const valueBytes = 256;

export async function runGuestWrites(ctx: BenchContext): Promise<BenchResult> {
  const rounds = ctx.rounds ?? (ctx.quick ? 3 : 7);
  const seconds = ctx.quick ? 1 : 2;
  const daemon = await BenchDaemon.start();
  const tools = tempDir('devapollo-bench-writes-', { worldReadable: true });
  const scratch = tempDir('devapollo-bench-fsync-');
  const agents: Agent[] = [];
  try {
    const script = installAgent(tools.dir, agentScript('guest-writes'), 'guest-writes.mjs');
    await daemon.launch('writer');
    await daemon.launch('reader', { config: { 'user.bench': 'a value to read' } });
    pin(daemon.pid, '0');
    const start = async (name: string, mode: 'write' | 'read'): Promise<Agent> => {
      const agent = daemon.spawnIn(name, `${mode} in ${name}`, [
        'taskset',
        '-c',
        '1',
        process.execPath,
        script,
        JSON.stringify({ mode, seconds, valueBytes }),
      ]);
      agents.push(agent);
      await agent.expect('ready', 120_000);
      return agent;
    };
    const writer = await start('writer', 'write');
    const reader = await start('reader', 'read');
    const go = async (agent: Agent): Promise<RunOutcome> => {
      agent.send('go');
      return JSON.parse(await agent.nextLine(seconds * 1000 + 60_000)) as RunOutcome;
    };
    // One write first, so the record has its guest key and its size is the one measured.
    await go(writer);
    const recordBytes = fs.statSync(path.join(daemon.dir, 'containers', 'writer.json')).size;

    const writesPerSecond: number[] = [];
    const baselinePerSecond: number[] = [];
    const writeLatencies: number[] = [];
    const quietP99: number[] = [];
    const loadedP99: number[] = [];
    let failures = 0;
    for (let r = 0; r < rounds; r++) {
      ctx.log(`guest-writes: round ${r + 1} of ${rounds}`);
      const alone = await go(writer);
      failures += alone.failures;
      writesPerSecond.push(alone.count / alone.seconds);
      writeLatencies.push(...alone.latenciesMs);
      baselinePerSecond.push(fsyncLoop(scratch.dir, recordBytes, seconds));
      const quiet = await go(reader);
      quietP99.push(quantile(quiet.latenciesMs, 0.99));
      const [loaded, busy] = await Promise.all([go(reader), go(writer)]);
      failures += loaded.failures + busy.failures;
      loadedP99.push(quantile(loaded.latenciesMs, 0.99));
    }
    const writes = median(writesPerSecond);
    const baseline = median(baselinePerSecond);
    const quiet = median(quietP99);
    const loaded = median(loadedP99);
    return {
      id: 'guest-writes',
      title: 'Guest writes (guest.*): durable writes a second, and a neighbour reading meanwhile',
      method:
        `One container PUTs a ${valueBytes}-byte guest.* value, one request after another on one connection, for ${seconds} s a round; each is answered once the record is fsynced. ` +
        `Baseline: the same durable steps on the host without the daemon (a ${recordBytes}-byte file written, fsynced, renamed, the directory fsynced). ` +
        `Then another container GETs a user.* key for ${seconds} s with the writer quiet and with it writing at full speed (--guest-write-rate 0), in alternating rounds. ${rounds} rounds; medians.`,
      rows: [
        {
          metric: 'durable guest writes a second, one container',
          value: writes,
          unit: 'writes/s',
          baseline,
          baselineName: 'bare fsync loop',
          ratio: writes / baseline,
          spread: spread(writesPerSecond),
        },
        { metric: 'guest write latency p50', value: quantile(writeLatencies, 0.5), unit: 'ms' },
        { metric: 'guest write latency p99', value: quantile(writeLatencies, 0.99), unit: 'ms' },
        {
          metric: "another container's GET p99 while a neighbour writes",
          value: loaded,
          unit: 'ms',
          baseline: quiet,
          baselineName: 'neighbour quiet',
          ratio: loaded / quiet,
          spread: spread(loadedP99),
        },
      ],
      notes: failures > 0 ? [`${failures} requests did not answer 200`] : [],
      raw: { writesPerSecond, baselinePerSecond, quietP99, loadedP99, recordBytes },
    };
  } finally {
    for (const agent of agents) await agent.stop();
    daemon.destroy();
    tools.remove();
    scratch.remove();
  }
}

/** Durable replacements of a file of `bytes` in `dir` a second, as the state store makes them. */
function fsyncLoop(dir: string, bytes: number, seconds: number): number {
  const data = Buffer.alloc(bytes, 'x');
  const target = path.join(dir, 'record.json');
  const dirFd = fs.openSync(dir, 'r');
  let count = 0;
  const started = performance.now();
  try {
    while (performance.now() - started < seconds * 1000) {
      const temp = path.join(dir, `.tmp-${count}`);
      const fd = fs.openSync(temp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
      fs.writeSync(fd, data);
      fs.fsyncSync(fd);
      fs.closeSync(fd);
      fs.renameSync(temp, target);
      fs.fsyncSync(dirFd);
      count++;
    }
  } finally {
    fs.closeSync(dirFd);
  }
  return count / ((performance.now() - started) / 1000);
}
