/** What every benchmark gets from the runner. */
import path from 'node:path';
import { repoRoot } from './daemon.js';

export interface BenchContext {
  /** Fewer rounds, shorter runs, fewer containers. */
  readonly quick: boolean;
  /** Containers for the scale benchmark (default 10,000; 1,000 with --quick). */
  readonly containers: number | undefined;
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
