/**
 * The one event hub behind both APIs' `GET /1.0/events`: guest streams (one JSON object
 * per line, or websocket messages with `Upgrade: websocket`) and the admin socket's
 * streams (`devapollo monitor`).
 *
 * Each listener has its own filter: a guest hears only its own container's events, and
 * config events only for keys it may read, re-checking its right to listen at every
 * event and heartbeat; the host hears every container (or one, by name) and every key.
 * Guest listeners are indexed by container, so an event costs work for that container's
 * listeners (and the host's) only.
 *
 * The limits are the same for everyone and live here: a listener whose unsent bytes pass
 * `maxBufferedBytes` is dropped, never waited for (counted in metrics), so that a reader
 * that never reads cannot grow the daemon; heartbeats (an empty line, or a websocket
 * ping) keep streams open through proxies and let the daemon notice dead peers; no idle
 * timeout ever cuts a stream.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { type WebSocket, WebSocketServer } from 'ws';
import { ApolloError } from '../../shared/errors.js';
import { isGuestReadableKey } from '../../shared/names.js';
import type { Container } from '../containers/container.js';
import type { ContainerEvent, ContainerManager } from '../containers/manager.js';
import type { StreamReply } from '../http/reply.js';

/** `device` is accepted as LXD clients ask for it (`config,device`); there are no device events yet. */
export type EventType = 'config' | 'lifecycle' | 'device';
const eventTypes: readonly EventType[] = ['config', 'lifecycle', 'device'];

/** `?type=config,lifecycle,device`; absent means all. */
export function parseEventTypes(raw: string | null): ReadonlySet<EventType> {
  if (raw === null || raw === '') return new Set(eventTypes);
  const types = new Set<EventType>();
  for (const part of raw.split(',')) {
    if (!eventTypes.includes(part as EventType)) {
      throw new ApolloError('bad-request', `unknown event type ${JSON.stringify(part)}: use ${eventTypes.join(', ')}`);
    }
    types.add(part as EventType);
  }
  return types;
}

export interface EventLimits {
  /** Guest streams per container (the host's are not counted). */
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

/** What a guest stream needs of its request: the container and whether it may still listen. */
export interface EventSubscriber {
  readonly container: Container;
  readonly authorized: () => boolean;
}

type Audience = 'guest' | 'admin';

/** Where a listener's events go: a response (one JSON object per line) or a websocket. */
interface Sink {
  /** Bytes written but not yet sent. */
  buffered(): number;
  /** `text` is the event's JSON, `line` the same with its newline. */
  write(text: string, line: string): void;
  heartbeat(): void;
  /** Ends the stream politely (no longer served, or shutdown). */
  close(): void;
  /** Ends it at once (fell behind). */
  drop(): void;
}

interface Listener {
  readonly audience: Audience;
  readonly types: ReadonlySet<EventType>;
  /** A guest's container; undefined for the host. */
  readonly container: Container | undefined;
  /** The one container (by name) the host follows; undefined for all (or for a guest). */
  readonly name: string | undefined;
  readonly authorized: () => boolean;
  readonly sink: Sink;
  /** Forgets the listener's close handlers; set once it is added. */
  detach: () => void;
}

const always = (): boolean => true;
const noop = (): void => undefined;

export class EventHub {
  /** Guest listeners by container. */
  private readonly guests = new Map<Container, Set<Listener>>();
  private readonly admins = new Set<Listener>();
  private guestCount = 0;
  private readonly websockets = new WebSocketServer({ noServer: true, maxPayload: 4096 });
  private readonly timer: NodeJS.Timeout;
  /** Events sent, and listeners dropped for falling behind, by audience. */
  readonly stats = { guest: { delivered: 0, dropped: 0 }, admin: { delivered: 0, dropped: 0 } };

  constructor(
    manager: ContainerManager,
    private readonly limits: EventLimits = defaultEventLimits,
  ) {
    manager.on('event', (event, container) => this.dispatch(event, container));
    this.timer = setInterval(() => this.beat(), limits.heartbeatMs);
    this.timer.unref();
  }

  /** Open guest streams. */
  get size(): number {
    return this.guestCount;
  }

  /** Containers with guest streams open (the index of listeners by container). */
  get containerCount(): number {
    return this.guests.size;
  }

  /** Open admin streams. */
  get adminSize(): number {
    return this.admins.size;
  }

  /** A guest stream of one JSON object per line; 429 when the container has too many listeners. */
  guestStream(subscriber: EventSubscriber, types: ReadonlySet<EventType>): StreamReply {
    this.checkCapacity(subscriber.container);
    return {
      stream: (req: IncomingMessage, res: ServerResponse) => {
        // Every 200 to a GET carries an ETag (docs/api.md, "Conventions"); a stream's never changes.
        const etag = subscriber.container.etag(0);
        this.streamTo(
          req,
          res,
          { 'Content-Type': 'application/x-ndjson', 'Cache-Control': 'no-cache', ETag: etag },
          {
            audience: 'guest',
            types,
            container: subscriber.container,
            name: undefined,
            authorized: subscriber.authorized,
          },
        );
      },
    };
  }

