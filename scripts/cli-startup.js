// @ts-check
// The start-up of a CLI command, as DEVELOPERS.md ("One Unix-socket client") quotes it:
// N runs under /usr/bin/time after two warm-up runs; the medians of wall time and of CPU
// time (user + sys), which other jobs on the machine disturb far less than wall time.
//   node scripts/cli-startup.js 20 -- bin/devapollo.js --dir DIR list
import { spawnSync } from 'node:child_process';

const [runsText, dashes, ...command] = process.argv.slice(2);
const runs = Number(runsText);
if (!(runs > 0) || dashes !== '--' || command.length === 0) {
  process.stderr.write('usage: node scripts/cli-startup.js RUNS -- SCRIPT [ARG...]\n');
  process.exit(2);
}
/** @type {number[]} */ const wall = [];
/** @type {number[]} */ const cpu = [];
for (let i = 0; i < runs + 2; i++) {
  const result = spawnSync('/usr/bin/time', ['-f', '@@%e %U %S', process.execPath, ...command], { stdio: ['ignore', 'ignore', 'pipe'] });
  const [elapsed, user, system] = (String(result.stderr).split('@@')[1] ?? '').trim().split(' ').map(Number);
  if (result.status !== 0 || elapsed === undefined || user === undefined || system === undefined) {
    process.stderr.write(`the command failed (status ${result.status}): ${String(result.stderr)}\n`);
    process.exit(1);
  }
  if (i < 2) continue;
  wall.push(elapsed * 1000);
  cpu.push((user + system) * 1000);
}
/** @param {number[]} values */
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? NaN;
process.stdout.write(
  `${command.join(' ')}: wall ${median(wall).toFixed(0)} ms, cpu ${median(cpu).toFixed(0)} ms (medians of ${runs} runs)\n`,
);
