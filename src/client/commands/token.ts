/** `devapollo-guest token`: a signed identity token for this container (PROTOCOL.md 3b). */
import type { CommandModule } from 'yargs';
import { ApolloError } from '../../shared/errors.js';
import { writeOut } from '../../shared/output.js';
import type { GuestClient } from '../api-client.js';
import { guestClient, type GuestGlobals } from './index.js';

/** GET /1.0/identity/token: the compact JWT the daemon signed for this container. */
export async function fetchToken(client: GuestClient, audience: string, ttl: string | undefined): Promise<string> {
  const query = new URLSearchParams({ audience });
  if (ttl !== undefined) query.set('ttl', ttl);
  const token = (await client.request('GET', `/1.0/identity/token?${query.toString()}`)).body.toString('utf8');
  // Printed as it came: it must be a JWT and nothing that could drive a terminal.
  if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(token)) throw new ApolloError('internal', 'the daemon answered with something that is not a JWT');
  return token;
}

export const tokenCommand: CommandModule<GuestGlobals, GuestGlobals & { audience: string; ttl?: string | undefined }> = {
  command: 'token',
  describe: 'Print a signed, short-lived identity token (JWT) for this container',
  builder: (y) =>
    y
      .option('audience', { type: 'string', demandOption: true, describe: 'who the token is for (its aud); the relying party checks it' })
      .option('ttl', { type: 'string', describe: 'lifetime in seconds, 1 to 3600 (default 300)' })
      .example('$0 token --audience vault', 'for `vault write auth/jwt/login role=... jwt=...`')
      .example('TOKEN=$($0 token --audience https://api.example.com --ttl 60)', 'in a script') as never,
  handler: async (argv) => {
    if (argv.audience === '') throw new ApolloError('usage', '--audience must not be empty');
    await writeOut(`${await fetchToken(guestClient(argv), argv.audience, argv.ttl)}\n`);
  },
};
