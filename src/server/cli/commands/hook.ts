/**
 * `devapollo hook lxc` and `devapollo hook oci STAGE`: runtime hooks that register a
 * container another runtime starts and let go of it when it stops. What each runtime
 * hands a hook is read in src/server/hooks; this module only parses and prints.
 */
import type { Argv, CommandModule } from 'yargs';
import { ApolloError } from '../../../shared/errors.js';
import { applyHook } from '../../hooks/apply-hook.js';
import type { HookRequest } from '../../hooks/hook-request.js';
import { lxcHookRequest } from '../../hooks/lxc-hook.js';
import { isOciStage, ociHookRequest, ociStages } from '../../hooks/oci-hook.js';
import { adminClient, parseAssignments, readStdinText } from './shared.js';

type Global = { dir?: string | undefined };

async function runHook(argv: Global, request: HookRequest): Promise<void> {
  // A hung daemon must not hang the runtime's start: the hook gives up (and fails) after 30 s.
  const warning = await applyHook(request, adminClient(argv, 30_000));
  if (warning !== undefined) process.stderr.write(`Warning: ${warning}\n`);
}

const lxc: CommandModule<Global, Global & { args: string[]; config: string | string[] | undefined }> = {
  command: 'lxc [args..]',
  describe: 'For lxc.hook.start-host (register) and lxc.hook.stop / post-stop (let go, keeping the config)',
  builder: (y) =>
    y
      .positional('args', { type: 'string', array: true, default: [], describe: 'what LXC appends: NAME SECTION TYPE...' })
      // Not an array option: LXC appends its arguments after ours, and an array option
      // would swallow them. Repeating -c still gives several keys.
      .option('config', { alias: 'c', type: 'string', describe: 'KEY=VALUE set at every start (repeatable)' })
      .example('lxc.hook.start-host = devapollo hook lxc -c user.role=web', 'in the container config')
      .example('lxc.hook.post-stop = devapollo hook lxc', '') as never,
  handler: async (argv) => {
    const config = parseAssignments(argv.config === undefined ? [] : [argv.config].flat());
    await runHook(argv, lxcHookRequest(argv.args.map(String), process.env, config));
  },
};

const oci: CommandModule<Global, Global & { stage: string }> = {
  command: 'oci <stage>',
  describe: `For OCI runtime hooks; STAGE is the hook's stage (${Object.keys(ociStages).join(', ')}); the state JSON comes on stdin`,
  builder: (y) =>
    y
      .positional('stage', { type: 'string', demandOption: true, describe: 'the stage this hook is listed under in config.json' })
      .example('"createRuntime": [{"path": "/usr/local/bin/devapollo", "args": ["devapollo", "hook", "oci", "createRuntime"]}]', '')
      .example('"poststop": [{"path": "/usr/local/bin/devapollo", "args": ["devapollo", "hook", "oci", "poststop"]}]', '') as never,
  handler: async (argv) => {
    if (!isOciStage(argv.stage)) {
      throw new ApolloError('usage', `devapollo hook oci handles the stages ${Object.keys(ociStages).join(', ')}, not ${JSON.stringify(argv.stage)}`);
    }
    await runHook(argv, ociHookRequest(argv.stage, await readStdinText()));
  },
};

export const hookCommand: CommandModule<Global, Global> = {
  command: 'hook',
  describe: 'Runtime hooks: register containers LXC or an OCI runtime starts, and let them go when they stop',
  builder: (y: Argv<Global>) => y.command(lxc).command(oci).demandCommand(1, 'Pick a runtime: lxc or oci') as never,
  handler: () => undefined,
};
