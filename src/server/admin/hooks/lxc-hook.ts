/**
 * LXC hooks. LXC runs a hook through `sh -c`, with the container's name, the section
 * ("lxc") and the hook type appended as arguments (lxc.hook.version = 0, the default) or
 * only in the environment (LXC_NAME, LXC_HOOK_TYPE, with lxc.hook.version = 1). Start
 * hooks also get the init's host pid in LXC_PID; stop hooks get the pid the init had and,
 * as further arguments, the namespaces it left (ignored here).
 *
 *     lxc.hook.start-host = devapollo hook lxc      # register: the init exists, it has not run yet
 *     lxc.hook.post-stop  = devapollo hook lxc      # let go, keeping the config
 *
 * start-host runs on the host after the container's namespaces are set up and before its
 * init runs, and a failing start-host hook makes lxc-start give up: the container never
 * runs unserved.
 */
import { ApolloError } from '../../../shared/errors.js';
import { isContainerName } from '../../../shared/names.js';
import type { HookRequest } from './hook-request.js';

/** Hook types this hook handles, and what each asks. */
export const lxcHookTypes = {
  'start-host': 'register',
  stop: 'unregister',
  'post-stop': 'unregister',
} as const;

type LxcEnv = Readonly<Record<string, string | undefined>>;

/**
 * What an LXC hook asks. `args` are what LXC appended (NAME, SECTION, TYPE, ...), `env`
 * the hook's environment, `config` keys given to the hook itself (`-c KEY=VALUE`).
 */
export function lxcHookRequest(args: readonly string[], env: LxcEnv, config: Readonly<Record<string, string>>): HookRequest {
  const name = nonEmpty(env['LXC_NAME']) ?? args[0];
  const type = nonEmpty(env['LXC_HOOK_TYPE']) ?? args[2];
  if (name === undefined || type === undefined) {
    throw new ApolloError(
      'usage',
      'no LXC container name or hook type: run this as an LXC hook (lxc.hook.start-host, lxc.hook.post-stop), ' +
        'which passes them in LXC_NAME and LXC_HOOK_TYPE or as arguments',
    );
  }
  if (!Object.hasOwn(lxcHookTypes, type)) {
    throw new ApolloError('usage', `devapollo hook lxc handles start-host, stop and post-stop hooks, not ${JSON.stringify(type)}`);
  }
  if (!isContainerName(name)) {
    throw new ApolloError(
      'bad-request',
      `the LXC container name ${JSON.stringify(name)} is not a valid devapollo container name ` +
        '(a letter, then letters, digits and "-", at most 63 characters)',
    );
  }
  const pid = parsePid(env['LXC_PID']);
  if (lxcHookTypes[type as keyof typeof lxcHookTypes] === 'unregister') {
    return { action: 'unregister', runtime: 'LXC', name, pid };
  }
  if (pid === undefined) {
    throw new ApolloError('usage', `LXC_PID is not set to the init's pid: ${type} hooks get it from LXC 3.0 on`);
  }
  return { action: 'register', runtime: 'LXC', name, pid, config };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

function parsePid(text: string | undefined): number | undefined {
  if (text === undefined || text === '') return undefined;
  const pid = Number(text);
  if (!/^[0-9]+$/.test(text) || !Number.isSafeInteger(pid) || pid <= 0) {
    throw new ApolloError('bad-request', `LXC_PID is not a pid: ${JSON.stringify(text)}`);
  }
  return pid;
}
