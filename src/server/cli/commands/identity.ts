/** `devapollo identity jwks | rotate | verify`: the host's side of workload identity tokens. */
import { createPublicKey, type JsonWebKey } from 'node:crypto';
import type { Argv, CommandModule } from 'yargs';
import { ApolloError } from '../../../shared/errors.js';
import { renderJson, writeOut } from '../../../shared/output.js';
import { adminClient, note, readStdinText, stdinArgument } from './shared.js';

type Global = { dir?: string | undefined };

const jwks: CommandModule<Global, Global & { format: 'json' | 'pem' }> = {
  command: 'jwks',
  describe: 'Print the JWK Set that verifies identity tokens (the current key and those not yet retired)',
  builder: (y) =>
    y
      .option('format', {
        alias: 'f',
        choices: ['json', 'pem'] as const,
        default: 'json' as const,
        describe: 'pem: each public key as PEM (SPKI), the current one first, for verifiers that take PEM keys',
      })
      .example('$0 identity jwks > jwks.json', 'for a relying party that is given the keys')
      .example('$0 identity jwks | jq -r ".keys[0].kid"', 'the key that signs now')
      .example('$0 identity jwks --format pem > apollo.pem', "for Vault's jwt_validation_pubkeys") as never,
  handler: async (argv) => {
    const set = await adminClient(argv).json<{ keys: JsonWebKey[] }>('GET', '/1.0/identity/jwks');
    if (argv.format === 'json') {
      await writeOut(renderJson(set));
      return;
    }
    await writeOut(set.keys.map((key) => createPublicKey({ key, format: 'jwk' }).export({ type: 'spki', format: 'pem' }).toString()).join(''));
  },
};

const rotate: CommandModule<Global, Global> = {
  command: 'rotate',
  describe: 'Make a new signing key; the old one stays in the JWK Set until every token it signed has expired',
  builder: (y) => y.example('$0 identity rotate', 'prints the new key id') as never,
  handler: async (argv) => {
    const rotated = await adminClient(argv).json<{ kid: string; previous: string; previous_retires_at: string }>('POST', '/1.0/identity/rotate');
    note(`Key ${rotated.kid} signs from now on; ${rotated.previous} stays published until ${rotated.previous_retires_at}`);
    await writeOut(`${rotated.kid}\n`);
  },
};

const verify: CommandModule<Global, Global & { token: string; audience?: string | undefined }> = {
  command: 'verify <token>',
  describe: "Check a token: print its claims (exit 0), or why it is not valid (exit 4)",
  builder: (y) =>
    y
      .positional('token', { type: 'string', demandOption: true, describe: 'the compact JWT, or - to read it from stdin' })
      .option('audience', { type: 'string', describe: 'also require this audience (aud)' })
      .example('$0 identity verify "$TOKEN" --audience vault', '')
      .example('$0 identity verify - < token', 'from stdin: a token in argv is visible to every user of the host') as never,
  handler: async (argv) => {
    const token = argv.token === stdinArgument ? (await readStdinText()).trim() : String(argv.token);
    if (token === '') throw new ApolloError('usage', 'the token is empty');
    if (argv.audience !== undefined && argv.audience === '') throw new ApolloError('usage', '--audience must not be empty');
    const body = argv.audience === undefined ? { token } : { token, audience: argv.audience };
    await writeOut(renderJson(await adminClient(argv).json('POST', '/1.0/identity/verify', body)));
  },
};

export const identityCommand: CommandModule<Global, Global> = {
  command: 'identity <command>',
  describe: 'Workload identity tokens: the JWK Set, key rotation, verification',
  builder: (y: Argv<Global>) =>
    y
      .command(jwks as never)
      .command(rotate as never)
      .command(verify as never)
      .demandCommand(1, 'Pick an identity command'),
  handler: () => {
    throw new ApolloError('usage', 'pick an identity command');
  },
};
