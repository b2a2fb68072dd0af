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
  const stat = readProcFile(`/proc/${pid}/stat`);
  if (stat === undefined) return undefined;
  // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return fields[19];
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
