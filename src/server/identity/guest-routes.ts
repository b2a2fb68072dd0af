/**
 * The guest's identity routes (PROTOCOL.md section 3b), listed in the guest route table.
 * The token names the connection's own container, as the kernel proved it at accept
 * time; the guest chooses only the audience and the lifetime.
 */
import { ApolloError } from '../../shared/errors.js';
import type { GuestContext } from '../guest/context.js';
import { json } from '../guest/http.js';
import type { Reply } from '../http/reply.js';
import type { RequestInfo, Route } from '../http/router.js';
import { defaultTokenSeconds, maxTokenSeconds } from './issuer.js';

/** Turns tokens off for one container: its token requests get 403. */
export const identityKey = 'security.devapollo.identity';

/** The longest audience accepted, in characters (a URL or a name, never a document). */
export const maxAudienceLength = 1024;

export const jwtType = 'application/jwt';

export const identityGuestRoutes: readonly Route<GuestContext>[] = [
  { method: 'GET', path: '/1.0/identity/token', handler: issueToken },
  { method: 'GET', path: '/1.0/identity/jwks', handler: getJwks },
];

/**
 * A compact JWS for the caller's container; its ETag is its jti (every answer differs).
 * Everything that refuses is checked synchronously, so that a refusal is written at once
 * (no promise; see routeRequests): a flood of token requests over the token rate costs
 * what refusing a GET does, and only granted requests wait for a signature.
 */
function issueToken({ container, identity }: GuestContext, request: RequestInfo): Promise<Reply> {
  if (identity === undefined) throw new ApolloError('not-found', 'identity tokens are not served by this daemon');
  if (container.record.config[identityKey] === 'false') {
    throw new ApolloError('forbidden', `Forbidden: identity tokens are turned off for this container (${identityKey}=false)`);
  }
  const signed = identity.issue(audienceOf(request.query), ttlOf(request.query));
  return signed.then(({ token, claims }) => ({ contentType: jwtType, body: token, etag: `"${claims.jti}"` }));
}

function getJwks({ identity }: GuestContext): Reply {
  if (identity === undefined) throw new ApolloError('not-found', 'identity tokens are not served by this daemon');
  return json(identity.jwks(), { etag: identity.jwksEtag() });
}

/** `audience`: required, once, 1 to 1024 printable characters. */
export function audienceOf(query: URLSearchParams): string {
  const values = query.getAll('audience');
  if (values.length === 0) throw new ApolloError('bad-request', 'audience is required: ?audience=AUD names who the token is for');
  if (values.length > 1) throw new ApolloError('bad-request', 'give audience once: a token has one audience');
  const audience = values[0] as string;
  if (audience === '') throw new ApolloError('bad-request', 'audience must not be empty');
  if (audience.length > maxAudienceLength) throw new ApolloError('bad-request', `audience is longer than ${maxAudienceLength} characters`);
  // eslint-disable-next-line no-control-regex
  // Printable only: no C0/C1 control, no format character (bidi overrides, zero-width),
  // no line or paragraph separator, none of which a relying party or a log should get;
  // U+FFFD is what a bad percent-encoding decodes to.
  if (/[\p{C}\p{Zl}\p{Zp}\uFFFD]/u.test(audience)) {
    throw new ApolloError(
      'bad-request',
      'audience must be printable: no control, format or line-separator characters, and valid UTF-8 percent-encoding',
    );
  }
  return audience;
}

/** `ttl`: whole seconds from 1 to 3600; 300 when absent. */
export function ttlOf(query: URLSearchParams): number {
  const values = query.getAll('ttl');
  if (values.length === 0) return defaultTokenSeconds;
  const raw = values[0] as string;
  const seconds = Number(raw);
  if (values.length > 1 || !/^[0-9]+$/.test(raw) || !Number.isSafeInteger(seconds) || seconds < 1 || seconds > maxTokenSeconds) {
    throw new ApolloError(
      'bad-request',
      `ttl must be a whole number of seconds from 1 to ${maxTokenSeconds}, not ${values.length > 1 ? 'given twice' : JSON.stringify(raw)}`,
    );
  }
  return seconds;
}
