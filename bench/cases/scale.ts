/**
 * Issue 7, benchmarks 3 and 4: one daemon serving 10,000 running containers (real
 * namespaced processes, launched through the admin API a few at a time) against one
 * serving a single container, side by side: per-request cost, launch throughput, the
 * daemon's restart and re-adoption time, and its memory and descriptors with 1,000 open
 * guest connections.
 */
import fs from 'node:fs';
import { tempDir } from '../lib/cleanup.js';
import { agentScript, type BenchContext, installAgent } from '../lib/context.js';
import { BenchDaemon, launchMany } from '../lib/daemon.js';
import {
  cpuSeconds,
  fdKinds,
  listeningDescriptors,
  memAvailableBytes,
  openFds,
  pin,
  processCount,
  rssBytes,
  rssParts,
} from '../lib/proc.js';
import type { BenchResult, Row } from '../lib/report.js';
import { median, round, spread } from '../lib/stats.js';
import { fooValue, type LoadSample, loadContainer, loadDaemon, loadNote } from './throughput.js';

const MiB = 1024 * 1024;
/** Concurrent launches: "a few at a time" (each launch is a perl process and a fork or two). */
const launchConcurrency = 4;
const holderContainers = 10;
const connectionsPerHolder = 100;

/** The open-files hard limit of this process (the daemon inherits it). */
function openFilesLimit(): number {
  const line = fs
    .readFileSync('/proc/self/limits', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('Max open files'));
  const hard = line?.trim().split(/\s+/)[4];
  return hard === undefined || hard === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(hard);
}

/**
 * How many containers this machine can hold, and why fewer than asked if so: two pids per
 * idle container (its init and its monitor; a few more while launching), one pidfd each
 * in the daemon, memory.
 */
function capacity(wanted: number): { count: number; note: string | undefined } {
  const pidMax = Number(fs.readFileSync('/proc/sys/kernel/pid_max', 'utf8'));
  const byPids = Math.floor((pidMax - processCount() - 2_000) / 2);
  const byFds = openFilesLimit() - holderContainers * connectionsPerHolder - 1_000;
  const byMemory = Math.floor(memAvailableBytes() / (1.5 * MiB)) - 1_000;
  const count = Math.min(wanted, byPids, byFds, byMemory);
  if (count >= wanted) return { count: wanted, note: undefined };
  const limits = [
    `pid_max ${pidMax} allows ${byPids}`,
    `RLIMIT_NOFILE ${openFilesLimit()} allows ${byFds}`,
    `available memory allows ${byMemory}`,
  ];
  return { count, note: `scaled down from ${wanted} to ${count} containers: ${limits.join(', ')}` };
}

/** Figures of one daemon under load, one entry per round. */
interface Side {
  reconnect: LoadSample[];
  keepalive: LoadSample[];
}

