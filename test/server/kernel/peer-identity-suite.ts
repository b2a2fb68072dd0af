// Who is asking: peer credentials and pid namespaces decide the container, with real
// processes entering, nesting, leaving and being let go.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe } from 'node:test';
import { eventually, guestTool, hostCli, run, TestDaemon } from '../../helpers/daemon.js';
import { curlUnavailable, gatedTest } from '../../helpers/env.js';
import type { KernelMode } from '../../helpers/kernel-modes.js';
import { childrenOf } from '../../helpers/procs.js';

/** A pid namespace made outside devapollo: `unshare --pid --fork` with an idle init. */
async function foreignNamespace(): Promise<{ unshare: ChildProcess; init: number }> {
  const unshare = spawn('unshare', ['--pid', '--fork', '--kill-child', '--mount-proc', 'sleep', '1000'], { stdio: 'ignore' });
  let init = 0;
  await eventually(() => {
    init = childrenOf(unshare.pid ?? -1)[0] ?? 0;
    return init > 0;
  }, 'the foreign namespace has its init');
  return { unshare, init };
}

/** The suite on one kernel path (this kernel's, or a fallback for older ones); one test file per mode. */
export function identitySuite(mode: KernelMode): void {
  describe(`identity, ${mode.name}`, () => {
    let daemon: TestDaemon;
    const test = gatedTest(curlUnavailable);
    const cleanups: (() => void)[] = [];

    before(async () => {
      if (curlUnavailable) return;
      daemon = await TestDaemon.start({ env: mode.env });
      await daemon.launch('alpha', { config: { 'user.foo': 'alpha' } });
      await daemon.launch('beta', { config: { 'user.foo': 'beta' } });
    });

    after(async () => {
      for (const cleanup of cleanups) cleanup();
      await daemon?.destroy();
    });

    const sock = () => path.join(daemon.dir, 'devapollo/sock');

    test('the daemon takes the kernel paths of this mode', async () => {
      const status = JSON.parse((await daemon.cli(['status', '--format', 'json'])).out) as { identity: unknown };
      assert.deepEqual(status.identity, mode.identity);
    });

    test('a process started by devapollo exec is recognised as its container', async () => {
      const r = await daemon.exec('alpha', ['curl', '-sS', '--unix-socket', '/dev/apollo/sock', 'http://apollo/1.0/config/user.foo']);
      assert.equal(r.out, 'alpha');
    });

    test('a process that entered with nsenter belongs to the container', async () => {
      const list = JSON.parse((await daemon.cli(['list', '--format', 'json'])).out) as { name: string; pid: number }[];
      const pid = list.find((c) => c.name === 'beta')?.pid;
      assert.ok(pid);
      const r = await run('nsenter', [
        '--target',
        String(pid),
        '--user',
        '--pid',
        '--mount',
        '--',
        'curl',
        '-sS',
        '--unix-socket',
        '/dev/apollo/sock',
        'http://apollo/1.0/config/user.foo',
      ]);
      assert.equal(r.out, 'beta', r.stderr);
    });

    test('a pid namespace nested inside a container belongs to that container', async () => {
      const r = await daemon.exec('alpha', [
        'unshare',
        '--pid',
        '--fork',
        '--',
        'curl',
        '-sS',
        '--unix-socket',
        '/dev/apollo/sock',
        'http://apollo/1.0/config/user.foo',
      ]);
      assert.equal(r.out, 'alpha', r.stderr);
    });

    test('a host process gets 403', async () => {
      const r = await run('curl', [
        '-sS',
        '-o',
        '/dev/null',
        '-w',
        '%{http_code}',
        '--unix-socket',
        sock(),
        'http://apollo/1.0/config/user.foo',
      ]);
      assert.equal(r.out, '403');
    });

    test('a process in a namespace created outside devapollo gets 403', async () => {
      const r = await run('unshare', [
        '--pid',
        '--fork',
        '--mount-proc',
        '--',
        'curl',
        '-sS',
        '-o',
        '/dev/null',
        '-w',
        '%{http_code}',
        '--unix-socket',
        sock(),
        'http://apollo/1.0/config/user.foo',
      ]);
      assert.equal(r.out, '403', r.stderr);
    });

    test('a registered namespace maps while registered, and no longer once let go', async () => {
      const { unshare, init } = await foreignNamespace();
      cleanups.push(() => unshare.kill('SIGKILL'));
      const ask = () =>
        run('nsenter', [
          '--target',
          String(init),
          '--pid',
          '--',
          'curl',
          '-sS',
          '-w',
          ' %{http_code}',
          '--unix-socket',
          sock(),
          'http://apollo/1.0/config/user.foo',
        ]);
      assert.match((await ask()).out, / 403$/);
      const reg = await daemon.cli(['register', 'foreign', '--pid', String(init), '-c', 'user.foo=foreign']);
      assert.equal(reg.code, 0, reg.stderr);
      assert.equal((await ask()).out, 'foreign 200');
      const del = await daemon.cli(['delete', 'foreign', '--force']);
      assert.equal(del.code, 0, del.stderr);
      assert.match((await ask()).out, / 403$/);
      // Let go means only that: the foreign container still runs.
      assert.ok(fs.existsSync(`/proc/${init}`));
      unshare.kill('SIGKILL');
    });

    test('a container whose init exits is dropped at once', async () => {
      const { unshare, init } = await foreignNamespace();
      cleanups.push(() => unshare.kill('SIGKILL'));
      assert.equal((await daemon.cli(['register', 'short', '--pid', String(init)])).code, 0);
      process.kill(init, 'SIGKILL');
      await eventually(async () => {
        const list = JSON.parse((await daemon.cli(['list', '--format', 'json'])).out) as { name: string; state: string; pid: number }[];
        const entry = list.find((c) => c.name === 'short');
        return entry?.state === 'Stopped' && entry.pid === 0;
      }, 'the registered container shows Stopped');
    });

    test('register refuses a host pid, a dead pid, and a second name for one namespace', async () => {
      const host = await daemon.cli(['register', 'bad', '--pid', String(process.pid)]);
      assert.equal(host.code, 2);
      assert.match(host.stderr, /^Error: pid \d+ is not the init \(pid 1\) of its own pid namespace\n$/);
      const dead = await daemon.cli(['register', 'bad', '--pid', '999999999']);
      assert.notEqual(dead.code, 0);
      assert.match(dead.stderr, /^Error: .*pid/);
      const list = JSON.parse((await daemon.cli(['list', '--format', 'json'])).out) as { name: string; pid: number }[];
      const alphaPid = list.find((c) => c.name === 'alpha')?.pid;
      const twice = await daemon.cli(['register', 'alias', '--pid', String(alphaPid)]);
      assert.equal(twice.code, 1);
      assert.match(twice.stderr, /already belongs to container alpha/);
      const after = JSON.parse((await daemon.cli(['list', '--format', 'json'])).out) as { name: string }[];
      assert.deepEqual(
        after.map((c) => c.name).filter((n) => n === 'alias' || n === 'bad'),
        [],
      );
    });

    test('a kept-alive connection stays bound to its instance; the off switch acts on it at once', async () => {
      // One connection, three requests; between them the host flips security.devapollo.
      const script = path.join(path.dirname(guestTool()), 'keepalive.cjs');
      fs.writeFileSync(
        script,
        `const http = require('http');
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const lines = require('readline').createInterface({ input: process.stdin });
const ask = () => new Promise((resolve) => {
  const req = http.get({ socketPath: '/dev/apollo/sock', path: '/1.0/config/user.foo', agent }, (res) => {
    let body = '';
    res.on('data', (c) => (body += c));
    res.on('end', () => resolve(res.statusCode + ' ' + (req.reusedSocket ? 'reused' : 'new') + ' ' + body));
  });
});
(async () => {
  for await (const _ of lines) console.log(await ask());
  agent.destroy();
})();
`,
        { mode: 0o644 },
      );
      const child = spawn(process.execPath, [hostCli, '--dir', daemon.dir, 'exec', 'alpha', '--', process.execPath, script], {
        stdio: ['pipe', 'pipe', 'inherit'],
      });
      cleanups.push(() => child.kill('SIGKILL'));
      const answers: string[] = [];
      child.stdout.on('data', (c: Buffer) => answers.push(...c.toString('utf8').trim().split('\n')));
      const askOnce = async (expected: number) => {
        child.stdin.write('\n');
        await eventually(() => answers.length >= expected, `answer ${expected}`);
        return answers[expected - 1];
      };
      assert.equal(await askOnce(1), '200 new alpha');
      assert.equal((await daemon.cli(['config', 'set', 'alpha', 'security.devapollo=false'])).code, 0);
      assert.match((await askOnce(2)) ?? '', /^403 reused /);
      assert.equal((await daemon.cli(['config', 'set', 'alpha', 'security.devapollo=true'])).code, 0);
      assert.equal(await askOnce(3), '200 reused alpha');
      child.stdin.end();
      await new Promise((resolve) => child.once('exit', resolve));
    });
  });
}
