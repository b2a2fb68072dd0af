/**
 * GET /1.0/events for guests: each connection hears only its own container's events,
 * and config events only for keys it may read. A plain request gets one JSON object per
 * line (curl-friendly); `Upgrade: websocket` gets one message per event.
 *
 * Listeners are indexed by container, so an event costs work for that container's
 * listeners only. A listener that falls behind (its unsent bytes pass a limit) is
 * dropped, never waited for: a slow or dead reader cannot slow the daemon or anyone
 * else. Heartbeats (an empty line, or a websocket ping) keep streams open through
 * proxies and let the daemon notice dead peers; no idle timeout ever cuts a stream.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { type WebSocket, WebSocketServer } from 'ws';
import { ApolloError } from '../../shared/errors.js';
import { isGuestReadableKey } from '../../shared/names.js';
import type { Container } from '../containers/container.js';
import type { ContainerEvent, ContainerManager } from '../containers/manager.js';
import type { StreamReply } from '../http/router.js';

export type EventType = 'config' | 'lifecycle';
const eventTypes: readonly EventType[] = ['config', 'lifecycle'];

/** `?type=config,lifecycle`; absent means both. */
export function parseEventTypes(raw: string | null): ReadonlySet<EventType> {
  if (raw === null || raw === '') return new Set(eventTypes);
  const types = new Set<EventType>();
  for (const part of raw.split(',')) {
    if (!eventTypes.includes(part as EventType)) {
      throw new ApolloError('bad-request', `unknown event type ${JSON.stringify(part)}: use config, lifecycle`);
    }
    types.add(part as EventType);
  }
  return types;
}

export interface EventLimits {
  readonly maxListenersPerContainer: number;
  /** A listener with more than this many unsent bytes is dropped. */
  readonly maxBufferedBytes: number;
  readonly heartbeatMs: number;
}

export const defaultEventLimits: EventLimits = {
  maxListenersPerContainer: 64,
  maxBufferedBytes: 1024 * 1024,
  heartbeatMs: 15_000,
};

interface Listener {
  readonly types: ReadonlySet<EventType>;
  readonly authorized: () => boolean;
  /** Sends a line; false when the listener had to be dropped. */
  send(line: string): boolean;
  heartbeat(): void;
  close(): void;
}

/** What a stream needs of its request: the container and whether it may still listen. */
export interface EventSubscriber {
  readonly container: Container;
  readonly authorized: () => boolean;
}

export class GuestEventHub {
  private readonly listeners = new Map<Container, Set<Listener>>();
  private readonly websockets = new WebSocketServer({ noServer: true, maxPayload: 4096 });
  private readonly timer: NodeJS.Timeout;
  readonly stats = { delivered: 0, dropped: 0 };

  constructor(
    manager: ContainerManager,
    private readonly limits: EventLimits = defaultEventLimits,
  ) {
    manager.on('event', (event, container) => this.dispatch(event, container));
    this.timer = setInterval(() => this.beat(), limits.heartbeatMs);
    this.timer.unref();
  }

  get size(): number {
    let n = 0;
    for (const set of this.listeners.values()) n += set.size;
    return n;
  }

  /** A stream of one JSON object per line; 429 when the container has too many listeners. */
  streamTo(subscriber: EventSubscriber, types: ReadonlySet<EventType>): StreamReply {
    this.checkCapacity(subscriber.container);
    return {
      stream: (_req: IncomingMessage, res: ServerResponse) => {
        // Every 200 to a GET carries an ETag (PROTOCOL.md section 3); a stream's never changes.
        res.writeHead(200, { 'Content-Type': 'application/x-ndjson', 'Cache-Control': 'no-cache', ETag: subscriber.container.etag(0) });
        res.flushHeaders();
        res.socket?.setNoDelay(true);
        const listener: Listener = {
          types,
          authorized: subscriber.authorized,
          send: (line) => {
            if (res.writableLength > this.limits.maxBufferedBytes) {
              this.stats.dropped++;
              res.destroy();
              return false;
            }
            res.write(line);
            return true;
          },
          heartbeat: () => void res.write('\n'),
          close: () => res.end(),
        };
        this.add(subscriber.container, listener);
        res.once('close', () => this.remove(subscriber.container, listener));
      },
    };
  }

  /** Takes over an upgraded connection as a websocket. */
  upgrade(subscriber: EventSubscriber, types: ReadonlySet<EventType>, req: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.checkCapacity(subscriber.container);
    this.websockets.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      let alive = true;
      const listener: Listener = {
        types,
        authorized: subscriber.authorized,
        send: (line) => {
          if (ws.bufferedAmount > this.limits.maxBufferedBytes) {
            this.stats.dropped++;
            ws.terminate();
            return false;
          }
          ws.send(line.trimEnd());
          return true;
        },
        heartbeat: () => {
          if (!alive) {
            ws.terminate();
            return;
          }
          alive = false;
          ws.ping();
        },
        close: () => ws.close(1000, 'not served'),
      };
      ws.on('pong', () => (alive = true));
      // Guests only listen; whatever they send is ignored.
      ws.on('message', () => undefined);
      ws.on('error', () => ws.terminate());
      this.add(subscriber.container, listener);
      ws.once('close', () => this.remove(subscriber.container, listener));
    });
  }

  /**
   * Ends every stream at once (daemon shutdown). Upgraded websockets are no longer the
   * HTTP server's to close, and the server's close waits for them: they go first.
   */
  close(): void {
    clearInterval(this.timer);
    for (const set of this.listeners.values()) for (const listener of set) listener.close();
    this.listeners.clear();
    for (const ws of this.websockets.clients) ws.terminate();
    this.websockets.close();
  }

  private checkCapacity(container: Container): void {
    if ((this.listeners.get(container)?.size ?? 0) >= this.limits.maxListenersPerContainer) {
      throw new ApolloError('too-many-requests', `too many event listeners for this container (${this.limits.maxListenersPerContainer})`, {
        headers: { 'Retry-After': '5' },
      });
    }
  }

  private add(container: Container, listener: Listener): void {
    let set = this.listeners.get(container);
    if (set === undefined) this.listeners.set(container, (set = new Set()));
    set.add(listener);
  }

  private remove(container: Container, listener: Listener): void {
    const set = this.listeners.get(container);
    if (set === undefined) return;
    set.delete(listener);
    if (set.size === 0) this.listeners.delete(container);
  }

  private dispatch(event: ContainerEvent, container: Container): void {
    const set = this.listeners.get(container);
    if (set === undefined) return;
    const visible = event.type !== 'config' || isGuestReadableKey(String(event.metadata['key']));
    const line = visible ? `${JSON.stringify({ type: event.type, timestamp: event.timestamp, metadata: event.metadata })}\n` : '';
    for (const listener of [...set]) {
      // The right to listen is re-checked at every event, shown or not: stop, delete and
      // the off switch (itself an invisible security.* change) end streams at once.
      if (!listener.authorized()) {
        listener.close();
        this.remove(container, listener);
        continue;
      }
      if (!visible || !listener.types.has(event.type)) continue;
      if (listener.send(line)) this.stats.delivered++;
    }
  }

  private beat(): void {
    for (const [container, set] of this.listeners) {
      for (const listener of [...set]) {
        if (listener.authorized()) listener.heartbeat();
        else {
          listener.close();
          this.remove(container, listener);
        }
      }
    }
  }
}
