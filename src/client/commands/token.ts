/** `devapollo-guest token`: a signed identity token for this container (PROTOCOL.md 3b). */
import { ApolloError } from '../../shared/errors.js';
import type { GuestClient } from '../api-client.js';

/** GET /1.0/identity/token: the compact JWT the daemon signed for this container. */
export async function fetchToken(client: GuestClient, audience: string, ttl: string | undefined): Promise<string> {
  const query = new URLSearchParams({ audience });
  if (ttl !== undefined) query.set('ttl', ttl);
  const token = (await client.request('GET', `/1.0/identity/token?${query.toString()}`)).body.toString('utf8');
  // Printed as it came: it must be a JWT and nothing that could drive a terminal.
  if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(token))
    throw new ApolloError('internal', 'the daemon answered with something that is not a JWT');
  return token;
}
