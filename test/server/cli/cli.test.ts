// The host CLI as a user and a script see it: exit codes, one-line errors, formats, exec.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { eventually, guestBundle, hostCli, run, TestDaemon } from '../../helpers/daemon.js';
import { containersUnavailable, gatedTest, rootUnavailable } from '../../helpers/env.js';

const oneErrorLine = /^Error: [^\n]+\n$/;

describe('host CLI', () => {
  let daemon: TestDaemon;
  const test = gatedTest(containersUnavailable);

  before(async () => {
    if (containersUnavailable) return;
    daemon = await TestDaemon.start({ args: ['--max-value-size', '4096'] });
    await daemon.launch('web', { config: { 'user.foo': 'bar', 'user.n': '1' } });
  });

  after(async () => {
    await daemon?.destroy();
  });

  test('unknown container: exit 3 and one Error line', async () => {
    for (const args of [
      ['config', 'get', 'nope', 'user.foo'],
      ['stop', 'nope'],
      ['exec', 'nope', '--', 'true'],
      ['config', 'set', 'nope', 'user.a=1'],
    ]) {
      const r = await daemon.cli(args);
      assert.equal(r.code, 3, args.join(' '));
      assert.match(r.stderr, /^Error: container "nope" not found\n$/);
      assert.equal(r.out, '');
    }
  });

  test('invalid names and keys, KEY=VALUE without "=": exit 2', async () => {
    const cases = [
      ['launch', '1abc'],
      ['launch', 'a_b'],
      ['launch', 'x'.repeat(64)],
      ['config', 'set', 'web', 'bad key=1'],
      ['config', 'set', 'web', '.dot=1'],
      ['config', 'set', 'web', 'user.a=1', 'user.b'],
      ['launch', 'ok', '-c', 'novalue'],
      ['config', 'set', 'web', 'security.devapollo=maybe'],
    ];
    for (const args of cases) {
      const r = await daemon.cli(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, oneErrorLine, args.join(' '));
    }
    assert.doesNotMatch((await daemon.cli(['list'])).out, /\bok\b/);
  });

  test('an oversized value is refused with exit 2 and nothing changes', async () => {
    const r = await daemon.cli(['config', 'set', 'web', 'user.big', '-'], { input: 'x'.repeat(4097) });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^Error: the value of user\.big is 4097 bytes, more than the limit of 4096\n$/);
    const get = await daemon.cli(['config', 'get', 'web', 'user.big']);
    assert.equal(get.code, 3);
    const fits = await daemon.cli(['config', 'set', 'web', 'user.big', '-'], { input: 'x'.repeat(4096) });
    assert.equal(fits.code, 0, fits.stderr);
  });

  test('a 200 MB value on stdin is refused as too large, with the limit, and nothing changes', async () => {
    const r = await daemon.cli(['config', 'set', 'web', 'user.huge', '-'], { input: Buffer.alloc(200 * 1024 * 1024, 'x') });
    assert.equal(r.code, 2, r.stderr);
    assert.equal(
      r.stderr,
      'Error: the value on stdin is too large: more than 64 MiB, the most the daemon takes in one request (a value may be at most its serve --max-value-size, 1 MiB by default)\n',
    );
    assert.equal((await daemon.cli(['config', 'get', 'web', 'user.huge'])).code, 3);
  });

  test('a key in an unknown namespace, or a misspelt security key, is refused with the known keys', async () => {
    const known =
      'use user.* for your own keys, guest.* for what a guest reports, or one of cloud-init.network-config, cloud-init.user-data, cloud-init.vendor-data, ' +
      'security.devapollo, security.devapollo.guest-writes, security.devapollo.identity, security.devapollo.lxd-compat, security.devapollo.users, security.idmap.isolated, volatile.cloud-init.instance-id';
    for (const args of [
      ['config', 'set', 'web', 'securty.devapollo=false'],
      ['config', 'set', 'web', 'security.devapolo=false'],
      ['config', 'set', 'web', 'cloud-init.userdata', '-'],
      ['config', 'set', 'web', 'image.os=debian'],
      ['launch', 'typo', '-c', 'security.devapollo.user=true'],
    ]) {
      const r = await daemon.cli(args, { input: '#cloud-config\n' });
      const key = (args.find((arg) => arg.includes('=')) ?? args[3] ?? '').split('=')[0];
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stderr, `Error: unknown config key "${key}": ${known}\n`);
    }
    // The admin API refuses them too: the rule is the daemon's.
    const api = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request(
        { socketPath: path.join(daemon.dir, 'unix.socket'), method: 'PATCH', path: '/1.0/containers/web/config' },
        (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString('utf8')));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        },
      );
      req.on('error', reject);
      req.end(JSON.stringify({ 'security.devapolo': 'false' }));
    });
    assert.equal(api.status, 400);
    assert.equal((JSON.parse(api.body) as { error: string }).error, `unknown config key "security.devapolo": ${known}`);
    const shown = JSON.parse((await daemon.cli(['config', 'show', 'web', '--format', 'json'])).out) as Record<string, string>;
    assert.deepEqual(
      Object.keys(shown).filter((key) => !key.startsWith('user.')),
      [],
    );
    assert.doesNotMatch((await daemon.cli(['list'])).out, /\btypo\b/);
  });

  test('config set with spaces where "=" belongs says to use KEY=VALUE', async () => {
    for (const [args, bad] of [
      [['config', 'set', 'web', 'user.a', '1', 'user.b', '2'], 'user.a'],
      [['config', 'set', 'web', 'user.a=hello', 'world'], 'world'],
    ] as const) {
      const r = await daemon.cli([...args]);
      assert.equal(r.code, 2, r.stderr);
      assert.equal(
        r.stderr,
        `Error: expected KEY=VALUE, got "${bad}": join a key and its value with "=" (KEY=VALUE), and quote a value with spaces (KEY="a b")\n`,
      );
    }
    assert.equal((await daemon.cli(['config', 'get', 'web', 'user.a'])).code, 3);
  });

  test('config get prints the exact bytes; unset prints nothing and exits 3', async () => {
    const value = 'line one\n  "two" %s\t\n';
    assert.equal((await daemon.cli(['config', 'set', 'web', 'user.exact', '-'], { input: value })).code, 0);
    const get = await daemon.cli(['config', 'get', 'web', 'user.exact']);
    assert.equal(get.code, 0);
    assert.equal(get.out, value);
    const unset = await daemon.cli(['config', 'get', 'web', 'user.never']);
    assert.equal(unset.code, 3);
    assert.equal(unset.out, '');
    assert.match(unset.stderr, oneErrorLine);
  });

  test('setting a key to "" unsets it; unset removes it', async () => {
    assert.equal((await daemon.cli(['config', 'set', 'web', 'user.tmp=x'])).code, 0);
    assert.equal((await daemon.cli(['config', 'set', 'web', 'user.tmp='])).code, 0);
    assert.equal((await daemon.cli(['config', 'get', 'web', 'user.tmp'])).code, 3);
    assert.equal((await daemon.cli(['config', 'set', 'web', 'user.tmp', 'spaced value'])).code, 0);
    assert.equal((await daemon.cli(['config', 'get', 'web', 'user.tmp'])).out, 'spaced value');
    assert.equal((await daemon.cli(['config', 'unset', 'web', 'user.tmp'])).code, 0);
    assert.equal((await daemon.cli(['config', 'get', 'web', 'user.tmp'])).code, 3);
  });

  test('a value that is not UTF-8 is refused, not mangled', async () => {
    const r = await daemon.cli(['config', 'set', 'web', 'user.bin', '-'], { input: Buffer.from([0xff, 0xfe, 0x00]) });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /not valid UTF-8/);
  });

  test('list and config show in every format', async () => {
    const json = JSON.parse((await daemon.cli(['list', '--format', 'json'])).out) as Record<string, unknown>[];
    const web = json.find((c) => c['name'] === 'web');
    assert.ok(web);
    for (const field of ['name', 'state', 'guest_state', 'pid', 'config']) assert.ok(field in web, field);
    assert.equal(web['state'], 'Running');
    assert.equal(web['guest_state'], 'Started');
    assert.ok((web['pid'] as number) > 1);
    assert.equal((web['config'] as Record<string, string>)['user.foo'], 'bar');
    const yaml = parseYaml((await daemon.cli(['list', '--format', 'yaml'])).out) as Record<string, unknown>[];
    assert.deepEqual(yaml, json);
    const csv = (await daemon.cli(['list', '--format', 'csv'])).out.split('\r\n');
    assert.equal(csv[0], 'NAME,STATE,GUEST STATE,PID,TYPE');
    assert.match(csv[1] ?? '', /^web,Running,Started,\d+,unprivileged$/);
    const table = (await daemon.cli(['list'])).out;
    assert.match(table, /NAME\s+│\s+STATE/);
    assert.doesNotMatch(table, /\u001b\[/, 'no colour when stdout is not a terminal');
    const show = JSON.parse((await daemon.cli(['config', 'show', 'web', '--format', 'json'])).out) as Record<string, string>;
    assert.equal(show['user.foo'], 'bar');
    const bad = await daemon.cli(['list', '--format', 'xml']);
    assert.equal(bad.code, 2);
  });

  test('exec passes stdin, stdout, stderr and the exit code through', async () => {
    const r = await daemon.exec('web', ['sh', '-c', 'cat; echo to-stderr >&2; exit 7'], { input: 'piped in\n' });
    assert.equal(r.code, 7);
    assert.equal(r.out, 'piped in\n');
    assert.equal(r.stderr, 'to-stderr\n');
    const killed = await daemon.exec('web', ['sh', '-c', 'kill -KILL $$']);
    assert.equal(killed.code, 137);
    // A lone "-" after "--" is the command's own argument (curl -D -, cat -), untouched.
    const dash = await daemon.exec('web', ['sh', '-c', 'printf "[%s]" "$@"', 'sh', '-', 'x'], { input: '' });
    assert.equal(dash.code, 0, dash.stderr);
    assert.equal(dash.out, '[-][x]');
    const missing = await daemon.exec('web', ['no-such-command-here']);
    assert.equal(missing.code, 127);
    assert.match(missing.stderr, /^Error: cannot run no-such-command-here/);
  });

  test("exec runs with a fresh environment (never the caller's), --env, and forwards signals", async () => {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the container's shell expands it
    const env = await daemon.cli(['exec', 'web', '--env', 'GIVEN=yes', '--', 'sh', '-c', 'echo "[${APOLLO_TEST_VAR-}] [$GIVEN] [$HOME]"'], {
      env: { ...process.env, APOLLO_TEST_VAR: 'not carried' },
    });
    assert.equal(env.out, '[] [yes] [/root]\n');
    const child = spawn(
      process.execPath,
      [hostCli, '--dir', daemon.dir, 'exec', 'web', '--', 'sh', '-c', 'trap "exit 42" TERM; echo ready; while :; do sleep 0.05; done'],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    await eventually(() => out.includes('ready'), 'the command runs');
    child.kill('SIGTERM');
    assert.equal(await exited, 42);
  });

  test('exec on a stopped container fails clearly', async () => {
    await daemon.launch('idle', {});
    assert.equal((await daemon.cli(['stop', 'idle'])).code, 0);
    const r = await daemon.exec('idle', ['true']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^Error: container idle is not running\n$/);
  });

  test('config show prints tabs, newlines and escape sequences in a value as visible escapes', async () => {
    const value = 'a\tb\nc \u001b[31mred\u001b[0m';
    assert.equal((await daemon.cli(['config', 'set', 'web', 'user.raw', '-'], { input: value })).code, 0);
    const table = (await daemon.cli(['config', 'show', 'web'])).out;
    assert.match(table, /│ user\.raw +│ a\\tb\\nc \\x1b\[31mred\\x1b\[0m +│/);
    assert.equal(/[\t\u001b]/.test(table), false);
    const json = JSON.parse((await daemon.cli(['config', 'show', 'web', '--format', 'json'])).out) as Record<string, string>;
    assert.equal(json['user.raw'], value);
    assert.equal((await daemon.cli(['config', 'get', 'web', 'user.raw'])).out, value);
    assert.equal((await daemon.cli(['config', 'unset', 'web', 'user.raw'])).code, 0);
  });

  test('launch of an existing name fails and changes nothing', async () => {
    const r = await daemon.cli(['launch', 'web', '-c', 'user.foo=other']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^Error: container "web" already exists\n$/);
    assert.equal((await daemon.cli(['config', 'get', 'web', 'user.foo'])).out, 'bar');
  });

  test('status reports version, sockets and counts', async () => {
    const status = JSON.parse((await daemon.cli(['status', '--format', 'json'])).out) as Record<string, unknown>;
    assert.equal(status['guest_socket'], path.join(daemon.dir, 'devapollo/sock'));
    assert.equal(status['admin_socket'], path.join(daemon.dir, 'unix.socket'));
    assert.match(String(status['version']), /^\d+\.\d+\.\d+/);
    assert.ok((status['containers'] as { total: number }).total >= 1);
  });
});

describe('host CLI without a daemon', () => {
  const test = gatedTest(rootUnavailable);
  let dir: string;

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'devapollo-nodaemon-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('no daemon: exit 69 with a clear message', async () => {
    const r = await run(process.execPath, [hostCli, '--dir', dir, 'list']);
    assert.equal(r.code, 69);
    // The hint keeps the --dir given: a daemon started as it says is the one this command asks.
    assert.equal(r.stderr, `Error: no devapollo daemon answers on ${dir}/unix.socket: start it with "devapollo serve --dir ${dir}"\n`);
    const fromEnv = await run(process.execPath, [hostCli, 'list'], { env: { ...process.env, APOLLO_DIR: dir } });
    assert.equal(fromEnv.stderr, r.stderr);
    const notDir = await run(process.execPath, [hostCli, '--dir', '/etc/passwd', 'list']);
    assert.equal(notDir.code, 69);
    assert.equal(
      notDir.stderr,
      'Error: no devapollo daemon answers on /etc/passwd/unix.socket: /etc/passwd is not a directory (see --dir)\n',
    );
  });

  test("a value outside an option's choices is named, with the choices, on the one Error line", async () => {
    const format = await run(process.execPath, [hostCli, '--dir', dir, 'list', '--format', 'xml']);
    assert.equal(format.code, 2);
    assert.match(format.stderr, /^Error: --format "xml" is not one of "table", "json", "yaml", "csv"\n/);
    const level = await run(process.execPath, [hostCli, '--dir', dir, 'serve', '--log-level', 'loud']);
    assert.equal(level.code, 2);
    assert.match(level.stderr, /^Error: --log-level "loud" is not one of "debug", "info", "warn", "error"\n/);
  });

  test('a missing argument is named, with the usage line of its command; a mistyped command gets the nearest one', async () => {
    const missing = await run(process.execPath, [hostCli, '--dir', dir, 'config', 'get', 'web']);
    assert.equal(missing.code, 2);
    assert.equal(
      missing.stderr,
      'Error: missing <key>\n\nUsage: devapollo config get <name> <key>\nRun "devapollo config get --help" for more.\n',
    );
    const two = await run(process.execPath, [hostCli, 'config', 'set']);
    assert.match(two.stderr, /^Error: missing <name> <assignments\.\.>\n/);
    const typo = await run(process.execPath, [hostCli, '--dir', dir, 'lgos', 'web']);
    assert.equal(typo.code, 2);
    assert.equal(typo.stderr, 'Error: unknown command "lgos": did you mean logs?\n\nRun "devapollo --help" for usage.\n');
    const far = await run(process.execPath, [hostCli, 'frobnicate']);
    assert.match(far.stderr, /^Error: unknown command "frobnicate"\n/);
    const none = await run(process.execPath, [hostCli]);
    assert.match(none.stderr, /^Error: Pick a command: serve, status, monitor, hook, identity, create, launch, exec, list, start, stop, /);
    const guest = await run(process.execPath, [guestBundle, 'set', 'guest.status']);
    assert.equal(guest.code, 2);
    assert.equal(
      guest.stderr,
      'Error: missing <value>\n\nUsage: devapollo-guest set <key> <value>\nRun "devapollo-guest set --help" for more.\n',
    );
    assert.match(
      (await run(process.execPath, [guestBundle, 'gte', 'user.a'])).stderr,
      /^Error: unknown command "gte": did you mean get\?\n/,
    );
  });

  test('serve: a header timeout past the request timeout, and a --dir that is a file, in plain words', async () => {
    const timeout = await run(process.execPath, [hostCli, '--dir', dir, 'serve', '--header-timeout', '400']);
    assert.equal(timeout.code, 2);
    assert.equal(
      timeout.stderr,
      'Error: --header-timeout must be at most 30 seconds (the time a guest has for its whole request), not 400\n',
    );
    // The daemon's own check of DIR (src/server/state/dir-check.ts) says it, not Node's EEXIST.
    const file = await run(process.execPath, [hostCli, '--dir', '/etc/passwd', 'serve']);
    assert.notEqual(file.code, 0);
    assert.equal(file.stderr, 'Error: /etc/passwd is not a directory\n');
    const below = await run(process.execPath, [hostCli, '--dir', '/etc/passwd/apollo', 'serve']);
    assert.notEqual(below.code, 0);
    assert.equal(below.stderr, 'Error: --dir /etc/passwd/apollo: /etc/passwd is not a directory\n');
  });

  test('usage errors exit 2', async () => {
    for (const args of [[], ['frobnicate'], ['config'], ['launch'], ['stop', 'a', 'b']]) {
      const r = await run(process.execPath, [hostCli, '--dir', dir, ...args]);
      assert.equal(r.code, 2, args.join(' '));
      assert.match(r.stderr, /^Error: /);
      assert.equal(r.out, '');
    }
  });

  test('--help and --version go to stdout and exit 0', async () => {
    const help = await run(process.execPath, [hostCli, '--help']);
    assert.equal(help.code, 0);
    for (const command of ['serve', 'launch', 'exec', 'list', 'config', 'start', 'stop', 'delete', 'register', 'status']) {
      assert.match(help.out, new RegExp(`devapollo ${command}`), command);
    }
    const version = await run(process.execPath, [hostCli, '--version']);
    assert.match(version.out, /^\d+\.\d+\.\d+\n$/);
    // Run as users run it (npm start, the systemd unit): through its #! line and node flags.
    const direct = await run(hostCli, ['--version']);
    assert.equal(direct.code, 0, direct.stderr);
    assert.equal(direct.out, version.out);
  });
});

