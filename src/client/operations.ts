/**
 * What the guest commands do, apart from parsing and printing: each takes a GuestClient
 * and returns data. The fast `get` path and the full CLI share these.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ApolloError } from '../shared/errors.js';
import type { GuestClient } from './api-client.js';

const configTarget = (key: string) => `/1.0/config/${encodeURIComponent(key)}`;

/** A key's value, byte for byte. */
export function getValue(client: GuestClient, key: string): Promise<Buffer> {
  return client.getText(configTarget(key));
}

/** Every readable key and its value, sorted by key. */
export async function readAllValues(client: GuestClient): Promise<Record<string, string>> {
  // Keys unset between listing and reading are left out.
  return Object.fromEntries([...(await snapshot(client))].map(([key, { value }]) => [key, value]));
}

/** Tells the host this container is ready (PATCH /1.0). */
export async function setReady(client: GuestClient, state: 'Ready' | 'Started' = 'Ready'): Promise<void> {
  await client.request('PATCH', '/1.0', { body: JSON.stringify({ state }), headers: { 'Content-Type': 'application/json' } });
}

/** Writes one of this container's guest.* keys: the value's exact bytes; empty unsets it (PROTOCOL.md section 3a). */
export async function setGuestKey(client: GuestClient, key: string, value: Buffer): Promise<void> {
  await client.request('PUT', configTarget(key), { body: value, headers: { 'Content-Type': 'application/octet-stream' } });
}

/** Unsets one of this container's guest.* keys; exit 3 when it is not set. */
export async function unsetGuestKey(client: GuestClient, key: string): Promise<void> {
  await client.request('DELETE', configTarget(key));
}

/** The number in our ETags ("uuid-REVISION"): revisions only grow. */
export function etagRevision(etag: string | undefined): number {
  const match = /-(\d+)"?$/.exec(etag ?? '');
  return match ? Number(match[1]) : -1;
}

const isUnreachable = (error: unknown) => error instanceof ApolloError && error.code === 'no-daemon';

/**
 * Waits until KEY changes (or, with `expected`, equals it). Uses the daemon's change-wait
 * with the key's ETag, which changes exactly when the key does; across a daemon restart
 * it retries with the same ETag, so a change made meanwhile is not missed. Returns the
 * value (undefined when unset), or throws a wait-timeout error (exit 75).
 */
export async function waitForKey(
  client: GuestClient,
  key: string,
  options: { expected?: string | undefined; timeoutMs?: number | undefined },
): Promise<Buffer | undefined> {
  const deadline = options.timeoutMs === undefined ? Infinity : Date.now() + options.timeoutMs;
  const matches = (value: Buffer | undefined) => options.expected !== undefined && value?.toString('utf8') === options.expected;
  let current: { value: Buffer | undefined; etag: string } | undefined;
  let delay = 50;
  for (;;) {
    const remaining = deadline - Date.now();
    if (remaining <= 0) {
      throw new ApolloError(
        'wait-timeout',
        `timed out waiting for ${key}${options.expected === undefined ? ' to change' : ` to be ${JSON.stringify(options.expected)}`}`,
      );
    }
    try {
      if (current === undefined) {
        current = await client.getWithEtag(configTarget(key));
        if (matches(current.value)) return current.value;
        continue;
      }
      const seconds = Math.max(1, Math.min(600, Math.ceil(remaining / 1000)));
      const next = await client.getWithEtag(
        `${configTarget(key)}?wait=true&etag=${encodeURIComponent(current.etag)}&timeout=${seconds}`,
        seconds * 1000,
      );
      delay = 50;
      if (next.etag === current.etag) continue;
      if (options.expected === undefined || matches(next.value)) return next.value;
      current = next;
    } catch (error) {
      if (!isUnreachable(error)) throw error;
      // The daemon is restarting: try again with what we knew.
      await new Promise((resolve) => setTimeout(resolve, Math.min(delay, Math.max(0, deadline - Date.now()))));
      delay = Math.min(delay * 2, 1000);
    }
  }
}

/** An event as the guest API sends it. */
export interface GuestEvent {
  readonly type: 'config' | 'lifecycle';
  readonly timestamp: string;
  readonly metadata: Record<string, unknown>;
}

/**
 * Streams this container's events to `onEvent` until `signal` aborts. When the stream
 * breaks (a daemon restart) it reconnects, then compares every readable key's ETag with
 * what it last knew and reports each change it missed as a config event: nothing is lost.
 */
