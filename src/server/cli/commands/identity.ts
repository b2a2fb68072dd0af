/** `devapollo identity jwks | rotate | verify`: the host's side of workload identity tokens. */
import type { Argv, CommandModule } from 'yargs';
import { ApolloError } from '../../../shared/errors.js';
import { renderJson, writeOut } from '../../../shared/output.js';
import { adminClient, note, readStdinText, stdinArgument } from './shared.js';

type Global = { dir?: string | undefined };

const jwks: CommandModule<Global, Global> = {
  command: 'jwks',
  describe: 'Print the JWK Set that verifies identity tokens (the current key and those not yet retired)',
  builder: (y) =>
    y
      .example('$0 identity jwks > jwks.json', 'for a relying party that is given the keys')
      .example('$0 identity jwks | jq -r ".keys[0].kid"', 'the key that signs now') as never,
  handler: async (argv) => {
    await writeOut(renderJson(await adminClient(argv).json('GET', '/1.0/identity/jwks')));
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
