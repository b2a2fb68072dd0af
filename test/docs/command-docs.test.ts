// docs/commands is generated from the commands' own --help: it must be current, and every
// command the CLIs list must have its page.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { hostCli, repoRoot, run } from '../helpers/daemon.js';

const docsDir = path.join(repoRoot, 'docs/commands');

test('docs/commands matches what the commands say (run "npm run docs" after changing one)', async () => {
  const generator = path.join(repoRoot, 'scripts/command-docs.js');
  const { commandPages } = (await import(generator)) as { commandPages: () => Map<string, string> };
  const pages = commandPages();
  assert.deepEqual(fs.readdirSync(docsDir).sort(), [...pages.keys()].sort());
  for (const [file, content] of pages) assert.equal(fs.readFileSync(path.join(docsDir, file), 'utf8'), content, file);
});

test('every command in devapollo --help has a page', async () => {
  const help = (await run(process.execPath, [hostCli, '--help'])).out;
  const commands = [...help.matchAll(/^ {2}devapollo (\w+)/gm)].map((m) => m[1]);
  assert.ok(commands.length >= 12);
  for (const command of commands) {
    const pages = fs.readdirSync(docsDir).filter((f) => f === `devapollo-${command}.md` || f.startsWith(`devapollo-${command}-`));
    assert.ok(pages.length > 0, `a page for devapollo ${command}`);
  }
});