  /** Takes over an upgraded guest connection as a websocket. */
  guestWebsocket(subscriber: EventSubscriber, types: ReadonlySet<EventType>, req: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.checkCapacity(subscriber.container);
    this.websockets.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      let alive = true;
      const sink: Sink = {
        buffered: () => ws.bufferedAmount,
        write: (text) => ws.send(text),
        heartbeat: () => {
          if (!alive) {
            ws.terminate();
            return;
          }
          alive = false;
          ws.ping();
        },
        close: () => ws.close(1000, 'not served'),
        drop: () => ws.terminate(),
      };
      ws.on('pong', () => (alive = true));
      // Guests only listen; whatever they send is ignored.
      ws.on('message', noop);
      ws.on('error', () => ws.terminate());
      const listener = this.add({
        audience: 'guest',
        types,
        container: subscriber.container,
        name: undefined,
        authorized: subscriber.authorized,
        sink,
      });
      const end = (): void => this.remove(listener);
      ws.once('close', end);
      listener.detach = () => ws.off('close', end);
    });
  }

  /**
   * The host's stream (`devapollo monitor`): every container's events, or those of the
   * container named `name` (whichever container has that name), every key.
   */
  adminStream(name: string | undefined, types: ReadonlySet<EventType>): StreamReply {
    return {
      stream: (req, res) =>
        this.streamTo(
          req,
          res,
          { 'Content-Type': 'application/x-ndjson', 'Cache-Control': 'no-cache' },
          {
            audience: 'admin',
            types,
            container: undefined,
            name,
            authorized: always,
          },
        ),
    };
  }

  /**
   * Ends every stream at once (daemon shutdown). Upgraded websockets are no longer the
   * HTTP server's to close, and the server's close waits for them: they go first.
   */
  close(): void {
    clearInterval(this.timer);
    for (const listener of this.all()) {
      listener.detach();
      listener.sink.close();
    }
    this.guests.clear();
    this.admins.clear();
    this.guestCount = 0;
    for (const ws of this.websockets.clients) ws.terminate();
    this.websockets.close();
  }

  /** A listener on a response: ended by the response's close or by its socket's. */
  private streamTo(
    req: IncomingMessage,
    res: ServerResponse,
    headers: Readonly<Record<string, string>>,
    filter: Omit<Listener, 'sink' | 'detach'>,
  ): void {
    res.writeHead(200, headers);
    res.flushHeaders();
    req.socket.setNoDelay(true);
    const sink: Sink = {
      // Also counts what waits in the response itself, before it is attached to the socket.
      buffered: () => res.writableLength,
      write: (_text, line) => void res.write(line),
      heartbeat: () => void res.write('\n'),
      close: () => res.end(),
      drop: () => res.destroy(),
    };
    const listener = this.add({ ...filter, sink });
    // A response pipelined behind another is attached to the socket only once that one is
    // done, and never hears of the socket's close before then: listen to both.
    const end = (): void => this.remove(listener);
    res.once('close', end);
    req.socket.once('close', end);
    listener.detach = () => {
      res.off('close', end);
      req.socket.off('close', end);
    };
  }

  private checkCapacity(container: Container): void {
    if ((this.guests.get(container)?.size ?? 0) >= this.limits.maxListenersPerContainer) {
      throw new ApolloError('too-many-requests', `too many event listeners for this container (${this.limits.maxListenersPerContainer})`, {
        headers: { 'Retry-After': '5' },
      });
    }
  }

  private add(fields: Omit<Listener, 'detach'>): Listener {
    const listener: Listener = { ...fields, detach: noop };
    if (listener.container === undefined) {
      this.admins.add(listener);
      return listener;
    }
    let set = this.guests.get(listener.container);
    if (set === undefined) {
      set = new Set();
      this.guests.set(listener.container, set);
    }
    set.add(listener);
    this.guestCount++;
    return listener;
  }

  /** Forgets a listener (once: later calls change nothing). */
  private remove(listener: Listener): void {
    listener.detach();
    listener.detach = noop;
    if (listener.container === undefined) {
      this.admins.delete(listener);
      return;
    }
    const set = this.guests.get(listener.container);
    if (set === undefined || !set.delete(listener)) return;
    this.guestCount--;
    if (set.size === 0) this.guests.delete(listener.container);
  }

  /** Ends a guest listener that may no longer listen. */
  private end(listener: Listener): void {
    this.remove(listener);
    listener.sink.close();
  }

  /** Sends unless the listener has fallen behind, in which case it is dropped. */
  private send(listener: Listener, text: string, line: string): void {
    const stats = this.stats[listener.audience];
    if (listener.sink.buffered() > this.limits.maxBufferedBytes) {
      stats.dropped++;
      this.remove(listener);
      listener.sink.drop();
      return;
    }
    listener.sink.write(text, line);
    stats.delivered++;
  }

  private dispatch(event: ContainerEvent, container: Container): void {
    const guests = this.guests.get(container);
    if (guests !== undefined) {
      const visible = event.type !== 'config' || isGuestReadableKey(String(event.metadata['key']));
      let text: string | undefined;
      let line = '';
      for (const listener of [...guests]) {
        // The right to listen is re-checked at every event, shown or not: stop, delete and
        // the off switch (itself an invisible security.* change) end streams at once.
        if (!listener.authorized()) {
          this.end(listener);
          continue;
        }
        if (!visible || !listener.types.has(event.type)) continue;
        if (text === undefined) {
          text = JSON.stringify({ type: event.type, timestamp: event.timestamp, metadata: event.metadata });
          line = `${text}\n`;
        }
        this.send(listener, text, line);
      }
    }
    if (this.admins.size === 0) return;
    let text: string | undefined;
    let line = '';
    for (const listener of [...this.admins]) {
      if ((listener.name !== undefined && listener.name !== event.container) || !listener.types.has(event.type)) continue;
      if (text === undefined) {
        text = JSON.stringify(event);
        line = `${text}\n`;
      }
      this.send(listener, text, line);
    }
  }

  private beat(): void {
    for (const listener of this.all()) {
      if (listener.authorized()) listener.sink.heartbeat();
      else this.end(listener);
    }
  }

  /** Every listener, as a copy (the caller may remove some). */
  private all(): Listener[] {
    const out = [...this.admins];
    for (const set of this.guests.values()) out.push(...set);
    return out;
  }
}
