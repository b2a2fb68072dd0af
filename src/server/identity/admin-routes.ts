/**
 * The host's identity routes on the admin API, listed in the admin route table: the JWK
 * Set, rotation, and verification for `devapollo identity jwks | rotate | verify`.
 */
import { ApolloError } from '../../shared/errors.js';
import type { AdminContext } from '../admin/routes.js';
import { parseJsonBody } from '../http/body.js';
import { json } from '../http/reply.js';
import type { RequestInfo, Route } from '../http/router.js';
import type { IdentityIssuer } from './issuer.js';

export const identityAdminRoutes: readonly Route<AdminContext>[] = [
  { method: 'GET', path: '/1.0/identity/jwks', handler: getJwks },
  { method: 'POST', path: '/1.0/identity/rotate', handler: rotateKey },
  // {"token": JWS, "audience"?: AUD}: 200 with the claims, or 403 with the reason.
  { method: 'POST', path: '/1.0/identity/verify', handler: verifyToken },
];

function issuerOf(context: AdminContext): IdentityIssuer {
  if (context.identity === undefined) throw new ApolloError('not-found', 'identity tokens are not served by this daemon');
  return context.identity;
}

function getJwks(context: AdminContext) {
  return json(issuerOf(context).jwks());
}

async function rotateKey(context: AdminContext) {
  return json(await issuerOf(context).rotate());
}

async function verifyToken(context: AdminContext, request: RequestInfo) {
  const body = parseJsonBody(request.body) as Record<string, unknown> | null;
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw new ApolloError('bad-request', 'the request body must be a JSON object');
  const { token, audience } = body;
  if (typeof token !== 'string' || token === '') throw new ApolloError('bad-request', 'token must be a non-empty string');
  if (audience !== undefined && typeof audience !== 'string') throw new ApolloError('bad-request', 'audience must be a string');
  const claims = await issuerOf(context).verify(token, audience, (name) => {
    try {
      return context.manager.get(name).record.instance_uuid;
    } catch (error) {
      if (error instanceof ApolloError && error.code === 'not-found') return undefined;
      throw error;
    }
  });
  return json(claims);
}
