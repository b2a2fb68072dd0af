/**
 * `devapollo monitor [NAME]`: events as they happen, for one container or all. Like
 * `devapollo-guest watch`, it outlives a daemon restart: it reconnects, and reports each
 * config change made while it was away as one event (from the key's value before to its
 * value now), so that it misses no change of a key's value.
 */

import { ApolloError } from '../../../shared/errors.js';
import { renderEventLine, safeJson, writeOut } from '../../../shared/output.js';
import type { ContainerWire } from '../../../shared/wire.js';
import type { AdminClient } from '../../admin/client.js';
import { adminClient, hostCommand, note } from './shared.js';

/** An admin event as the daemon sends it. */
interface AdminEvent {
  readonly type: string;
  readonly timestamp: string;
  readonly container: string;
  readonly metadata: Readonly<Record<string, unknown>>;
}

/** Each container's config as last seen: name -> key -> value. */
type Snapshot = Map<string, ReadonlyMap<string, string>>;

/** `monitor`. */
export const monitor = hostCommand(
  (y) =>
    y
      .positional('name', { type: 'string', describe: 'only this container' })
      .option('type', { type: 'string', default: 'config,lifecycle', describe: 'config, lifecycle or both' })
      .option('format', { alias: 'f', choices: ['text', 'json'] as const, default: 'text' as const, describe: 'json: one object per line' })
      .example('$0 monitor web --type config', ''),
  async (argv) => {
    const query = new URLSearchParams({ type: argv.type });
    if (argv.name !== undefined) query.set('container', argv.name);
    const stop = new AbortController();
    const onSignal = () => stop.abort();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    let printing = Promise.resolve();
    const print = (event: AdminEvent) => {
      printing = printing.then(async () => writeOut(argv.format === 'json' ? `${safeJson(event)}\n` : await renderEventLine(event)));
    };
    try {
      const types = argv.type.split(',').map((type) => type.trim());
      await followEvents(
        adminClient(argv),
        `/1.0/events?${query}`,
        { name: argv.name, config: types.includes('config') },
        print,
        stop.signal,
      );
      await printing;
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  },
);

/**
 * Prints events until `signal` aborts. A first connection that fails throws (no daemon:
 * exit 69); once connected, a stream that ends or breaks (the daemon restarts) is opened
 * again, after 50 ms doubling to 1 s between tries. The stream is opened before the
 * snapshot is taken, so nothing falls between them; a key changed while away and also in
 * the new stream is reported by the stream alone.
 */
async function followEvents(
  client: AdminClient,
  target: string,
  scope: { readonly name: string | undefined; readonly config: boolean },
  print: (event: AdminEvent) => void,
  signal: AbortSignal,
): Promise<void> {
  let known: Snapshot | undefined;
  let connected = false;
  let delay = 50;
  while (!signal.aborted) {
    let pending: AdminEvent[] | undefined = [];
    const live = (event: AdminEvent) => {
      if (known !== undefined && event.type === 'config') remember(known, event);
      print(event);
    };
    let stream: Awaited<ReturnType<typeof client.openStream>>;
    try {
      stream = await client.openStream(target, (line) => {
        const event = JSON.parse(line) as AdminEvent;
        if (pending === undefined) live(event);
        else pending.push(event);
      });
    } catch (error) {
      if (!connected || !(error instanceof ApolloError) || error.code !== 'no-daemon') throw error;
      await sleep(delay, signal);
      delay = Math.min(delay * 2, 1000);
      continue;
    }
    if (connected) note('monitor: reconnected to the daemon');
    connected = true;
    delay = 50;
    const close = () => stream.close();
    signal.addEventListener('abort', close, { once: true });
    try {
      if (scope.config) {
        const now = await snapshot(client, scope.name);
        if (known !== undefined) {
          const inStream = new Set(
            pending.filter((e) => e.type === 'config').map((e) => `${e.container}\u0000${String(e.metadata['key'])}`),
          );
          for (const event of changesBetween(known, now)) {
            if (!inStream.has(`${event.container}\u0000${String(event.metadata['key'])}`)) print(event);
          }
        }
        known = now;
      }
      const waiting = pending;
      pending = undefined;
      for (const event of waiting) live(event);
      await stream.ended;
    } catch (error) {
      if (!(error instanceof ApolloError) || error.code !== 'no-daemon') throw error;
    } finally {
      signal.removeEventListener('abort', close);
      stream.close();
    }
    if (!signal.aborted) note('monitor: lost the daemon; reconnecting');
  }
}

/** Every container's config (or the one named), as the daemon has it now. */
async function snapshot(client: AdminClient, name: string | undefined): Promise<Snapshot> {
  let containers: ContainerWire[];
  try {
    containers = name === undefined ? await client.list() : [await client.container(name)];
  } catch (error) {
    // The one container named was deleted while away: it has no keys now.
    if (error instanceof ApolloError && error.code === 'not-found') containers = [];
    else throw error;
  }
  return new Map(containers.map((c) => [c.name, new Map(Object.entries(c.config))]));
}

/** One config event per key whose value differs between two snapshots. */
function changesBetween(before: Snapshot, after: Snapshot): AdminEvent[] {
  const events: AdminEvent[] = [];
  const timestamp = new Date().toISOString();
  for (const container of new Set([...before.keys(), ...after.keys()])) {
    const was = before.get(container) ?? new Map<string, string>();
    const is = after.get(container) ?? new Map<string, string>();
    for (const key of new Set([...was.keys(), ...is.keys()])) {
      const oldValue = was.get(key) ?? '';
      const value = is.get(key) ?? '';
      if (oldValue !== value) events.push({ type: 'config', timestamp, container, metadata: { key, old_value: oldValue, value } });
    }
  }
  return events;
}

/** Keeps a printed config event's value in the snapshot. */
function remember(known: Snapshot, event: AdminEvent): void {
  const config = new Map(known.get(event.container) ?? []);
  const key = String(event.metadata['key']);
  const value = String(event.metadata['value'] ?? '');
  if (value === '') config.delete(key);
  else config.set(key, value);
  known.set(event.container, config);
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });
}