export async function runScale(ctx: BenchContext): Promise<BenchResult> {
  const wanted = ctx.containers ?? (ctx.quick ? 1_000 : 10_000);
  const { count, note } = capacity(wanted);
  if (count < 2 * holderContainers) throw new Error(note ?? 'this machine cannot hold the containers');
  if (note) ctx.log(note);
  const rounds = ctx.rounds ?? (ctx.quick ? 2 : 6);
  const seconds = ctx.quick ? 2 : 3;
  const notes: string[] = note ? [note] : [];

  const small = await BenchDaemon.start();
  const big = await BenchDaemon.start();
  const tools = tempDir('devapollo-bench-holder-', { worldReadable: true });
  try {
    const holder = installAgent(tools.dir, agentScript('holder'), 'holder.mjs');
    for (const daemon of [small, big]) await daemon.launch(loadContainer, { privileged: true, config: { 'user.foo': fooValue } });
    const rssAtOne = rssBytes(big.pid);

    // Launch throughput: all cores, the way a host would boot its containers.
    const names = Array.from({ length: count - 1 }, (_, i) => `c${String(i + 1).padStart(5, '0')}`);
    ctx.log(`launching ${names.length} containers, ${launchConcurrency} at a time`);
    const progress = setInterval(() => ctx.log(`  ${big.inits.size - 1} launched`), 15_000);
    const launchStart = performance.now();
    const { launched, error, retried } = await launchMany(big, names, launchConcurrency, (name) => ({ 'user.foo': name }));
    if (retried.length > 0) {
      notes.push(`${retried.length} launches failed once and were tried again; the first: ${retried[0]}`);
      ctx.log(`${retried.length} launches retried; the first: ${retried[0]}`);
    }
    const launchSeconds = (performance.now() - launchStart) / 1000;
    clearInterval(progress);
    if (error !== undefined) {
      notes.push(`launching stopped after ${launched} containers: ${error}`);
      ctx.log(`launch failed: ${error}`);
    }
    const containers = launched + 1;
    if (launched < holderContainers) throw new Error(`only ${launched} containers launched: ${error}`);
    const launchRate = launched / launchSeconds;
    ctx.log(`${containers} containers running; ${launchRate.toFixed(1)} launches/s`);
    const rssIdle = rssBytes(big.pid);
    const fdsIdle = openFds(big.pid);

    // Per-request cost: the two daemons take turns on core 0, the load generator on core 1.
    pin(small.pid, '0');
    pin(big.pid, '0');
    // One unrecorded run of each kind first: the 1-container daemon has run far less code
    // than the one that launched thousands, and should not be measured while it warms up.
    for (const daemon of [small, big]) for (const reconnect of [true, false]) await loadDaemon(daemon, reconnect, seconds, 1);
    const sides: { one: Side; many: Side } = { one: { reconnect: [], keepalive: [] }, many: { reconnect: [], keepalive: [] } };
    for (let r = 0; r < rounds; r++) {
      for (const mode of ['reconnect', 'keepalive'] as const) {
        const order = r % 2 === 0 ? (['one', 'many'] as const) : (['many', 'one'] as const);
        for (const side of order) {
          const daemon = side === 'one' ? small : big;
          const sample = await loadDaemon(daemon, mode === 'reconnect', seconds, 1.5);
          if (sample.errors > 0) throw new Error(`${mode} at ${side}: ${sample.errors} errors`);
          sides[side][mode].push(sample);
          ctx.log(
            `${mode} round ${r + 1}/${rounds} ${side === 'one' ? '1 container' : `${containers} containers`}: ` +
              `${Math.round(sample.requests_per_second)} req/s, ${sample.server_cpu_us_per_request.toFixed(1)} µs CPU/req ` +
              `(${sample.server_system_us_per_request.toFixed(1)} system, ${sample.server_helper_threads_us_per_request.toFixed(1)} helper threads)`,
          );
        }
      }
    }
    await small.stop();
    small.destroy();

    // 1,000 open guest connections, 100 from each of 10 containers; each must be answered
    // with its own container's value.
    ctx.log(`opening ${holderContainers * connectionsPerHolder} guest connections`);
    const holders = names
      .slice(0, holderContainers)
      .map((name) =>
        big.spawnIn(name, `holder in ${name}`, [
          'taskset',
          '-c',
          '1',
          process.execPath,
          holder,
          JSON.stringify({ connections: connectionsPerHolder, expect: name }),
        ]),
      );
    for (const h of holders) await h.expect('ready', 120_000);
    const status = await big.status();
    const rssConnected = rssBytes(big.pid);
    const parts = rssParts(big.pid);
    const fdsConnected = openFds(big.pid);
    const kinds = fdKinds(big.pid);
    const listening = listeningDescriptors(big.pid, big.guestSocket);
    const guestConnections = status.connections.guest;
    for (const h of holders) await h.stop();
    ctx.log(`RSS ${(rssConnected / MiB).toFixed(1)} MiB, ${fdsConnected} fds, ${listening} listening on the guest socket`);

    // Restart: SIGTERM (containers keep running), then a new daemon re-adopts them all
    // before it opens its sockets.
    const cpuBefore = cpuSeconds(big.pid);
    const stopStart = performance.now();
    await big.stop();
    const stopSeconds = (performance.now() - stopStart) / 1000;
    const startStart = performance.now();
    await big.spawn();
    const readoptSeconds = (performance.now() - startStart) / 1000;
    const after = await big.status();
    const rssAfterRestart = rssBytes(big.pid);
    if (after.containers.running !== containers) {
      notes.push(`after the restart ${after.containers.running} of ${containers} containers were running`);
    }
    const check = big.spawnIn(names[0] as string, 'holder after restart', [
      process.execPath,
      holder,
      JSON.stringify({ connections: 1, expect: names[0] }),
    ]);
    await check.expect('ready', 60_000);
    await check.stop();
    ctx.log(`restart: stopped in ${stopSeconds.toFixed(2)} s, re-adopted ${after.containers.running} in ${readoptSeconds.toFixed(2)} s`);

    const teardownStart = performance.now();
    big.destroy();
    const teardownSeconds = (performance.now() - teardownStart) / 1000;
    ctx.log(`killed ${containers} containers in ${teardownSeconds.toFixed(1)} s`);

    const cost = (side: Side, mode: keyof Side) => side[mode].map((s) => s.server_cpu_us_per_request);
    const rate = (side: Side, mode: keyof Side) => side[mode].map((s) => s.requests_per_second);
    const n = containers.toLocaleString('en-US');
    const perRequest = (mode: keyof Side, label: string): Row[] => {
      const many = median(cost(sides.many, mode));
      const one = median(cost(sides.one, mode));
      const rpsMany = median(rate(sides.many, mode));
      const rpsOne = median(rate(sides.one, mode));
      return [
        {
          metric: `${label}: daemon CPU per request at ${n} vs 1`,
          value: many,
          unit: 'µs',
          baseline: one,
          baselineName: '1 container',
          ratio: many / one,
          target: '<= 1.1x',
          met: many / one <= 1.1,
          spread: Math.max(spread(cost(sides.many, mode)), spread(cost(sides.one, mode))),
        },
        {
          metric: `${label}: throughput at ${n} vs 1`,
          value: rpsMany,
          unit: 'req/s',
          baseline: rpsOne,
          baselineName: '1 container',
          ratio: rpsMany / rpsOne,
          spread: Math.max(spread(rate(sides.many, mode)), spread(rate(sides.one, mode))),
        },
      ];
    };
    const part = (side: Side, field: 'server_system_us_per_request' | 'server_helper_threads_us_per_request') =>
      median(side.reconnect.map((x) => x[field])).toFixed(1);
    notes.push(
      `Where a new connection's CPU time goes, 1 container → ${n}: system time ${part(sides.one, 'server_system_us_per_request')} → ` +
        `${part(sides.many, 'server_system_us_per_request')} µs, threads other than the event loop (V8's garbage collector, libuv) ` +
        `${part(sides.one, 'server_helper_threads_us_per_request')} → ${part(sides.many, 'server_helper_threads_us_per_request')} µs.`,
      loadNote([...sides.one.reconnect, ...sides.one.keepalive, ...sides.many.reconnect, ...sides.many.keepalive]),
      `Descriptors of the daemon with ${n} containers and ${guestConnections} open guest connections: ` +
        `${Object.entries(kinds)
          .sort(([, a], [, b]) => b - a)
          .map(([kind, k]) => `${k} ${kind}`)
          .join(', ')} (one pidfd per running container; the guest connections are sockets).`,
      `Of the RSS with the connections open, ${(parts.anon / MiB).toFixed(1)} MiB is anonymous memory (the JavaScript heap, ` +
        `buffers, stacks) and ${(parts.file / MiB).toFixed(1)} MiB file pages (the node binary's code and the libraries it has touched).`,
      `Every one of the ${holderContainers * connectionsPerHolder} connections (${connectionsPerHolder} from each of ${holderContainers} containers) was answered with its own container's value.`,
      `RSS right after the restart, with ${after.containers.running} containers re-adopted: ${(rssAfterRestart / MiB).toFixed(1)} MiB. ` +
        `CPU time of the daemon over its whole life (launches, load, connections) before the restart: ${cpuBefore.toFixed(1)} s.`,
      `Tearing down (SIGKILL to ${n} inits, waiting until the kernel has reaped them all): ${teardownSeconds.toFixed(1)} s.`,
    );
    return {
      id: 'scale',
      title: `${n} containers (issue 7, benchmarks 3 and 4)`,
      method:
        `Two daemons side by side: one serving a single container, one serving ${n} running containers (idle unprivileged ` +
        `containers launched through the admin API, ${launchConcurrency} at a time, each a real process in its own user, pid, mount, uts ` +
        'and ipc namespaces). The same load (autocannon from a privileged container, as above) goes to each in alternating rounds, the ' +
        'daemon under test pinned to core 0 and the load generator to core 1. Restart: SIGTERM, then a new daemon, timed until its ' +
        'admin API answers, which it does only once every running container has been re-adopted. Memory and descriptors are read from ' +
        '/proc while 1,000 guest connections are open.',
      rows: [
        ...perRequest('reconnect', 'new connection per request'),
        ...perRequest('keepalive', 'keep-alive'),
        { metric: 'launch throughput', value: launchRate, unit: 'containers/s' },
        { metric: `restart: stop (SIGTERM to exit)`, value: stopSeconds, unit: 's' },
        { metric: `restart: start and re-adopt ${after.containers.running.toLocaleString('en-US')}`, value: readoptSeconds, unit: 's' },
        {
          metric: `RSS at ${n} containers, idle`,
          value: rssIdle / MiB,
          unit: 'MiB',
          baseline: rssAtOne / MiB,
          baselineName: '1 container',
          ratio: rssIdle / rssAtOne,
        },
        {
          metric: `RSS at ${n} containers + ${guestConnections} connections`,
          value: rssConnected / MiB,
          unit: 'MiB',
          target: '< 150 MiB',
          met: rssConnected / MiB < 150,
        },
        { metric: `open descriptors at ${n} containers, idle`, value: fdsIdle, unit: '' },
        { metric: `open descriptors at ${n} + ${guestConnections} connections`, value: fdsConnected, unit: '' },
        { metric: 'listening descriptors for the guest API', value: listening, unit: '', target: '= 1', met: listening === 1 },
      ],
      notes,
      raw: {
        containers,
        launched,
        launch_seconds: round(launchSeconds, 3),
        per_request: sides,
        rss_bytes: {
          one_container: rssAtOne,
          idle: rssIdle,
          connected: rssConnected,
          connected_parts: parts,
          after_restart: rssAfterRestart,
        },
        fds: { idle: fdsIdle, connected: fdsConnected, kinds },
        guest_connections: guestConnections,
        listening_guest_descriptors: listening,
        restart: { stop_seconds: stopSeconds, start_and_readopt_seconds: readoptSeconds, running_after: after.containers.running },
        teardown_seconds: teardownSeconds,
      },
    };
  } finally {
    small.destroy();
    big.destroy();
    tools.remove();
  }
}
