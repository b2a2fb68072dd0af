/**
 * The README's examples, run as users run them: the text is taken from README.md, and a
 * test changes only what would clash on a shared machine (paths under /tmp, the runtime's
 * state root, the daemon's directory, where `devapollo` is installed). An example that
 * stops working as written fails its test.
 */
import fs from 'node:fs';
import path from 'node:path';
import { type RunResult, repoRoot } from './daemon.js';
import { runToFiles } from './runtimes.js';

const readmeText = (): string => fs.readFileSync(path.join(repoRoot, 'README.md'), 'utf8');

/**
 * The README's indented code block whose first line begins with `firstLine`, without its
 * four-space indent. Throws when the README has no such block, so that a renamed example
 * fails loudly instead of testing nothing.
 */
export function readmeBlock(firstLine: string): string {
  const lines = readmeText().split('\n');
  const start = lines.findIndex((line, i) => line.startsWith(`    ${firstLine}`) && !(lines[i - 1] ?? '').startsWith('    '));
  if (start === -1) throw new Error(`README.md has no code block beginning ${JSON.stringify(firstLine)}`);
  const block: string[] = [];
  for (let i = start; i < lines.length; i++) {
    const line = lines[i] ?? '';
    if (line.startsWith('    ')) block.push(line.slice(4));
    else if (line === '' && (lines[i + 1] ?? '').startsWith('    ')) block.push('');
    else break;
  }
  return `${block.join('\n')}\n`;
}

/**
 * Replaces each `from` in order: a string, every occurrence, as it is; a RegExp (with /g),
 * with `$1` in `to` for its groups.
 */
export function substitute(text: string, replacements: ReadonlyArray<readonly [string | RegExp, string]>): string {
  let result = text;
  for (const [from, to] of replacements) result = typeof from === 'string' ? result.split(from).join(to) : result.replace(from, to);
  return result;
}

/**
 * One step of a README transcript: the commands before a command whose output the README
 * shows, that command, and the output shown (the lines after it that are not commands).
 */
export interface TranscriptStep {
  readonly setup: string;
  readonly command: string;
  readonly output: string;
}

/**
 * Splits a README block into steps at the lines that show output (`outputs`, in order),
 * and what comes after the last one (`rest`).
 */
export function transcript(block: string, outputs: readonly string[]): { steps: TranscriptStep[]; rest: string } {
  const lines = block.split('\n');
  const steps: TranscriptStep[] = [];
  let from = 0;
  for (const output of outputs) {
    const at = lines.indexOf(output, from);
    if (at < 1) throw new Error(`the README block shows no output line ${JSON.stringify(output)}:\n${block}`);
    steps.push({ setup: lines.slice(from, at - 1).join('\n'), command: lines[at - 1] ?? '', output });
    from = at + 1;
  }
  return { steps, rest: lines.slice(from).join('\n') };
}

/**
 * Runs shell text with `sh -eu` in `cwd`; `prelude` (function definitions) comes first.
 * Output goes through files: a container the script starts keeps its runtime's stdio.
 */
export function sh(script: string, options: { cwd: string; prelude?: string; env?: NodeJS.ProcessEnv }): Promise<RunResult> {
  const text = `${options.prelude ?? ''}\ncd ${JSON.stringify(options.cwd)}\n${script}\n`;
  return runToFiles('sh', ['-eu', '-c', text], options.env ?? process.env);
}

/**
 * A stand-in for `/usr/local/bin/devapollo`, written in `dir`, that runs `argv` (this
 * checkout's CLI on the test daemon's directory) with its arguments; returns its path.
 * Hooks call it as they would the installed command.
 */
export function devapolloCommand(dir: string, argv: readonly string[]): string {
  const file = path.join(dir, 'devapollo');
  const words = argv.map((word) => `'${word.replace(/'/g, `'\\''`)}'`);
  fs.writeFileSync(file, `#!/bin/sh\nexec ${words.join(' ')} "$@"\n`, { mode: 0o755 });
  return file;
}
