/**
 * Facts about processes from /proc. Each reader returns undefined when the process is
 * gone instead of throwing: a process may exit between any two lines of the daemon.
 */
import fs from 'node:fs';

function readProcFile(path: string): string | undefined {
  try {
    return fs.readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/**
 * The process's start time in clock ticks since boot (field 22 of /proc/PID/stat). With
 * the boot id it names one process across daemon restarts: a recycled pid starts later.
 */
export function processStartTime(pid: number): string | undefined {
  return statFields(pid)?.[19];
}

/** Fields 3 on of /proc/PID/stat (index 0 is field 3, the state). */
function statFields(pid: number): string[] | undefined {
  const stat = readProcFile(`/proc/${pid}/stat`);
  if (stat === undefined) return undefined;
  // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/**
 * The exit status of a process that has exited and is not yet reaped (a zombie), as a
 * shell gives it (128+N for signal N), or undefined. The start time proves the zombie is
 * the process meant, not a later one given the same pid: field 52 of /proc/PID/stat is
 * the status waitpid would return.
 */
export function zombieExitStatus(pid: number, startTime: string): number | undefined {
  const fields = statFields(pid);
  if (fields === undefined || fields[0] !== 'Z' || fields[19] !== startTime) return undefined;
  const status = Number(fields[49]);
  return Number.isSafeInteger(status) ? shellExitStatus(status) : undefined;
}

/** A waitpid status as shells report it: the exit code, or 128+N when killed by signal N. */
export function shellExitStatus(status: number): number {
  const signal = status & 0x7f;
  return signal !== 0 ? 128 + signal : (status >> 8) & 0xff;
}

let bootId: string | undefined;

/** Changes at every boot; a container recorded under another boot id is not running. */
export function currentBootId(): string {
  bootId ??= (readProcFile('/proc/sys/kernel/random/boot_id') ?? 'unknown').trim();
  return bootId;
}

/** The host uid that is root (uid 0) inside the process's user namespace, or undefined. */
export function hostUidOfRoot(pid: number): number | undefined {
  const map = readProcFile(`/proc/${pid}/uid_map`);
  if (map === undefined) return undefined;
  for (const line of map.split('\n')) {
    const [inside, outside, count] = line.trim().split(/\s+/).map(Number);
    if (inside === undefined || outside === undefined || count === undefined) continue;
    if (inside <= 0 && 0 < inside + count) return outside - inside;
  }
  return undefined;
}

/**
 * The process's pids in each pid namespace it is in, outermost first (NSpid in
 * /proc/PID/status). A container's init has more than one, the last being 1.
 */
export function namespacePids(pid: number): number[] | undefined {
  const status = readProcFile(`/proc/${pid}/status`);
  if (status === undefined) return undefined;
  const line = status.split('\n').find((l) => l.startsWith('NSpid:'));
  if (line === undefined) return undefined;
  return line.slice('NSpid:'.length).trim().split(/\s+/).map(Number);
}

/** Whether the process is the init (pid 1) of a pid namespace other than ours. */
export function isNamespaceInit(pid: number): boolean {
  const pids = namespacePids(pid);
  return pids !== undefined && pids.length > 1 && pids[pids.length - 1] === 1;
}
