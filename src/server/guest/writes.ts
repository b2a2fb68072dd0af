/**
 * The guest's writes of its own `guest.*` keys (PROTOCOL.md section 3a): PUT sets a key
 * to the body's exact bytes, DELETE unsets it; each answers 200 `{}` once the record is
 * on disk. The rules (which keys, rate, quotas) are guest-keys.ts's, checked before the
 * body is read (`admitWrite`) and again inside the update.
 */
import { isUtf8 } from 'node:buffer';
import { ApolloError } from '../../shared/errors.js';
import type { RequestInfo } from '../http/router.js';
import type { GuestContext } from './context.js';
import { json } from './http.js';

/** Before the body: the key, the switch, the write rate, the declared size (403, 429, 413). */
export function admitWrite(context: GuestContext, request: RequestInfo): void {
  const declared = request.headers['content-length'];
  context.admitGuestWrite(keyOf(request), request.method === 'PUT' && declared !== undefined ? Number(declared) : undefined);
}

/** PUT: the body is the value, byte for byte; an empty body unsets the key, as "" does for the host. */
export async function putConfigKey(context: GuestContext, request: RequestInfo) {
  // Values are text: bytes that are not UTF-8 would not come back as they were sent.
  if (!isUtf8(request.body)) throw new ApolloError('bad-request', 'the value is not valid UTF-8 (config values are UTF-8 text)');
  await context.setGuestKey(keyOf(request), request.body.toString('utf8'));
  return json({});
}

/** DELETE: 404 when the key is not set. */
export async function deleteConfigKey(context: GuestContext, request: RequestInfo) {
  await context.unsetGuestKey(keyOf(request));
  return json({});
}

function keyOf(request: RequestInfo): string {
  return request.params['key'] ?? '';
}
