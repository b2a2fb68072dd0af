/**
 * The HTTP plumbing both APIs share: a route table matcher, replies, and the one place
 * where errors become responses. Handlers return a Reply or throw an ApolloError; they
 * never write error responses themselves.
 */
import { type IncomingMessage, type RequestListener, type ServerResponse, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { ApolloError, errorEnvelope } from '../../shared/errors.js';

export type Method = 'GET' | 'PATCH' | 'POST' | 'PUT' | 'DELETE';

/** A finished answer; `etag` is sent with 200s and compared with If-None-Match. */
export interface Reply {
  readonly status?: number;
  readonly contentType?: string;
  readonly body: string | Buffer;
  readonly headers?: Readonly<Record<string, string>>;
  readonly etag?: string;
}

/** A handler that takes the response over (event streams, long waits). */
export interface StreamReply {
  readonly stream: (req: IncomingMessage, res: ServerResponse) => void;
}

export type HandlerResult = Reply | StreamReply;

export interface Route<C> {
  readonly method: Method;
  readonly path: string;
  readonly handler: (context: C, request: RequestInfo) => HandlerResult | Promise<HandlerResult>;
  /**
   * Supports change-waiting (`?wait=true&etag=E&timeout=S`): what the answer's ETag
   * follows, so that only a change of it wakes the wait. The handler must answer
   * synchronously: nothing may happen between reading the answer and waiting again.
   */
  readonly waitsOn?: (request: RequestInfo) => string;
}

/** What a handler sees of the request, already parsed. */
export interface RequestInfo {
  readonly method: string;
  readonly params: Readonly<Record<string, string>>;
  readonly query: URLSearchParams;
  readonly headers: IncomingMessage['headers'];
  /** The request body; read only for methods that carry one. */
  readonly body: Buffer;
}

export const jsonType = 'application/json';
export const textType = 'text/plain; charset=utf-8';

export function json(value: unknown, options: { status?: number; etag?: string } = {}): Reply {
  return reply(jsonType, JSON.stringify(value), options);
}

export function text(value: string | Buffer, options: { etag?: string } = {}): Reply {
  return reply(textType, value, options);
}

/**
 * Built field by field: in V8 an object spread followed by more properties
 * (`{ ...options, body }`) takes a slow path that cost about 1 µs per reply.
 */
function reply(contentType: string, body: string | Buffer, options: { status?: number; etag?: string }): Reply {
  const out: { -readonly [K in keyof Reply]: Reply[K] } = { contentType, body };
  if (options.status !== undefined) out.status = options.status;
  if (options.etag !== undefined) out.etag = options.etag;
  return out;
}

/**
 * An answer made once and written many times (a refusal under a flood): its headers,
 * Content-Length included, are one object that is never copied, and its body is constant.
 */
export interface FixedReply {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | number>>;
  readonly body: string;
}

/** The error envelope of `error` as a FixedReply. */
export function fixedError(error: ApolloError): FixedReply {
  const body = errorEnvelope(error.status, error.message);
  return {
    status: error.status,
    headers: { ...error.headers, 'Content-Type': jsonType, 'Content-Length': Buffer.byteLength(body, 'utf8') },
    body,
  };
}

function sendFixed(req: IncomingMessage, res: ServerResponse, reply: FixedReply): void {
  res.writeHead(reply.status, reply.headers);
  res.end(req.method === 'HEAD' ? undefined : reply.body);
}

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

interface CompiledRoute<C> {
  readonly route: Route<C>;
  readonly segments: readonly string[];
  /** Whether any segment is a `:param`. */
  readonly hasParams: boolean;
}

export interface RouteMatch<C> {
  readonly route: Route<C>;
  readonly params: Record<string, string>;
}

/** Matches request paths against one route table. */
export class Router<C> {
  private readonly compiled: CompiledRoute<C>[];
  /**
   * Method, then path, of the routes without parameters that no earlier route shadows:
   * two map lookups instead of a walk of the table (the answer is the walk's answer).
   */
  private readonly exact = new Map<string, Map<string, Route<C>>>();
  /**
   * By method, the routes whose only parameter is their last segment and that no earlier
   * route can shadow (`/1.0/config/:key`), with the path up to that segment. A table has
   * few of them: comparing prefixes beats slicing and hashing the path.
   */
  private readonly lastParam = new Map<string, { prefix: string; route: Route<C>; name: string }[]>();

  constructor(routes: readonly Route<C>[]) {
    this.compiled = routes.map((route) => {
      const segments = route.path.split('/');
      return { route, segments, hasParams: segments.some((s) => s.startsWith(':')) };
    });
    for (const [i, { route, segments, hasParams }] of this.compiled.entries()) {
      const earlier = this.compiled.slice(0, i);
      for (const method of route.method === 'GET' ? ['GET', 'HEAD'] : [route.method]) {
        const before = earlier.filter((c) => methodMatches(c.route.method, method));
        if (!hasParams) {
          if (before.some((c) => matchSegments(c.segments, segments) !== undefined)) continue;
          entryOf(this.exact, method, () => new Map()).set(route.path, route);
          continue;
        }
        const last = segments[segments.length - 1] as string;
        const onlyLast = segments.slice(0, -1).every((s) => !s.startsWith(':')) && last.startsWith(':');
        if (!onlyLast || before.some((c) => mayOverlap(c.segments, segments))) continue;
        const prefix = route.path.slice(0, route.path.lastIndexOf('/') + 1);
        const routes = entryOf(this.lastParam, method, () => []);
        if (!routes.some((r) => r.prefix === prefix)) routes.push({ prefix, route, name: last.slice(1) });
      }
    }
  }

  /**
   * The route for a method and raw path. Unknown path: 404; known path with another
   * method: 405 with Allow. Each `:param` is one percent-decoded segment.
   */
  match(method: string, rawPath: string): RouteMatch<C> {
    // Prefixes first: the two kinds never match the same path, and comparing a prefix or
    // two is cheaper than hashing a path the map has not seen (a config key's, say).
    for (const { prefix, route, name } of this.lastParam.get(method) ?? noLastParams) {
      if (rawPath.length > prefix.length && rawPath.startsWith(prefix) && rawPath.indexOf('/', prefix.length) === -1) {
        const params: Record<string, string> = {};
        params[name] = decodeSegment(rawPath.slice(prefix.length));
        return { route, params };
      }
    }
    const exact = this.exact.get(method)?.get(rawPath);
    if (exact !== undefined) return { route: exact, params: {} };
    const segments = rawPath.split('/');
    const allowed: string[] = [];
    for (const { route, segments: pattern } of this.compiled) {
      const params = matchSegments(pattern, segments);
      if (params === undefined) continue;
      if (methodMatches(route.method, method)) return { route, params };
      allowed.push(route.method);
      if (route.method === 'GET') allowed.push('HEAD');
    }
    if (allowed.length === 0) throw new ApolloError('not-found', 'not found');
    throw new ApolloError('method-not-allowed', `method ${method} is not allowed here`, {
      headers: { Allow: [...new Set(allowed)].join(', ') },
    });
  }
}

const noLastParams: readonly { prefix: string; route: never; name: string }[] = [];

/** The value of `key`, made with `create` and stored the first time. */
function entryOf<K, V>(map: Map<K, V>, key: K, create: () => V): V {
  let value = map.get(key);
  if (value === undefined) map.set(key, (value = create()));
  return value;
}

/** Whether some path could match both patterns (same length, no two different literals). */
function mayOverlap(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  return a.every((s, i) => s.startsWith(':') || (b[i] as string).startsWith(':') || s === b[i]);
}

/** A route's method answers a request's: itself, and GET answers HEAD. */
function methodMatches(routeMethod: Method, method: string): boolean {
  return routeMethod === method || (method === 'HEAD' && routeMethod === 'GET');
}

function matchSegments(pattern: readonly string[], segments: readonly string[]): Record<string, string> | undefined {
  if (pattern.length !== segments.length) return undefined;
  // Literal segments first: most routes fail there, before anything is decoded or allocated.
  for (let i = 0; i < pattern.length; i++) {
    const expected = pattern[i] as string;
    const actual = segments[i] as string;
    if (expected.startsWith(':') ? actual === '' : expected !== actual) return undefined;
  }
  const params: Record<string, string> = {};
  for (let i = 0; i < pattern.length; i++) {
    const expected = pattern[i] as string;
    if (expected.startsWith(':')) params[expected.slice(1)] = decodeSegment(segments[i] as string);
  }
  return params;
}

function decodeSegment(segment: string): string {
  if (!segment.includes('%')) return segment;
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new ApolloError('bad-request', 'invalid percent-encoding in the path');
  }
}

