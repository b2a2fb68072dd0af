/**
 * Times whole processes from spawn to exit, inside a container: `devapollo-guest get KEY`,
 * curl and a minimal Node script, interleaved round by round (the order rotates), each
 * checked for the exact output. Imports only node: modules, so it runs from a copy in a
 * world-readable directory in an unprivileged container.
 *
 * Argument: a JSON object { rounds, warmup, expect, commands: { NAME: [ARGV...] } }.
 * Prints one JSON line: { NAME: [milliseconds...] }.
 */
import { spawnSync } from 'node:child_process';

interface Options {
  readonly rounds: number;
  readonly warmup: number;
  readonly expect: string;
  readonly commands: Readonly<Record<string, readonly string[]>>;
}

const options = JSON.parse(process.argv[2] ?? '{}') as Options;
const names = Object.keys(options.commands);
const times: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));

function once(name: string): number {
  const [command, ...args] = options.commands[name] as readonly string[];
  const start = process.hrtime.bigint();
  const result = spawnSync(command as string, args, { encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (result.status !== 0 || result.stdout !== options.expect) {
    throw new Error(`${name} answered ${result.status} ${JSON.stringify(result.stdout)} ${result.stderr}`);
  }
  return ms;
}

for (let i = 0; i < options.warmup; i++) for (const name of names) once(name);
for (let round = 0; round < options.rounds; round++) {
  for (let k = 0; k < names.length; k++) {
    const name = names[(round + k) % names.length] as string;
    times[name]?.push(once(name));
  }
}
process.stdout.write(`${JSON.stringify(times)}\n`);
