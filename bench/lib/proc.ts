/**
 * What the benchmarks read about a process from /proc: CPU time, memory, descriptors,
 * and which of its descriptors are listening Unix sockets.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';

/** Clock ticks per second of utime/stime (CLK_TCK; 100 on every Linux we know). */
export const clockTicksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** The fields of /proc/PID/stat, or of one thread's /proc/PID/task/TID/stat. */
function statFields(pid: number, thread?: number): string[] {
  const stat = fs.readFileSync(thread === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${thread}/stat`, 'utf8');
  // The command name (field 2) may hold spaces: split after the last ')'. fields[0] is field 3.
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** User + system CPU time of a process (all its threads), in seconds. */
export function cpuSeconds(pid: number): number {
  const fields = statFields(pid);
  return (Number(fields[11]) + Number(fields[12])) / clockTicksPerSecond;
}

/**
 * CPU time of a process in seconds, split three ways: user and system time of all its
 * threads, and the main (event-loop) thread's share of that; the rest is the V8 garbage
 * collector's and libuv's helper threads.
 */
export function cpuSplit(pid: number): { user: number; system: number; mainThread: number } {
  const fields = statFields(pid);
  const mainFields = statFields(pid, pid);
  return {
    user: Number(fields[11]) / clockTicksPerSecond,
    system: Number(fields[12]) / clockTicksPerSecond,
    mainThread: (Number(mainFields[11]) + Number(mainFields[12])) / clockTicksPerSecond,
  };
}

/** Field 22 of /proc/PID/stat, or undefined when the process is gone or a zombie. */
export function startTimeOf(pid: number): string | undefined {
  try {
    const fields = statFields(pid);
    if (fields[0] === 'Z' || fields[0] === 'X') return undefined;
    return fields[19];
  } catch {
    return undefined;
  }
}

/** A field of /proc/PID/status given in kB, in bytes. */
function statusBytes(pid: number, field: string): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1];
  return Number(kb ?? 0) * 1024;
}

/** Resident set size in bytes (VmRSS). */
export function rssBytes(pid: number): number {
  return statusBytes(pid, 'VmRSS');
}

/** VmRSS split into anonymous memory (heap and stacks) and file pages (node's own code, libraries). */
export function rssParts(pid: number): { anon: number; file: number; shmem: number } {
  return { anon: statusBytes(pid, 'RssAnon'), file: statusBytes(pid, 'RssFile'), shmem: statusBytes(pid, 'RssShmem') };
}

/** How many descriptors the process has open. */
export function openFds(pid: number): number {
  return fs.readdirSync(`/proc/${pid}/fd`).length;
}

/** Counts the process's descriptors by what they are: sockets, pidfds, other. */
export function fdKinds(pid: number): Record<string, number> {
  const kinds: Record<string, number> = {};
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    let target = '';
    try {
      target = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue;
    }
    const kind = target.startsWith('socket:')
      ? 'socket'
      : target === 'anon_inode:[pidfd]'
        ? 'pidfd'
        : target.startsWith('anon_inode:')
          ? target.slice('anon_inode:'.length).replace(/[[\]]/g, '')
          : target.startsWith('pipe:')
            ? 'pipe'
            : 'file';
    kinds[kind] = (kinds[kind] ?? 0) + 1;
  }
  return kinds;
}

const SO_ACCEPTCON = 0x10000;

/**
 * How many of the process's descriptors are listening Unix sockets bound to `socketPath`
 * (from /proc/net/unix: the listening flag and the inode, matched against /proc/PID/fd).
 */
export function listeningDescriptors(pid: number, socketPath: string): number {
  const inodes = new Set<string>();
  for (const line of fs.readFileSync('/proc/net/unix', 'utf8').split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 8 || fields[7] !== socketPath) continue;
    if ((parseInt(fields[3] ?? '0', 16) & SO_ACCEPTCON) !== 0) inodes.add(fields[6] ?? '');
  }
  let count = 0;
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (match && inodes.has(match[1] ?? '')) count++;
    } catch {
      // Closed meanwhile.
    }
  }
  return count;
}

/** Pins every thread of a process to the given CPUs (taskset -a -p). */
export function pin(pid: number, cpus: string): void {
  execFileSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { stdio: 'ignore' });
}

/** The machine, for the report. */
export function machine(): Record<string, string | number> {
  const osRelease = fs.readFileSync('/etc/os-release', 'utf8');
  const cpuinfo = fs.readFileSync('/proc/cpuinfo', 'utf8');
  const memKb = Number(/^MemTotal:\s+(\d+)/m.exec(fs.readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0);
  return {
    os: /^PRETTY_NAME="?([^"\n]*)"?/m.exec(osRelease)?.[1] ?? 'Linux',
    kernel: fs.readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim(),
    cpu: /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1]?.trim() ?? 'unknown',
    cores: cpuinfo.split('\n').filter((l) => l.startsWith('processor')).length,
    memory_gib: Math.round(memKb / 1024 / 1024),
    node: process.version,
    pid_max: Number(fs.readFileSync('/proc/sys/kernel/pid_max', 'utf8')),
    load_average_at_start: fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' '),
  };
}

/** Processes running on the machine now (entries in /proc). */
export function processCount(): number {
  return fs.readdirSync('/proc').filter((e) => /^\d+$/.test(e)).length;
}

/** MemAvailable in bytes. */
export function memAvailableBytes(): number {
  return Number(/^MemAvailable:\s+(\d+)/m.exec(fs.readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0) * 1024;
}
