/**
 * The guest API's own copy of the request pipeline (src/server/http/pipeline.ts, with the
 * reply.ts and router.ts it loads), as second instances of those modules, so that the
 * admin API never shares code with the guest request path.
 *
 * Why: V8 keeps what a function has seen (its inline caches, and the optimized code built
 * from them) per function, not per caller. With one pipeline, every admin request
 * (launch, delete, config set: other routes, other reply and option shapes, other
 * request-listener options, another `onAnswered`) was fed into the same caches as the
 * guest's GETs: under --trace-deopt the guest path's `reply`, `match` and `report` were
 * thrown away during 200 launches ("wrong map", "wrong call target"), the listener's
 * loads of its options turned polymorphic, and nothing ever narrows them again. A module
 * imported under another URL (the query below) is a separate instance with functions of
 * its own; pipeline.ts passes its query on to the reply.js and router.js it loads, and
 * every instance still imports the same errors module, so ApolloError stays one class.
 */
import type * as Pipeline from '../http/pipeline.js';
import type * as Replies from '../http/reply.js';

const instance = '?api=guest';
const pipeline = (await import(new URL(`../http/pipeline.js${instance}`, import.meta.url).href)) as typeof Pipeline;
const replies = (await import(new URL(`../http/reply.js${instance}`, import.meta.url).href)) as typeof Replies;

export const { routeRequests } = pipeline;
export const { errorReply, json, text } = replies;
