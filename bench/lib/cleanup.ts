/**
 * Whatever a benchmark starts (daemons, containers, agents, temporary directories) is
 * registered here and torn down when it ends, when the run fails, and when the run is
 * interrupted (SIGINT, SIGTERM): every task is synchronous so that it also runs on exit.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const tasks = new Set<() => void>();

/** Registers a teardown; the returned function runs it now (once) and unregisters it. */
export function onCleanup(task: () => void): () => void {
  let done = false;
  const once = () => {
    if (done) return;
    done = true;
    tasks.delete(once);
    try {
      task();
    } catch (error) {
      process.stderr.write(`cleanup failed: ${String(error)}\n`);
    }
  };
  tasks.add(once);
  return once;
}

/** Runs every registered teardown, newest first. */
export function cleanupAll(): void {
  for (const task of [...tasks].reverse()) task();
}

let installed = false;

/** Tears everything down on exit and on SIGINT/SIGTERM (then exits 130/143). */
export function installCleanupHooks(): void {
  if (installed) return;
  installed = true;
  process.on('exit', cleanupAll);
  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
    ['SIGHUP', 129],
  ] as const) {
    process.on(signal, () => {
      process.stderr.write(`\n${signal}: cleaning up\n`);
      cleanupAll();
      process.exit(code);
    });
  }
}

/**
 * A temporary directory removed at cleanup. `worldReadable` (0755) for files that
 * unprivileged container roots must read: the checkout may sit in a 0700 directory.
 */
export function tempDir(prefix: string, options: { worldReadable?: boolean } = {}): { dir: string; remove: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  if (options.worldReadable) fs.chmodSync(dir, 0o755);
  const remove = onCleanup(() => fs.rmSync(dir, { recursive: true, force: true }));
  return { dir, remove };
}