/** Splits a request target into its raw path and query; rejects what is not a path. */
export function splitTarget(target: string): { path: string; query: URLSearchParams } {
  if (!target.startsWith('/')) throw new ApolloError('bad-request', 'the request target must be a path');
  const q = target.indexOf('?');
  if (q === -1) return { path: target, query: noQuery };
  return { path: target.slice(0, q), query: new URLSearchParams(target.slice(q + 1)) };
}

/** The query of every request without one; handlers only read queries, never change them. */
const noQuery = new URLSearchParams();

/**
 * The request listener of an API: `contextOf` decides who may ask (throwing 401/403), the
 * router finds the handler, the handler's reply or error is written here and nowhere else.
 */
export function routeRequests<C>(
  routes: readonly Route<C>[],
  options: {
    readonly contextOf: (req: IncomingMessage) => C;
    /**
     * Checks made once per request before anything else (limits): a refusal to send as it
     * is (made once, so that refusing costs next to nothing), or undefined. May also throw.
     */
    readonly admit?: (req: IncomingMessage) => FixedReply | undefined;
    readonly maxBodyBytes: number;
    readonly maxUrlBytes?: number;
    readonly onUnexpected: (req: IncomingMessage, error: unknown) => void;
    /** For waitable routes; without it they answer at once. */
    readonly waits?: ChangeWaits<C>;
    /** Called once per request when its answer is done: the route's pattern ("unmatched" if none). */
    readonly onAnswered?: (req: IncomingMessage, route: string, status: number, seconds: number) => void;
  },
): RequestListener {
  const router = new Router(routes);
  const onAnswered = options.onAnswered;
  const report = (req: IncomingMessage, res: ServerResponse, pattern: string, started: number): void =>
    onAnswered?.(req, pattern, res.statusCode, (performance.now() - started) / 1000);
  return (req, res) => {
    let pattern = 'unmatched';
    const started = onAnswered === undefined ? 0 : performance.now();
    let reported = false;
    // Synchronous up to the first thing that has to wait (a body, an asynchronous handler,
    // a change-wait): a GET answered at once is written within this call, without a
    // promise, a round through the microtask queue, or a closure made for it.
    try {
      const refusal = options.admit?.(req);
      if (refusal !== undefined) {
        sendFixed(req, res, refusal);
        reported = true;
        report(req, res, pattern, started);
        return;
      }
      if (options.maxUrlBytes !== undefined && (req.url ?? '').length > options.maxUrlBytes) {
        throw new ApolloError('uri-too-long', `the request target is longer than ${options.maxUrlBytes} bytes`);
      }
      const context = options.contextOf(req);
      const { path, query } = splitTarget(req.url ?? '');
      const method = req.method ?? '';
      const { route, params } = router.match(method, path);
      pattern = route.path;
      const wait = route.waitsOn !== undefined && options.waits !== undefined && query.get('wait') === 'true';
      let first: HandlerResult | ApolloError | Promise<HandlerResult | ApolloError> | undefined;
      if (route.method === 'GET') {
        first = answer(route, context, { method, params, query, headers: req.headers, body: noBody });
        if (!wait && !(first instanceof Promise) && !(first instanceof ApolloError) && !('stream' in first)) {
          sendReply(req, res, first);
          // Reported once, right after the answer is written: never again from the catch.
          reported = true;
          report(req, res, pattern, started);
          return;
        }
      }
      reported = true;
      answerLater(req, res, { route, params, query, method, context, wait, first, pattern, started });
    } catch (error) {
      if (!(error instanceof ApolloError)) options.onUnexpected(req, error);
      sendError(req, res, error);
      if (!reported) report(req, res, pattern, started);
    }
  };

  /**
   * The rest of a request that is not a GET answered at once: one whose handler has
   * returned (`first`, for a GET) or is still to run, with a body to read, a stream to
   * start or a change to wait for.
   */
  function answerLater(
    req: IncomingMessage,
    res: ServerResponse,
    request: {
      readonly route: Route<C>;
      readonly params: Record<string, string>;
      readonly query: URLSearchParams;
      readonly method: string;
      readonly context: C;
      readonly wait: boolean;
      readonly first: HandlerResult | ApolloError | Promise<HandlerResult | ApolloError> | undefined;
      readonly pattern: string;
      readonly started: number;
    },
  ): void {
    const { route, params, query, method, wait, first, pattern, started } = request;
    let reported = false;
    // Once per request: right after an answer is written, or when a stream or a wait ends.
    // Called directly rather than from a 'close' listener on every response, which cost
    // the keep-alive path about 4 µs a request.
    const answered = (): void => {
      if (reported) return;
      reported = true;
      report(req, res, pattern, started);
    };
    const fail = (error: unknown): void => {
      if (!(error instanceof ApolloError)) options.onUnexpected(req, error);
      sendError(req, res, error);
      answered();
    };
    const finish = (result: HandlerResult | ApolloError): void => {
      if (result instanceof ApolloError) throw result;
      if ('stream' in result) {
        // Its end: the response's close, or the socket's when the response (pipelined
        // behind another) was never attached to it.
        const socket = req.socket;
        const ended = (): void => {
          res.off('close', ended);
          socket.off('close', ended);
          answered();
        };
        res.once('close', ended);
        socket.once('close', ended);
        result.stream(req, res);
      } else {
        sendReply(req, res, result);
        answered();
      }
    };
    try {
      if (first !== undefined && !(first instanceof Promise) && !wait) {
        finish(first);
        return;
      }
      void (async () => {
        const body = route.method === 'GET' ? noBody : await readBody(req, options.maxBodyBytes);
        const info: RequestInfo = { method, params, query, headers: req.headers, body };
        let result = first ?? answer(route, request.context, info);
        if (result instanceof Promise) result = await result;
        const waits = options.waits;
        if (wait && waits !== undefined && route.waitsOn !== undefined) {
          const waited = await waitForChange(req, waits, route, route.waitsOn(info), info, request.context, result);
          if (waited === undefined) {
            answered();
            return;
          }
          result = waited;
        }
        finish(result);
      })().catch(fail);
    } catch (error) {
      fail(error);
    }
  }

  /**
   * Waits until the answer's ETag is no longer the one asked for (or the one it had),
   * or the time is up; the answer then, or undefined when the connection closed first.
   *
   * A wait belongs to its connection: it ends when the socket closes, whether or not its
   * response was ever attached to the socket (node:http attaches a pipelined request's
   * response only once the one before it is done, and a response never attached never
   * hears of the close).
   */
  async function waitForChange(
    req: IncomingMessage,
    waits: ChangeWaits<C>,
    route: Route<C>,
    topic: string,
    info: RequestInfo,
    context: C,
    first: HandlerResult | ApolloError,
  ): Promise<HandlerResult | ApolloError | undefined> {
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
        // Whatever changed may have been the caller's right to ask. Read again at once,
        // with nothing in between, so that the next wait is registered before anything
        // else can change.
        current = options.contextOf(req);
        const next = answer(route, current, info);
        result = next instanceof Promise ? await next : next;
      }
      return result;
    } finally {
      socket.off('close', onClose);
      waits.end(req);
    }
  }
}

