/**
 * What this machine can do for the tests. A test that needs something missing is skipped
 * with the reason, never passed.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { type TestContext, test } from 'node:test';

function works(command: string, args: string[]): boolean {
  const result = spawnSync(command, args, { stdio: 'ignore', timeout: 10_000 });
  return result.status === 0;
}

const isRoot = process.getuid?.() === 0;

const canUnshare = isRoot && works('unshare', ['--user', '--map-root-user', '--pid', '--mount', '--uts', '--ipc', '--fork', 'true']);

const hasPerl = works('perl', ['-e', '1']);
const hasCurl = works('curl', ['--version']);

/** Why container tests cannot run here, or false when they can. */
export const containersUnavailable: string | false = !isRoot
  ? 'needs root: containers use namespaces and mounts'
  : !hasPerl
    ? 'needs perl (perl-base) for the container launcher'
    : !canUnshare
      ? 'needs user, pid and mount namespaces (unshare --user --pid --mount failed)'
      : false;

export const curlUnavailable: string | false = containersUnavailable || (!hasCurl ? 'needs curl' : false);

export const rootUnavailable: string | false = isRoot ? false : 'needs root';

/** Container tests that also change a running process's limits (prlimit, util-linux). */
export const prlimitUnavailable: string | false =
  curlUnavailable || (!works('prlimit', ['--version']) ? 'needs prlimit (util-linux)' : false);

/** The kernel's pid limit: large-scale tests size themselves by it. */
export function pidMax(): number {
  return Number(fs.readFileSync('/proc/sys/kernel/pid_max', 'utf8'));
}

/**
 * `test` for a group whose tests all need the same thing: each test is skipped (and
 * counted as skipped) with the reason when it is missing.
 */
export function gatedTest(reason: string | false) {
  return (name: string, fn: (t: TestContext) => Promise<void>) => test(name, { skip: reason }, fn);
}
