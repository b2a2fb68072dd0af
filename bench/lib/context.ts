/** What every benchmark gets from the runner. */
import fs from 'node:fs';
import path from 'node:path';
import { repoRoot } from './daemon.js';

export interface BenchContext {
  /** Fewer rounds, shorter runs, fewer containers. */
  readonly quick: boolean;
  /** Containers for the scale benchmark (default 10,000; 1,000 with --quick). */
  readonly containers: number | undefined;
  /** Rounds of each side in the throughput and scale benchmarks (default 17 and 6; 3 and 2 with --quick). */
  readonly rounds: number | undefined;
  /** Launch-and-delete counts after which the history benchmark measures (default 200 and 2,000; 20 and 100 with --quick). */
  readonly history: readonly number[] | undefined;
  /** Minutes of mixed load in the history benchmark (default 10; 0.5 with --quick; 0: none). */
  readonly mixedMinutes: number | undefined;
  readonly log: (message: string) => void;
}

/** A compiled agent script (dist-bench/agents/NAME.js). */
export function agentScript(name: string): string {
  return path.join(repoRoot, 'dist-bench/agents', `${name}.js`);
}

/** A plain-JavaScript file shipped in bench/agents as is. */
export function agentSource(name: string): string {
  return path.join(repoRoot, 'bench/agents', name);
}

/**
 * Copies an agent into a world-readable directory (mode 0755), for unprivileged
 * container roots, which may not be able to enter the checkout. Returns its path there.
 */
export function installAgent(dir: string, source: string, name: string): string {
  const target = path.join(dir, name);
  fs.copyFileSync(source, target);
  fs.chmodSync(target, 0o755);
  return target;
}
