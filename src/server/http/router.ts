/**
 * Route tables and their matching: a table lists method, path and handler; a Router finds
 * the route of a request's method and raw path (404 for an unknown path, 405 with Allow
 * for a known one asked with another method).
 */
import type { IncomingMessage } from 'node:http';
import { ApolloError } from '../../shared/errors.js';
import type { HandlerResult } from './reply.js';

export type Method = 'GET' | 'PATCH' | 'POST' | 'PUT' | 'DELETE';

export interface Route<C> {
  readonly method: Method;
  readonly path: string;
  /** Returns a reply (an error with an ETag is one: `errorReply`) or throws an ApolloError. */
  readonly handler: (context: C, request: RequestInfo) => HandlerResult | Promise<HandlerResult>;
  /**
   * Supports change-waiting (`?wait=true&etag=E&timeout=S`): what the answer's ETag
   * follows, so that only a change of it wakes the wait. The handler must answer
   * synchronously: nothing may happen between reading the answer and waiting again.
   */
  readonly waitsOn?: (request: RequestInfo) => string;
  /**
   * Checks made before a request's body is read (its `body` is still empty): throwing
   * refuses it without the body ever being buffered (a write over its rate or quota).
   */
  readonly beforeBody?: (context: C, request: RequestInfo) => void;
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
  if (value === undefined) {
    value = create();
    map.set(key, value);
  }
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
