/**
 * Whether `--dir` is a place only root controls. The daemon chmods DIR, writes secrets
 * under it and bind-mounts part of it into containers; if another user could make DIR a
 * symbolic link (to a root-only directory, say) or rename one of its ancestors and put
 * their own in its place, they would choose what the daemon changes and where its secrets
 * go. So, before anything is changed, every step of the path as given and of its real
 * path must be root's:
 *
 * - every directory on the way owned by root and not writable by group or others, unless
 *   sticky (as /tmp: others may add entries there but not rename or remove root's);
 * - a symbolic link on the way only if root owns it (a user's link in /tmp is refused);
 * - DIR itself a directory owned by root (its mode the daemon sets: 0711).
 */
import fs from 'node:fs';
import path from 'node:path';
import { ApolloError } from '../../shared/errors.js';

const S_IWGRP = 0o020;
const S_IWOTH = 0o002;
const S_ISVTX = 0o1000;

/** The prefixes of an absolute path: /, /a, /a/b, ... */
function prefixes(absolute: string): string[] {
  const parts = absolute.split('/').filter((part) => part !== '');
  return ['/', ...parts.map((_, i) => `/${parts.slice(0, i + 1).join('/')}`)];
}

/** Why the entry at `at` (an ancestor when not `last`) is not root's alone, or undefined. */
function unsafeStep(at: string, stat: fs.Stats, last: boolean): string | undefined {
  if (stat.isSymbolicLink()) {
    return stat.uid === 0 ? undefined : `${at} is a symbolic link owned by uid ${stat.uid}, not root: its owner chooses where it points`;
  }
  if (!stat.isDirectory()) return `${at} is not a directory`;
  if (stat.uid !== 0) {
    return `${at} is owned by uid ${stat.uid}, not root: its owner could replace what the daemon keeps there (chown root ${at})`;
  }
  if (!last && (stat.mode & (S_IWGRP | S_IWOTH)) !== 0 && (stat.mode & S_ISVTX) === 0) {
    return `${at} is writable by ${(stat.mode & S_IWOTH) !== 0 ? 'others' : 'its group'} and not sticky: they could rename what is in it and put their own in its place (chmod go-w ${at})`;
  }
  return undefined;
}

function check(chain: readonly string[], dir: string, given: string, real: boolean): void {
  for (const [i, at] of chain.entries()) {
    let stat: fs.Stats;
    try {
      stat = fs.lstatSync(at);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return; // Made below, by root.
      throw new ApolloError('internal', `cannot check ${at}: ${(error as Error).message}`);
    }
    // DIR's own mode is the daemon's to set (0711): only the way to it must be closed.
    const why = unsafeStep(at, stat, i === chain.length - 1);
    if (why !== undefined)
      throw new ApolloError('forbidden', at === dir ? why : `--dir ${real ? `${given} (really ${dir})` : dir}: ${why}`);
  }
}

/**
 * Makes DIR if it is missing (mode `mode`) and checks that only root controls it and
 * the way to it; throws a `forbidden` ApolloError naming the step that is not.
 */
export function prepareRootDir(dir: string, mode: number): void {
  const absolute = path.resolve(dir);
  check(prefixes(absolute), absolute, absolute, false);
  try {
    fs.mkdirSync(absolute, { recursive: true, mode });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' || code === 'ENOTDIR')
      throw new ApolloError('bad-request', `--dir ${absolute}: it, or a path on the way to it, is not a directory`);
    throw new ApolloError('internal', `cannot make ${absolute}: ${(error as Error).message}`);
  }
  check(prefixes(absolute), absolute, absolute, false);
  const real = fs.realpathSync(absolute);
  check(prefixes(real), real, absolute, true);
}
