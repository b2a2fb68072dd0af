/** `devapollo identity jwks | rotate | verify`: the host's side of workload identity tokens. */
import { createPublicKey, type JsonWebKey } from 'node:crypto';
import { ApolloError } from '../../../shared/errors.js';
import { renderJson, writeOut } from '../../../shared/output.js';
import { adminClient, hostCommand, note, readStdinText, stdinArgument } from './shared.js';

/** `jwks`. */
export const jwks = hostCommand(
  (y) =>
    y
      .option('format', {
        alias: 'f',
        choices: ['json', 'pem'] as const,
        default: 'json' as const,
        describe: 'pem: each public key as PEM (SPKI), the current one first, for verifiers that take PEM keys',
      })
      .example('$0 identity jwks > jwks.json', 'for a relying party that is given the keys')
      .example('$0 identity jwks | jq -r ".keys[0].kid"', 'the key that signs now')
      .example('$0 identity jwks --format pem > apollo.pem', "for Vault's jwt_validation_pubkeys"),
  async (argv) => {
    const set = await adminClient(argv).json<{ keys: JsonWebKey[] }>('GET', '/1.0/identity/jwks');
    if (argv.format === 'json') {
      await writeOut(renderJson(set));
      return;
    }
    await writeOut(
      set.keys.map((key) => createPublicKey({ key, format: 'jwk' }).export({ type: 'spki', format: 'pem' }).toString()).join(''),
    );
  },
);

/** `rotate`. */
export const rotate = hostCommand(
  (y) => y.example('$0 identity rotate', 'prints the new key id'),
  async (argv) => {
    const rotated = await adminClient(argv).json<{ kid: string; previous: string; previous_retires_at: string }>(
      'POST',
      '/1.0/identity/rotate',
    );
    note(`Key ${rotated.kid} signs from now on; ${rotated.previous} stays published until ${rotated.previous_retires_at}`);
    await writeOut(`${rotated.kid}\n`);
  },
);

/** `verify`. */
export const verify = hostCommand(
  (y) =>
    y
      .positional('token', { type: 'string', demandOption: true, describe: 'the compact JWT, or - to read it from stdin' })
      .option('audience', { type: 'string', describe: 'also require this audience (aud)' })
      .example('$0 identity verify "$TOKEN" --audience vault', '')
      .example('$0 identity verify - < token', 'from stdin: a token in argv is visible to every user of the host'),
  async (argv) => {
    const token = argv.token === stdinArgument ? (await readStdinText()).trim() : String(argv.token);
    if (token === '') throw new ApolloError('usage', 'the token is empty');
    if (argv.audience !== undefined && argv.audience === '') throw new ApolloError('usage', '--audience must not be empty');
    const body = argv.audience === undefined ? { token } : { token, audience: argv.audience };
    await writeOut(renderJson(await adminClient(argv).json('POST', '/1.0/identity/verify', body)));
  },
);