export async function watchEvents(
  client: GuestClient,
  types: readonly ('config' | 'lifecycle')[],
  onEvent: (event: GuestEvent) => void,
  signal: AbortSignal,
): Promise<void> {
  const watchConfig = types.includes('config');
  let known: Map<string, { value: string; revision: number }> | undefined;
  const reported = new Map<string, number>();
  let delay = 50;
  while (!signal.aborted) {
    const pending: GuestEvent[] = [];
    let ready = false;
    const handle = (event: GuestEvent) => {
      if (event.type === 'config') {
        const key = String(event.metadata['key']);
        const revision = etagRevision(event.metadata['etag'] as string | undefined);
        if (revision <= (reported.get(key) ?? -1)) return;
        reported.set(key, revision);
        const entry = known?.get(key);
        if (known !== undefined && (entry === undefined || revision > entry.revision)) {
          known.set(key, { value: String(event.metadata['value'] ?? ''), revision });
        }
      }
      onEvent(event);
    };
    let stream: Awaited<ReturnType<typeof client.openStream>>;
    try {
      stream = await client.openStream(`/1.0/events?type=${types.join(',')}`, (line) => {
        const event = JSON.parse(line) as GuestEvent;
        if (ready) handle(event);
        else pending.push(event);
      });
    } catch (error) {
      if (!isUnreachable(error)) throw error;
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 1000);
      continue;
    }
    delay = 50;
    const stop = () => stream.close();
    signal.addEventListener('abort', stop, { once: true });
    try {
      if (watchConfig) {
        // The stream is open first, so nothing falls between the snapshot and the stream.
        const now = await snapshot(client);
        if (known !== undefined) {
          for (const key of new Set([...known.keys(), ...now.keys()])) {
            const before = known.get(key);
            // A key unset meanwhile is not listed any more; its 404 still carries its ETag.
            const after = now.get(key) ?? { value: '', etag: (await client.getWithEtag(configTarget(key))).etag };
            const revision = etagRevision(after.etag);
            if (revision <= (before?.revision ?? -1) || revision <= (reported.get(key) ?? -1)) continue;
            reported.set(key, revision);
            onEvent({
              type: 'config',
              timestamp: new Date().toISOString(),
              metadata: { key, old_value: before?.value ?? '', value: after.value, etag: after.etag },
            });
          }
        }
        known = new Map([...now].map(([key, { value, etag }]) => [key, { value, revision: etagRevision(etag) }]));
      }
      ready = true;
      for (const event of pending.splice(0)) handle(event);
      await stream.ended;
    } catch (error) {
      if (!isUnreachable(error) && !signal.aborted) throw error;
    } finally {
      signal.removeEventListener('abort', stop);
    }
  }
}

/** Every readable key with its value and ETag. */
async function snapshot(client: GuestClient): Promise<Map<string, { value: string; etag: string }>> {
  const urls = await client.getJson<string[]>('/1.0/config');
  const out = new Map<string, { value: string; etag: string }>();
  for (const url of urls) {
    const key = decodeURIComponent(url.slice('/1.0/config/'.length));
    const { value, etag } = await client.getWithEtag(configTarget(key));
    if (value !== undefined) out.set(key, { value: value.toString('utf8'), etag });
  }
  return out;
}

/** The files of a cloud-init NoCloud seed and the keys they come from, first set wins. */
const seedFiles: readonly { file: string; keys: readonly string[] }[] = [
  { file: 'user-data', keys: ['cloud-init.user-data', 'user.user-data'] },
  { file: 'vendor-data', keys: ['cloud-init.vendor-data', 'user.vendor-data'] },
  { file: 'network-config', keys: ['cloud-init.network-config', 'user.network-config'] },
];

/**
 * Writes a NoCloud seed into `dir`: meta-data and user-data always (user-data empty when
 * unset: NoCloud needs the file), vendor-data and network-config when set; a stale one
 * from an earlier seed is removed. Each file is written whole, mode 0600 (user-data often
 * holds secrets), and renamed into place. Returns the files written.
 */
export async function writeSeed(client: GuestClient, dir: string): Promise<string[]> {
  const metaData = await client.getText('/1.0/meta-data');
  const keys = new Set((await client.getJson<string[]>('/1.0/config')).map((url) => decodeURIComponent(url.slice('/1.0/config/'.length))));
  const contents = new Map<string, Buffer | undefined>([['meta-data', metaData]]);
  for (const { file, keys: candidates } of seedFiles) {
    const key = candidates.find((k) => keys.has(k));
    contents.set(file, key === undefined ? undefined : (await client.getWithEtag(configTarget(key))).value);
  }
  if (contents.get('user-data') === undefined) contents.set('user-data', Buffer.alloc(0));
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const written: string[] = [];
  for (const [file, content] of contents) {
    const target = path.join(dir, file);
    if (content === undefined) {
      fs.rmSync(target, { force: true });
      continue;
    }
    const temp = `${target}.tmp-${process.pid}`;
    fs.writeFileSync(temp, content, { mode: 0o600 });
    fs.renameSync(temp, target);
    written.push(file);
  }
  return written;
}
