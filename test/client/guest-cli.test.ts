// devapollo-guest inside real containers against the real daemon: stdout bytes, stderr,
// exit codes, formats, the NoCloud seed, and what happens when nobody answers.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { eventually, guestTool, run, TestDaemon } from '../helpers/daemon.js';
import { containersUnavailable, gatedTest } from '../helpers/env.js';
import { processesWhere } from '../helpers/procs.js';

const oneErrorLine = /^Error: [^\n]+\n$/;

describe('devapollo-guest', () => {
  let daemon: TestDaemon;
  const test = gatedTest(containersUnavailable);

  before(async () => {
    if (containersUnavailable) return;
    daemon = await TestDaemon.start();
    await daemon.launch('g', {
      config: {
        'user.foo': 'bar',
        'user.b': 'second',
        'user.a': 'first',
        'user.user-data': '#cloud-config\nfrom: user\n',
        'cloud-init.user-data': '#cloud-config\nfrom: cloud-init\n',
        'user.vendor-data': '#cloud-config\nvendor: ü\n',
        'user.meta-data': 'zone: α\n',
        'security.idmap.isolated': 'false',
      },
    });
  });

  after(async () => {
    await daemon?.destroy();
  });

  /** devapollo-guest in the container, with `env` in its environment (exec --env). */
  const guest = (args: string[], env: Readonly<Record<string, string>> = {}) =>
    daemon.cli([
      'exec',
      'g',
      ...Object.entries(env).flatMap(([k, v]) => ['--env', `${k}=${v}`]),
      '--',
      process.execPath,
      guestTool(),
      ...args,
    ]);

  test('get prints exact bytes, whatever they hold', async () => {
    for (const value of ['with %s and %d', 'trailing newlines\n\n', 'no newline', '  spaces  ', 'ünïcödé 😀', 'a\u0000b']) {
      assert.equal((await daemon.cli(['config', 'set', 'g', 'user.v', '-'], { input: value })).code, 0);
      const r = await guest(['get', 'user.v']);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(r.stdout, Buffer.from(value, 'utf8'), JSON.stringify(value));
      assert.equal(r.stderr, '');
    }
    // As a script uses it: $(devapollo-guest get KEY) equals what the host set, minus trailing newlines as always in sh.
    const sh = await daemon.exec('g', ['sh', '-c', `v=$(${process.execPath} ${guestTool()} get user.foo); [ "$v" = bar ] && echo same`]);
    assert.equal(sh.out, 'same\n');
  });

  test('get: unset key exit 3, forbidden key exit 4, nothing on stdout', async () => {
    const unset = await guest(['get', 'user.nothing']);
    assert.equal(unset.code, 3);
    assert.equal(unset.out, '');
    assert.match(unset.stderr, oneErrorLine);
    const forbidden = await guest(['get', 'security.secret']);
    assert.equal(forbidden.code, 4);
    assert.equal(forbidden.out, '');
    assert.match(forbidden.stderr, oneErrorLine);
  });

  test('config: one JSON object in key order; YAML; a table', async () => {
    const json = await guest(['config', '--format', 'json']);
    assert.equal(json.code, 0, json.stderr);
    const parsed = JSON.parse(json.out) as Record<string, string>;
    assert.deepEqual(Object.keys(parsed), [...Object.keys(parsed)].sort());
    assert.equal(parsed['user.a'], 'first');
    assert.equal(parsed['cloud-init.user-data'], '#cloud-config\nfrom: cloud-init\n');
    assert.equal(parsed['security.secret'], undefined);
    assert.equal(parsed['security.idmap.isolated'], undefined);
    assert.deepEqual(parseYaml((await guest(['config', '--format', 'yaml'])).out), parsed);
    const table = await guest(['config']);
    assert.match(table.out, /KEY\s+│\s+VALUE/);
    assert.match(table.out, /user\.a\s+│\s+first/);
    assert.doesNotMatch(table.out, /\u001b\[/);
  });

  test('metadata is exactly what the socket serves', async () => {
    const viaCurl = await daemon.curl('g', '/1.0/meta-data');
    const viaGuest = await guest(['metadata']);
    assert.equal(viaGuest.code, 0);
    assert.deepEqual(viaGuest.stdout, viaCurl.stdout);
    assert.equal(viaGuest.out, '#cloud-config\ninstance-id: g\nlocal-hostname: g\nzone: α\n');
  });

  test('info as a table and as JSON', async () => {
    const json = JSON.parse((await guest(['info', '--format', 'json'])).out) as Record<string, unknown>;
    assert.equal(json['api_version'], '1.0');
    assert.equal(json['instance_type'], 'container');
    const table = (await guest(['info'])).out;
    assert.match(table, /api_version\s+│\s+1\.0/);
  });

  test('seed writes a NoCloud seed; cloud-init.* wins over user.*; stale files go', async () => {
    const dir = path.join(path.dirname(guestTool()), `seed-${process.pid}`);
    try {
      fs.mkdirSync(dir, { mode: 0o777 });
      fs.chmodSync(dir, 0o777);
      fs.writeFileSync(path.join(dir, 'network-config'), 'stale', { mode: 0o666 });
      const r = await guest(['seed', dir]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.out, '');
      assert.deepEqual(fs.readdirSync(dir).sort(), ['meta-data', 'user-data', 'vendor-data']);
      assert.equal(fs.readFileSync(path.join(dir, 'user-data'), 'utf8'), '#cloud-config\nfrom: cloud-init\n');
      assert.equal(fs.readFileSync(path.join(dir, 'vendor-data'), 'utf8'), '#cloud-config\nvendor: ü\n');
      assert.equal(fs.readFileSync(path.join(dir, 'meta-data'), 'utf8'), (await daemon.curl('g', '/1.0/meta-data')).out);
      assert.equal(fs.statSync(path.join(dir, 'user-data')).mode & 0o777, 0o600);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('ready sets the guest state the host sees', async () => {
    const r = await guest(['ready']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.out, '');
    const list = JSON.parse((await daemon.cli(['list', '--format', 'json'])).out) as { name: string; guest_state: string }[];
    assert.equal(list.find((c) => c.name === 'g')?.guest_state, 'Ready');
    assert.equal((JSON.parse((await guest(['info', '--format', 'json'])).out) as { state: string }).state, 'Ready');
  });

  test('--socket and APOLLO_SOCKET choose the socket; a missing one is exit 69, at once', async () => {
    const viaFlag = await guest(['--socket', '/dev/apollo/sock', 'get', 'user.foo']);
    assert.equal(viaFlag.out, 'bar');
    const viaEnv = await guest(['get', 'user.foo'], { APOLLO_SOCKET: '/dev/apollo/sock' });
    assert.equal(viaEnv.out, 'bar');
    const missing = await guest(['--socket', '/nonexistent/dir/sock', 'get', 'user.foo']);
    assert.equal(missing.code, 69);
    assert.match(missing.stderr, /^Error: no socket at \/nonexistent\/dir\/sock: this is not a container served by devapollo/);
    const env = await guest(['get', 'user.foo'], { APOLLO_SOCKET: '/nonexistent/sock' });
    assert.equal(env.code, 69);
  });

  test('a socket nobody listens on, and a daemon that never answers: exit 69 within --connect-timeout', async () => {
    const dir = fs.mkdtempSync(path.join(path.dirname(guestTool()), 'socks-'));
    fs.chmodSync(dir, 0o755);
    const dead = path.join(dir, 'dead.sock');
    const hung = path.join(dir, 'hung.sock');
    // A socket file with no listener, as a crashed daemon leaves it (perl does not unlink it).
    assert.equal(
      (await run('perl', ['-MIO::Socket::UNIX', '-e', 'IO::Socket::UNIX->new(Local => $ARGV[0], Listen => 1) or die', dead])).code,
      0,
    );
    const hungServer = net.createServer(() => undefined);
    await new Promise<void>((resolve) => hungServer.listen(hung, resolve));
    fs.chmodSync(hung, 0o777);
    try {
      const refused = await run(process.execPath, [guestTool(), '--socket', dead, '--connect-timeout', '1', 'get', 'user.foo']);
      assert.equal(refused.code, 69);
      assert.match(refused.stderr, /^Error: nobody answers on .*: the devapollo daemon is down\n$/);
      const start = Date.now();
      const hanging = await run(process.execPath, [guestTool(), '--socket', hung, '--connect-timeout', '1', 'get', 'user.foo'], {
        timeoutMs: 20_000,
      });
      assert.equal(hanging.code, 69);
      assert.match(hanging.stderr, /^Error: the devapollo daemon did not answer on .* within 1 s\n$/);
      // A hang guard, not a deadline: it ended on its own well before the 20 s guard.
      assert.ok(Date.now() - start < 15_000);
    } finally {
      hungServer.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a daemon restarting under a get is waited for within --connect-timeout', async () => {
    const flag = path.join(path.dirname(guestTool()), `restart-${process.pid}`);
    const script = `while [ ! -e ${flag} ]; do sleep 0.02; done; exec ${process.execPath} ${guestTool()} --connect-timeout 30 get user.foo`;
    const pending = daemon.exec('g', ['sh', '-c', script]);
    try {
      // Once the shell runs inside, the daemon has looked the container up and may go.
      await eventually(
        () => processesWhere((args) => args[0] === 'sh' && args[1] === '-c' && args[2] === script).length > 0,
        'exec runs its command',
      );
      await daemon.signal('SIGTERM');
      fs.writeFileSync(flag, '');
      // The get runs while no daemon answers, and keeps trying.
      await eventually(() => processesWhere((args) => args[1] === guestTool() && args.includes('get')).length > 0, 'the get runs');
      await daemon.spawn();
      const r = await pending;
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.out, 'bar');
    } finally {
      fs.rmSync(flag, { force: true });
    }
  });

  test('usage errors exit 2; --help shows an example for every command; --version', async () => {
    for (const args of [[], ['get'], ['get', 'a', 'b'], ['nope'], ['config', '--format', 'xml'], ['wait', 'k', '--timeout', 'x']]) {
      const r = await run(process.execPath, [guestTool(), ...args]);
      assert.equal(r.code, 2, args.join(' '));
      assert.match(r.stderr, /^Error: /);
    }
    for (const command of ['get', 'config', 'metadata', 'info', 'watch', 'wait', 'ready', 'seed']) {
      const help = await run(process.execPath, [guestTool(), command, '--help']);
      assert.equal(help.code, 0, command);
      assert.match(help.out, /Examples:\n\s+devapollo-guest /, command);
    }
    const version = await run(process.execPath, [guestTool(), '--version']);
    assert.match(version.out, /^\d+\.\d+\.\d+\n$/);
  });

  test('colour only on a terminal, never with NO_COLOR', async (t) => {
    const script = await run('script', ['--version']);
    if (script.code !== 0) {
      t.skip('needs script(1) for a pseudo-terminal');
      return;
    }
    const inPty = (env: string) => daemon.exec('g', ['script', '-qec', `${env} ${process.execPath} ${guestTool()} config`, '/dev/null']);
    assert.match((await inPty('')).out, /\u001b\[/);
    assert.doesNotMatch((await inPty('NO_COLOR=1')).out, /\u001b\[/);
  });
});
