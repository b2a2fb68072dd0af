/**
 * `devapollo hook lxc` and `devapollo hook oci STAGE`: runtime hooks that register a
 * container another runtime starts and let go of it when it stops. What each runtime
 * hands a hook is read in src/server/hooks; this module only parses and prints.
 */
import { ApolloError } from '../../../shared/errors.js';
import { applyHook } from '../../admin/hooks/apply-hook.js';
import type { HookRequest } from '../../admin/hooks/hook-request.js';
import { lxcHookRequest } from '../../admin/hooks/lxc-hook.js';
import { isOciStage, nameAnnotation, ociHookRequest, ociStages } from '../../admin/hooks/oci-hook.js';
import { adminClient, type HostGlobals, hostCommand, parseAssignments, readStdinText } from './shared.js';

/** Where a hook is, for the syslog line: what the runtime told it, even if it is unusable. */
interface HookPlace {
  readonly runtime: 'LXC' | 'OCI';
  readonly stage: string;
  readonly name: string | undefined;
}

/**
 * Runs a hook. Its Error: or Warning: line goes to stderr, where the runtime may keep it
 * (LXC: its log file, at DEBUG level; crun: the file of the run.oci.hooks.stderr
 * annotation; else nowhere), and to syslog (the journal, where there is one): a runtime
 * that refuses a start says only "exit 69", and this line is why.
 */
async function runHook(argv: HostGlobals, place: () => HookPlace, request: () => Promise<HookRequest>): Promise<void> {
  try {
    // A hung daemon must not hang the runtime's start: the hook gives up (and fails) after 30 s.
    const warning = await applyHook(await request(), adminClient(argv, 30_000));
    if (warning !== undefined) {
      process.stderr.write(`Warning: ${warning}\n`);
      await toSyslog('warning', place(), `Warning: ${warning}`);
    }
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    await toSyslog('err', place(), `Error: ${message.split('\n')[0]}`);
    throw error;
  }
}

/** For tests only: send the syslog lines to this datagram socket instead of /dev/log. */
const syslogSocketVariable = 'APOLLO_SYSLOG_SOCKET';

/** Best effort: a line that cannot be sent is lost, and the hook's outcome stays its own. */
async function toSyslog(severity: 'err' | 'warning', place: HookPlace, line: string): Promise<void> {
  const container = place.name === undefined ? 'an unnamed container' : `container ${JSON.stringify(place.name)}`;
  try {
    // Loaded here: the libc binding (koffi) is not for every command's start-up.
    const { sendSyslog } = await import('../../kernel/syslog.js');
    sendSyslog(
      severity,
      'devapollo',
      `${place.runtime} ${place.stage} hook for ${container}: ${line}`,
      process.env[syslogSocketVariable] || undefined,
    );
  } catch {
    // No syslog then; stderr has the line.
  }
}

/** `lxc`. */
export const lxc = hostCommand(
  (y) =>
    y
      .positional('args', { type: 'string', array: true, default: [], describe: 'what LXC appends: NAME SECTION TYPE...' })
      // Not an array option: LXC appends its arguments after ours, and an array option
      // would swallow them. Repeating -c still gives several keys.
      .option('config', { alias: 'c', type: 'string', describe: 'KEY=VALUE set at every start (repeatable)' })
      .example('lxc.hook.start-host = devapollo hook lxc -c user.role=web', 'in the container config')
      .example('lxc.hook.post-stop = devapollo hook lxc', ''),
  async (argv) => {
    const args = argv.args.map(String);
    const place = (): HookPlace => ({
      runtime: 'LXC',
      stage: process.env['LXC_HOOK_TYPE'] || (args[2] ?? 'unknown'),
      name: process.env['LXC_NAME'] || args[0],
    });
    await runHook(argv, place, async () => {
      const config = parseAssignments(argv.config === undefined ? [] : [argv.config].flat());
      return lxcHookRequest(args, process.env, config);
    });
  },
);

/** `oci`. */
export const oci = hostCommand(
  (y) =>
    y
      .positional('stage', { type: 'string', demandOption: true, describe: 'the stage this hook is listed under in config.json' })
      .example('"createRuntime": [{"path": "/usr/local/bin/devapollo", "args": ["devapollo", "hook", "oci", "createRuntime"]}]', '')
      .example('"poststop": [{"path": "/usr/local/bin/devapollo", "args": ["devapollo", "hook", "oci", "poststop"]}]', ''),
  async (argv) => {
    let stateText: string | undefined;
    await runHook(
      argv,
      () => ({ runtime: 'OCI', stage: argv.stage, name: ociNameHint(stateText) }),
      async () => {
        if (!isOciStage(argv.stage)) {
          throw new ApolloError(
            'usage',
            `devapollo hook oci handles the stages ${Object.keys(ociStages).join(', ')}, not ${JSON.stringify(argv.stage)}`,
          );
        }
        stateText = await readStdinText();
        return ociHookRequest(argv.stage, stateText);
      },
    );
  },
);

/** The name an OCI state gives, checked or not, for the syslog line; undefined when it gives none. */
function ociNameHint(stateText: string | undefined): string | undefined {
  try {
    const state = JSON.parse(stateText ?? '') as { id?: unknown; annotations?: Record<string, unknown> };
    const name = state.annotations?.[nameAnnotation] ?? state.id;
    return typeof name === 'string' ? name : undefined;
  } catch {
    return undefined;
  }
}
