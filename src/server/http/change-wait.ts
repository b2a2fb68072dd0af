/**
 * Change-waiting on a waitable GET (`?wait=true&etag=E&timeout=S`, PROTOCOL.md section 3):
 * the answer comes at once when its ETag is not E, else when it changes, else at the
 * timeout, unchanged. The wait itself (its topics, its limits) is the API's to provide.
 */
import type { IncomingMessage } from 'node:http';
import { ApolloError } from '../../shared/errors.js';
import type { HandlerResult } from './reply.js';
import type { RequestInfo, Route } from './router.js';

/** What a router needs for its waitable routes. */
export interface ChangeWaits<C> {
  /**
   * Resolves true at the context's next change of `topic` (or of anything that may end
   * its right to ask), false when `timeoutMs` passes or `signal` aborts first. It must be
   * registered before it returns.
   */
  next(context: C, topic: string, timeoutMs: number, signal: AbortSignal): Promise<boolean>;
  /** A wait is about to start: throw to refuse it (a limit). `end` follows exactly once. */
  begin(req: IncomingMessage): void;
  end(req: IncomingMessage): void;
}

/** The longest change-wait a client may ask for, in seconds. */
export const maxWaitSeconds = 600;

/**
 * Waits until the answer's ETag is no longer the one asked for (or the one it had),
 * or the time is up; the answer then, or undefined when the connection closed first.
 * Each wake-up asks `contextOf` again (whatever changed may have been the caller's right
 * to ask) and the handler again, with nothing in between, so that the next wait is
 * registered before anything else can change.
 *
 * A wait belongs to its connection: it ends when the socket closes, whether or not its
 * response was ever attached to the socket (node:http attaches a pipelined request's
 * response only once the one before it is done, and a response never attached never
 * hears of the close).
 */
export async function waitForChange<C>(
  req: IncomingMessage,
  waits: ChangeWaits<C>,
  contextOf: (req: IncomingMessage) => C,
  route: Route<C>,
  topic: string,
  info: RequestInfo,
  context: C,
  first: HandlerResult,
): Promise<HandlerResult | undefined> {
  const { etag, timeoutMs } = waitParameters(info.query);
  const wanted = normalizeEtag(etag ?? etagOf(first));
  if (normalizeEtag(etagOf(first)) !== wanted || timeoutMs <= 0) return first;
  const deadline = Date.now() + timeoutMs;
  const socket = req.socket;
  const closed = new AbortController();
  const onClose = (): void => closed.abort();
  waits.begin(req);
  if (socket.destroyed) closed.abort();
  else socket.once('close', onClose);
  try {
    let current = context;
    let result = first;
    while (normalizeEtag(etagOf(result)) === wanted && Date.now() < deadline) {
      await waits.next(current, topic, deadline - Date.now(), closed.signal);
      if (closed.signal.aborted) return undefined;
      current = contextOf(req);
      const next = route.handler(current, info);
      result = next instanceof Promise ? await next : next;
    }
    return result;
  } finally {
    socket.off('close', onClose);
    waits.end(req);
  }
}

/** `etag` (optional: without it, wait for the next change) and `timeout` (seconds, default 60). */
export function waitParameters(query: URLSearchParams): { etag: string | undefined; timeoutMs: number } {
  const raw = query.get('timeout');
  let seconds = 60;
  if (raw !== null) {
    seconds = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(seconds) || seconds < 0) {
      throw new ApolloError('bad-request', `timeout must be a number of seconds, not ${JSON.stringify(raw)}`);
    }
  }
  return { etag: query.get('etag') ?? undefined, timeoutMs: Math.min(seconds, maxWaitSeconds) * 1000 };
}

/** Clients may send an ETag as the header had it ("x") or bare (x). */
export function normalizeEtag(etag: string | undefined): string | undefined {
  return etag?.replace(/^W\//, '').replace(/^"(.*)"$/, '$1');
}

function etagOf(result: HandlerResult): string | undefined {
  return 'stream' in result ? undefined : result.etag;
}
