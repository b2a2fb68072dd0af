/**
 * The request pipeline both APIs share: admission, who is asking, the route, the body,
 * the handler, a change-wait, and the answer written; errors become the JSON envelope
 * here and nowhere else. Handlers return a reply or throw an ApolloError; they never
 * write error responses themselves.
 *
 * A GET answered at once takes the synchronous fast path: written within the listener
 * call, without a promise, a round through the microtask queue, or a closure made for
 * it (the keep-alive benchmark's request path).
 */
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { ApolloError } from '../../shared/errors.js';
import { noBody, readBody } from './body.js';
import { type ChangeWaits, waitForChange } from './change-wait.js';
import type * as Replies from './reply.js';
import type { FixedReply, HandlerResult } from './reply.js';
import type * as Routing from './router.js';
import type { RequestInfo, Route } from './router.js';

// This module's own query (src/server/guest/http.ts loads a second instance of it, for the
// guest API alone) goes on to the reply and router modules it uses, so that each instance
// of the pipeline has its own copy of the code on its request path.
const instance = new URL(import.meta.url).search;
const { sendError, sendFixed, sendReply } = (await import(`./reply.js${instance}`)) as typeof Replies;
const { Router, splitTarget } = (await import(`./router.js${instance}`)) as typeof Routing;

/** How an API's listener is put together. */
export interface PipelineOptions<C> {
  /** Decides who may ask (throwing 401/403) and what the handlers get. */
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
}

/** A request past its route that is answered later: what answerLater needs of it. */
interface PendingRequest<C> {
  readonly route: Route<C>;
  readonly params: Record<string, string>;
  readonly query: URLSearchParams;
  readonly method: string;
  readonly context: C;
  readonly wait: boolean;
  /** A GET's handler result; undefined when the handler is still to run (after the body). */
  readonly first: HandlerResult | Promise<HandlerResult> | undefined;
  readonly pattern: string;
  readonly started: number;
}

/**
 * The request listener of an API: `contextOf` decides who may ask, the router finds the
 * handler, the handler's reply or error is written here and nowhere else.
 */
export function routeRequests<C>(routes: readonly Route<C>[], options: PipelineOptions<C>): RequestListener {
  const router = new Router(routes);
  const onAnswered = options.onAnswered;
  const report = (req: IncomingMessage, res: ServerResponse, pattern: string, started: number): void =>
    onAnswered?.(req, pattern, res.statusCode, (performance.now() - started) / 1000);
  return (req, res) => {
    let pattern = 'unmatched';
    const started = onAnswered === undefined ? 0 : performance.now();
    let reported = false;
    // Synchronous up to the first thing that has to wait (a body, an asynchronous handler,
    // a change-wait).
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
      let first: HandlerResult | Promise<HandlerResult> | undefined;
      if (route.method === 'GET') {
        first = route.handler(context, { method, params, query, headers: req.headers, body: noBody });
        if (!wait && !(first instanceof Promise) && !('stream' in first)) {
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
  function answerLater(req: IncomingMessage, res: ServerResponse, request: PendingRequest<C>): void {
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
    const finish = (result: HandlerResult): void => {
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
        let body: Buffer = noBody;
        let context = request.context;
        if (route.method !== 'GET') {
          route.beforeBody?.(context, { method, params, query, headers: req.headers, body });
          body = await readBody(req, options.maxBodyBytes);
          // Asked again once the body is in: the body may come long after the headers, from
          // a connection whose container has stopped or been deleted (and re-created) since.
          context = options.contextOf(req);
        }
        const info: RequestInfo = { method, params, query, headers: req.headers, body };
        let result = first ?? route.handler(context, info);
        if (result instanceof Promise) result = await result;
        const waits = options.waits;
        if (wait && waits !== undefined && route.waitsOn !== undefined) {
          const waited = await waitForChange(req, waits, options.contextOf, route, route.waitsOn(info), info, context, result);
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
}
