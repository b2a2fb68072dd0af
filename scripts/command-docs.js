// @ts-check
// Writes docs/commands/: one page per command of both CLIs, from their own --help, so
// the pages never say something the programs do not. `npm run docs`; a test checks that
// the pages are current (test/docs/command-docs.test.ts).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** [program, entry point, commands (with sub-commands)]. */
/** @type {[program: string, entry: string, commands: string[]][]} */
const programs = [
  [
    'devapollo',
    'bin/devapollo.js',
    [
      'serve',
      'create',
      'launch',
      'exec',
      'list',
      'config set',
      'config get',
      'config unset',
      'config show',
      'start',
      'stop',
      'restart',
      'logs',
      'delete',
      'register',
      'status',
      'monitor',
      'hook lxc',
      'hook oci',
      'identity jwks',
      'identity rotate',
      'identity verify',
      'completion',
    ],
  ],
  [
    'devapollo-guest',
    'bin/devapollo-guest.cjs',
    ['get', 'config', 'metadata', 'info', 'watch', 'wait', 'ready', 'seed', 'set', 'unset', 'token', 'completion'],
  ],
];

/**
 * @param {string} entry
 * @param {string[]} words
 */
function help(entry, words) {
  return execFileSync(process.execPath, [path.join(root, entry), ...words, '--help'], {
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1', COLUMNS: '100' },
  });
}

/** The pages, as file name -> content. */
export function commandPages() {
  const pages = new Map();
  const index = ['# Command reference', '', "Generated from each command's `--help` by `npm run docs`.", ''];
  for (const [program, entry, commands] of programs) {
    index.push(`## ${program}`, '');
    for (const command of commands) {
      const file = `${program}-${command.replace(/ /g, '-')}.md`;
      if (command === 'completion') {
        // Its --help prints the script itself.
        const summary = 'Print a bash/zsh completion script (source it from your shell rc)';
        pages.set(
          file,
          `# ${program} completion\n\n${summary}.\n\n\`\`\`\n${program} completion >> ~/.bashrc     # or ~/.zshrc\n\`\`\`\n\n` +
            `Completes commands and options, and asks the daemon for what comes next: ${
              program === 'devapollo'
                ? 'container names (exec, start, stop, restart, logs, delete, monitor, config) and their keys (config get, set, unset)'
                : "this container's readable keys (get, wait)"
            }. When no daemon answers within a second, only commands and options are offered.\n`,
        );
        index.push(`- [\`${program} completion\`](${file}): ${summary}`);
        continue;
      }
      const text = help(entry, command.split(' '));
      const summary = text.split('\n\n')[1]?.split('\n')[0] ?? '';
      pages.set(file, `# ${program} ${command}\n\n${summary}\n\n\`\`\`\n${text.trimEnd()}\n\`\`\`\n`);
      index.push(`- [\`${program} ${command}\`](${file}): ${summary}`);
    }
    index.push('');
  }
  pages.set('README.md', `${index.join('\n').trimEnd()}\n`);
  return pages;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const dir = path.join(root, 'docs/commands');
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  for (const [file, content] of commandPages()) fs.writeFileSync(path.join(dir, file), content);
}
