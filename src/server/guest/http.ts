/**
 * The guest API's own copy of the HTTP plumbing (src/server/http/router.ts), loaded as a
 * second instance of that module, so that the admin API never shares code with the guest
 * request path.
 *
 * Why: V8 keeps what a function has seen (its inline caches, and the optimized code built
 * from them) per function, not per caller. With one router module, every admin request
 * (launch, delete, config set: other routes, other reply and option shapes, other
 * request-listener options, other `onAnswered` hooks) was fed into the same caches as the
 * guest's GETs: under --trace-deopt the guest path's optimized listener, `reply`, `match`
 * and `report` were thrown away during 200 launches ("wrong map", "wrong call target") and
 * rebuilt polymorphic, and nothing ever narrows them again. A module imported under
 * another URL (the query below) is a separate instance with functions of its own; it
 * still imports the same errors module, so ApolloError stays one class.
 */
import type * as Router from '../http/router.js';

const guestRouter = (await import(new URL('../http/router.js?api=guest', import.meta.url).href)) as typeof Router;

export const { answerClientError, endWithError, fixedError, json, parseJsonBody, rawResponse, routeRequests, splitTarget, text } = guestRouter;
export type { FixedReply, RequestInfo, Route } from '../http/router.js';
