// What a user gets from npm: a tarball packed from a clean copy of the tree (no dist/:
// prepack builds it), installed with the real npm into a temporary prefix, whose
// commands and guest-client export work from there, the daemon included.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { repoRoot, run, TestDaemon } from '../helpers/daemon.js';
import { containersUnavailable, rootUnavailable } from '../helpers/env.js';

/** npm's error codes that mean the registry could not be reached (or the cache lacks a package). */
const unreachable = /\b(ENOTCACHED|ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH)\b/;

/** What a clean clone holds: everything but what builds and installs make. */
const madeByBuilds = new Set(['node_modules', 'dist', 'dist-test', 'dist-bench', '.git']);

describe('npm pack and npm install -g', () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'devapollo-pack-'));
  const prefix = path.join(work, 'prefix');
  const installed = path.join(prefix, 'lib/node_modules/devapollo');
  let packed: { tarball: string; files: string[] } | undefined;
  let skipInstall: string | false = false;
  let daemon: TestDaemon | undefined;

  before(async () => {
    const tree = path.join(work, 'tree');
    fs.cpSync(repoRoot, tree, { recursive: true, filter: (source) => !madeByBuilds.has(path.relative(repoRoot, source)) });
    // The build's own tools (tsc, esbuild): a clean clone gets them from `npm ci`.
    fs.symlinkSync(path.join(repoRoot, 'node_modules'), path.join(tree, 'node_modules'));
    const pack = await run('npm', ['pack', '--json', '--pack-destination', work], {
      env: { ...process.env, npm_config_loglevel: 'error' },
      timeoutMs: 240_000,
      cwd: tree,
    });
    assert.equal(pack.code, 0, pack.stderr);
    const [info] = JSON.parse(pack.out.slice(pack.out.indexOf('['))) as { filename: string; files: { path: string }[] }[];
    assert.ok(info);
    packed = { tarball: path.join(work, info.filename), files: info.files.map((f) => f.path) };
    // Offline first (the cache may hold every dependency), then the registry; no registry: skip.
    let install = await npmInstall(['--offline']);
    if (install.code !== 0 && /ENOTCACHED/.test(install.stderr)) install = await npmInstall(['--prefer-offline']);
    if (install.code !== 0 && unreachable.test(install.stderr)) {
      skipInstall = `npm could not fetch the package's dependencies (no registry, and not in the npm cache): ${install.stderr.match(unreachable)?.[0]}`;
      return;
    }
    assert.equal(install.code, 0, install.stderr);
  });

  after(async () => {
    await daemon?.destroy();
    fs.rmSync(work, { recursive: true, force: true });
  });

  function npmInstall(mode: string[]) {
    return run('npm', ['install', '--global', '--prefix', prefix, '--no-audit', '--no-fund', ...mode, packed?.tarball ?? ''], {
      env: { ...process.env, npm_config_loglevel: 'error' },
      timeoutMs: 240_000,
    });
  }

  test('the tarball holds the build, the Perl helpers and the docs, not the tests, sources or raw benchmark data', () => {
    const files = packed?.files ?? [];
    for (const needed of [
      'bin/devapollo.js',
      'bin/devapollo-guest.cjs',
      'dist/devapollo-guest.cjs',
      'dist/server/cli/main.js',
      'dist/client/guest-client.js',
      'dist/client/guest-client.d.ts',
      'libexec/container.pl',
      'libexec/exec.pl',
      'README.md',
      'docs/api.md',
      'docs/commands/README.md',
      'systemd/devapollo.service',
    ]) {
      assert.ok(files.includes(needed), `${needed} is packed`);
    }
    for (const file of files) {
      assert.doesNotMatch(file, /^(src|test|bench|scripts|dist-test)\/|\.map$|^docs\/performance\.json$/, `${file} is not for users`);
    }
  });

  test('the installed devapollo --version and devapollo-guest --help work', async (t) => {
    if (skipInstall) return t.skip(skipInstall);
    const version = await run(path.join(prefix, 'bin/devapollo'), ['--version']);
    assert.equal(version.code, 0, version.stderr);
    const { version: expected } = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string };
    assert.equal(version.out.trim(), expected);
    const help = await run(path.join(prefix, 'bin/devapollo-guest'), ['--help']);
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.out, /devapollo-guest get <key>/);
  });

  test('the installed daemon serves, and the installed CLI lists its containers', { skip: rootUnavailable }, async (t) => {
    if (skipInstall) return t.skip(skipInstall);
    daemon = await TestDaemon.start({ cli: path.join(installed, 'bin/devapollo.js') });
    const empty = await daemon.cli(['list', '--format', 'json']);
    assert.equal(empty.code, 0, empty.stderr);
    assert.deepEqual(JSON.parse(empty.out), []);
    if (containersUnavailable) {
      t.diagnostic(`no container launched from the installed copy: ${containersUnavailable}`);
      return;
    }
    // A launch runs the installed libexec/container.pl.
    const launch = await daemon.cli(['launch', 'packed', '-c', 'user.from=tarball']);
    assert.equal(launch.code, 0, launch.stderr);
    const list = await daemon.cli(['list', '--format', 'json']);
    const [container] = JSON.parse(list.out) as { name: string; state: string; config: Record<string, string> }[];
    assert.equal(container?.name, 'packed');
    assert.equal(container?.state, 'Running');
    assert.equal(container?.config['user.from'], 'tarball');
  });

  test('a program imports devapollo/guest-client from the install: typed, and its errors carry their code', {
    skip: rootUnavailable,
  }, async (t) => {
    if (skipInstall) return t.skip(skipInstall);
    const program = path.join(work, 'program');
    fs.mkdirSync(path.join(program, 'node_modules'), { recursive: true });
    fs.symlinkSync(installed, path.join(program, 'node_modules/devapollo'));
    fs.writeFileSync(path.join(program, 'package.json'), '{"type":"module"}\n');
    const source = [
      "import { ApolloError, GuestClient, defaultSocketPath } from 'devapollo/guest-client';",
      // The host is no container: the daemon answers 403, which the client throws as its error.
      'const client = new GuestClient({ socketPath: process.argv[2], connectTimeoutMs: 5000 });',
      'try {',
      "  await client.getJson<unknown>('/1.0');",
      "  console.log('answered');",
      '} catch (error) {',
      '  if (!(error instanceof ApolloError)) throw error;',
      '  const code: string = error.code;',
      '  console.log(JSON.stringify({ code, status: error.status, exit: error.exitCode, socket: defaultSocketPath }));',
      '}',
    ].join('\n');
    fs.writeFileSync(path.join(program, 'check.ts'), `${source}\n`);
    // The types come from the package's exports map ("types"), as a TypeScript user's would.
    const tsc = spawnSync(
      process.execPath,
      [
        path.join(repoRoot, 'node_modules/typescript/bin/tsc'),
        '--strict',
        '--module',
        'nodenext',
        '--target',
        'es2022',
        '--types',
        'node',
        '--typeRoots',
        path.join(repoRoot, 'node_modules/@types'),
        '--outDir',
        program,
        path.join(program, 'check.ts'),
      ],
      { encoding: 'utf8', cwd: program },
    );
    assert.equal(tsc.status, 0, tsc.stdout + tsc.stderr);
    daemon ??= await TestDaemon.start({ cli: path.join(installed, 'bin/devapollo.js') });
    const result = await run(process.execPath, [path.join(program, 'check.js'), path.join(daemon.dir, 'devapollo/sock')]);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(JSON.parse(result.out), { code: 'forbidden', status: 403, exit: 4, socket: '/dev/apollo/sock' });
  });
});