/**
 * Runs a route's handler. An error that names an ETag (the 404 of a config key) is
 * returned rather than thrown, so that it can be waited on like a reply.
 */
function answer<C>(
  route: Route<C>,
  context: C,
  info: RequestInfo,
): HandlerResult | ApolloError | Promise<HandlerResult | ApolloError> {
  try {
    const out = route.handler(context, info);
    return out instanceof Promise ? out.catch(waitable) : out;
  } catch (error) {
    return waitable(error);
  }
}

function waitable(error: unknown): ApolloError {
  if (error instanceof ApolloError && error.headers['ETag'] !== undefined) return error;
  throw error;
}

/** The body of every GET: never read, never written to. */
const noBody = Buffer.alloc(0);

/** The longest change-wait a client may ask for, in seconds. */
export const maxWaitSeconds = 600;

/** `etag` (optional: without it, wait for the next change) and `timeout` (seconds, default 60). */
function waitParameters(query: URLSearchParams): { etag: string | undefined; timeoutMs: number } {
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
function normalizeEtag(etag: string | undefined): string | undefined {
  return etag?.replace(/^W\//, '').replace(/^"(.*)"$/, '$1');
}

function etagOf(result: HandlerResult | ApolloError): string | undefined {
  if (result instanceof ApolloError) return result.headers['ETag'];
  return 'stream' in result ? undefined : result.etag;
}

/** Writes a reply; a matching If-None-Match turns a 200 into a 304. */
export function sendReply(req: IncomingMessage, res: ServerResponse, reply: Reply): void {
  const status = reply.status ?? 200;
  const headers: Record<string, string | number> = reply.headers === undefined ? {} : { ...reply.headers };
  if (reply.etag !== undefined && status === 200) {
    headers['ETag'] = reply.etag;
    if (ifNoneMatchHits(req.headers['if-none-match'], reply.etag)) {
      res.writeHead(304, headers);
      res.end();
      return;
    }
  }
  if (reply.contentType !== undefined) headers['Content-Type'] = reply.contentType;
  // A string body is written as a string: node:http sends it in one write together with
  // the headers, where a Buffer takes a second chunk and a writev.
  headers['Content-Length'] = typeof reply.body === 'string' ? Buffer.byteLength(reply.body, 'utf8') : reply.body.length;
  res.writeHead(status, headers);
  res.end(req.method === 'HEAD' ? undefined : reply.body);
}

function ifNoneMatchHits(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  return header.split(',').some((candidate) => {
    const tag = candidate.trim();
    return tag === '*' || tag === etag || tag === `W/${etag}`;
  });
}

/** Renders any thrown value as the JSON error envelope; unknown errors become a 500. */
export function sendError(req: IncomingMessage, res: ServerResponse, error: unknown): void {
  const apollo = error instanceof ApolloError ? error : new ApolloError('internal', 'internal error', { cause: error });
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = errorEnvelope(apollo.status, apollo.message);
  const headers: Record<string, string | number> = { ...apollo.headers };
  headers['Content-Type'] = jsonType;
  headers['Content-Length'] = Buffer.byteLength(body, 'utf8');
  res.writeHead(apollo.status, headers);
  res.end(req.method === 'HEAD' ? undefined : body);
}

/** Reads a request body up to `limit` bytes; 413 beyond it. */
export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) throw new ApolloError('payload-too-large', `the request body is larger than ${limit} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new ApolloError('payload-too-large', `the request body is larger than ${limit} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** Parses a JSON request body; 400 with the reason when it is not JSON. */
export function parseJsonBody(body: Buffer): unknown {
  if (body.length === 0) throw new ApolloError('bad-request', 'a JSON request body is required');
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (error) {
    throw new ApolloError('bad-request', `the request body is not valid JSON: ${(error as Error).message}`);
  }
}

const parserErrors: Record<string, ApolloError['code']> = {
  HPE_HEADER_OVERFLOW: 'header-too-large',
  ERR_HTTP_REQUEST_TIMEOUT: 'request-timeout',
  HPE_URI_TOO_LONG: 'uri-too-long',
};

/**
 * Node's HTTP parser rejects some requests before any handler runs (bad syntax, headers
 * too large, timeouts). Those answers carry the same JSON envelope as every other error.
 */
export function answerClientError(error: NodeJS.ErrnoException, socket: Socket): void {
  if (error.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const code = parserErrors[error.code ?? ''] ?? 'bad-request';
  endWithError(socket, new ApolloError(code, clientErrorMessage(code)));
}

/** Answers on a bare socket (no ServerResponse to write to) with the error envelope, and closes it. */
export function endWithError(socket: Duplex, apollo: ApolloError): void {
  socket.end(rawResponse(fixedError(apollo)));
}

/**
 * The bytes of a whole HTTP response that closes its connection, for answering on a bare
 * socket; made once for refusals that can come in floods (connection limits).
 */
export function rawResponse(reply: FixedReply): string {
  const headers = Object.entries(reply.headers)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('');
  const close = 'Connection' in reply.headers ? '' : 'Connection: close\r\n';
  return `HTTP/1.1 ${reply.status} ${STATUS_CODES[reply.status] ?? 'Error'}\r\n${headers}${close}\r\n${reply.body}`;
}

function clientErrorMessage(code: ApolloError['code']): string {
  switch (code) {
    case 'header-too-large':
      return 'request headers too large';
    case 'request-timeout':
      return 'request timed out';
    case 'uri-too-long':
      return 'request URI too long';
    default:
      return 'malformed HTTP request';
  }
}
