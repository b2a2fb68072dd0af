/** Looking processes up in /proc, for tests that need a process they did not start directly. */
import fs from 'node:fs';

interface ProcEntry {
  readonly pid: number;
  readonly ppid: number;
  readonly args: readonly string[];
}

/** Every process readable now; ones that exit while being read are skipped. */
function processes(): ProcEntry[] {
  const out: ProcEntry[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const args = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      out.push({ pid: Number(entry), ppid, args });
    } catch {
      // Gone.
    }
  }
  return out;
}

/** The children of a process (this kernel has no task children files). */
export function childrenOf(pid: number): number[] {
  return processes()
    .filter((p) => p.ppid === pid)
    .map((p) => p.pid);
}

/** The processes whose command line matches. */
export function processesWhere(match: (args: readonly string[]) => boolean): number[] {
  return processes()
    .filter((p) => match(p.args))
    .map((p) => p.pid);
}