describe('devapollo monitor across a daemon restart', () => {
  const test = gatedTest(containersUnavailable);

  test('it reconnects, keeps printing, and reports a change made before it was back exactly once', async () => {
    const daemon = await TestDaemon.start();
    await daemon.launch('web', {});
    const monitor = spawn(process.execPath, [hostCli, '--dir', daemon.dir, 'monitor', 'web', '--type', 'config', '--format', 'json'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    monitor.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
    monitor.stderr.on('data', (c: Buffer) => (err += c.toString('utf8')));
    const exited = new Promise<number | null>((resolve) => monitor.once('exit', (code) => resolve(code)));
    const seen = (key: string, value: string) =>
      out
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => JSON.parse(line) as { metadata: { key?: string; value?: string } })
        .filter((event) => event.metadata.key === key && event.metadata.value === value).length;
    try {
      await eventually(async () => {
        await daemon.cli(['config', 'set', 'web', `user.ping=${Date.now()}`]);
        return out.includes('"user.ping"');
      }, 'the monitor is connected');
      assert.equal((await daemon.cli(['config', 'set', 'web', 'user.before=1'])).code, 0);
      await eventually(() => seen('user.before', '1') === 1, 'the monitor sees user.before');
      await daemon.signal('SIGTERM');
      await daemon.spawn();
      // Set at once: the monitor may not be back yet, and must report it either way.
      assert.equal((await daemon.cli(['config', 'set', 'web', 'user.after=2'])).code, 0);
      await eventually(() => seen('user.after', '2') >= 1, `the monitor sees user.after (stderr: ${err})`);
      assert.equal((await daemon.cli(['config', 'set', 'web', 'user.last=3'])).code, 0);
      await eventually(() => seen('user.last', '3') === 1, 'the monitor sees user.last');
      assert.equal(seen('user.after', '2'), 1, out);
      assert.equal(seen('user.before', '1'), 1, out);
      assert.equal(monitor.exitCode, null, 'the monitor still runs');
      monitor.kill('SIGINT');
      assert.equal(await exited, 0, err);
    } finally {
      monitor.kill('SIGKILL');
      await daemon.destroy();
    }
  });
});
