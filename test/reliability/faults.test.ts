// Faults: kill -9 under writes, restarts under guest load, a full disk. Nothing
// acknowledged is lost, no guest ever gets a wrong answer, nothing is corrupted.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { describe } from 'node:test';
import { eventually, guestScript, run, TestDaemon } from '../helpers/daemon.js';
import { curlUnavailable, gatedTest } from '../helpers/env.js';
import { processesWhere } from '../helpers/procs.js';

/** One PATCH on the admin socket; resolves with the status (0 when the daemon is gone). */
function patchConfig(dir: string, name: string, body: Record<string, string>): Promise<number> {
  return new Promise((resolve) => {
    const req = http.request(
      {
        socketPath: path.join(dir, 'unix.socket'),
        method: 'PATCH',
        path: `/1.0/containers/${name}/config`,
        headers: { 'Content-Type': 'application/json' },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', () => resolve(0));
    req.end(JSON.stringify(body));
  });
}

describe('faults', () => {
  const test = gatedTest(curlUnavailable);

  test('kill -9 during a stream of config writes: every acknowledged write is there after restart', async (t) => {
    const daemon = await TestDaemon.start();
    try {
      await daemon.launch('w', {});
      const acknowledged: number[] = [];
      let stop = false;
      // Four writers, each setting its own keys in turn, as fast as the daemon acknowledges.
      const writers = Array.from({ length: 4 }, async (_, w) => {
        for (let i = 0; !stop; i++) {
          const n = w * 1_000_000 + i;
          const status = await patchConfig(daemon.dir, 'w', { [`user.k${n}`]: `v${n}` });
          if (status === 200) acknowledged.push(n);
          else break;
        }
      });
      await eventually(() => acknowledged.length >= 200, '200 writes acknowledged');
      await daemon.signal('SIGKILL');
      stop = true;
      await Promise.all(writers);
      await daemon.spawn();
      const config = JSON.parse((await daemon.cli(['config', 'show', 'w', '--format', 'json'])).out) as Record<string, string>;
      const missing = acknowledged.filter((n) => config[`user.k${n}`] !== `v${n}`);
      t.diagnostic(`${acknowledged.length} writes acknowledged before kill -9; ${missing.length} missing after restart`);
      assert.deepEqual(missing, []);
      // The container itself survived and is served with the same data.
      const first = acknowledged[0] ?? 0;
      assert.equal((await daemon.curl('w', `/1.0/config/user.k${first}`)).out, `v${first}`);
    } finally {
      await daemon.destroy();
    }
  });

  test('restarts under continuous guest load: guests recover through the same socket, no wrong answer', async (t) => {
    const daemon = await TestDaemon.start({ args: ['--rate-limit', '0'] });
    try {
      await daemon.launch('busy', { config: { 'user.foo': 'right' } });
      await daemon.launch('other', { config: { 'user.foo': 'wrong-if-seen-in-busy' } });
      const script = guestScript(
        'load.cjs',
        `const http = require('http');
let ok = 0, wrong = 0, failed = 0, running = true;
process.on('SIGTERM', () => (running = false));
const ask = () => new Promise((resolve) => {
  const req = http.get({ socketPath: '/dev/apollo/sock', path: '/1.0/config/user.foo', agent: false }, (res) => {
    let body = '';
    res.on('data', (c) => (body += c));
    res.on('end', () => {
      if (res.statusCode === 200 && body === 'right') ok++;
      else if (res.statusCode === 200) wrong++;
      else failed++;
      resolve();
    });
  });
  req.on('error', () => { failed++; setTimeout(resolve, 10); });
});
(async () => {
  while (running) await ask();
  console.log(JSON.stringify({ ok, wrong, failed }));
})();
`,
      );
      const load = spawn(
        process.execPath,
        [(await import('../helpers/daemon.js')).hostCli, '--dir', daemon.dir, 'exec', 'busy', '--', process.execPath, script],
        {
          stdio: ['ignore', 'pipe', 'inherit'],
        },
      );
      let out = '';
      load.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
      const done = new Promise((resolve) => load.once('close', resolve));
      // The daemon may go only once exec has looked the container up and the load runs inside.
      await eventually(() => processesWhere((args) => args[0] === process.execPath && args[1] === script).length > 0, 'the load runs');
      await new Promise((resolve) => setTimeout(resolve, 300));
      for (let round = 0; round < 3; round++) {
        await daemon.signal(round === 1 ? 'SIGKILL' : 'SIGTERM');
        await new Promise((resolve) => setTimeout(resolve, 200));
        await daemon.spawn();
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
      load.kill('SIGTERM');
      await done;
      const { ok, wrong, failed } = JSON.parse(out) as { ok: number; wrong: number; failed: number };
      t.diagnostic(`3 restarts under load: ${ok} right answers, ${failed} refused or failed while down, ${wrong} wrong`);
      assert.equal(wrong, 0);
      assert.ok(ok > 0);
      // Served again, through the socket that was never remounted.
      assert.equal((await daemon.curl('busy', '/1.0/config/user.foo')).out, 'right');
    } finally {
      await daemon.destroy();
    }
  });

  test('a full disk: writes fail with a clear error, nothing is corrupted, writes work again after', async (t) => {
    if (spawnSync('mount', ['--version']).status !== 0) {
      t.skip('needs mount(8)');
      return;
    }
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'devapollo-full-'));
    assert.equal(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=4m,mode=0700', 'tmpfs', root]).status, 0);
    let daemon: TestDaemon | undefined;
    try {
      daemon = await TestDaemon.start({ dir: path.join(root, 'apollo') });
      await daemon.launch('disk', { config: { 'user.foo': 'before' } });
      const stateFile = path.join(daemon.dir, 'containers/disk.json');
      const before = fs.readFileSync(stateFile);
      // Fill the file system to the last block.
      const filler = path.join(root, 'filler');
      spawnSync('dd', ['if=/dev/zero', `of=${filler}`, 'bs=64k'], { stdio: 'ignore' });
      const r = await daemon.cli(['config', 'set', 'disk', `user.foo=${'x'.repeat(100_000)}`]);
      t.diagnostic(`config set on a full disk: exit ${r.code}, ${r.stderr.trim()}`);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /^Error: cannot save .*disk\.json: no space left on the device; nothing was changed\n$/);
      assert.deepEqual(fs.readFileSync(stateFile), before);
      assert.equal((await daemon.curl('disk', '/1.0/config/user.foo')).out, 'before');
      assert.deepEqual(fs.readdirSync(path.join(daemon.dir, 'containers')), ['disk.json']);
      fs.rmSync(filler);
      assert.equal((await daemon.cli(['config', 'set', 'disk', 'user.foo=after'])).code, 0);
      await daemon.signal('SIGTERM');
      await daemon.spawn();
      assert.equal((await daemon.curl('disk', '/1.0/config/user.foo')).out, 'after');
    } finally {
      if (daemon !== undefined) {
        for (const pid of daemon.runningInits()) process.kill(pid, 'SIGKILL');
        await daemon.signal('SIGKILL');
      }
      spawnSync('umount', ['-l', root]);
      fs.rmSync(root, { recursive: true, force: true });
    }
  });

  test('a corrupt state file: the daemon refuses to start and names it (see lifecycle.test.ts)', async () => {
    const daemon = await TestDaemon.start();
    try {
      await daemon.launch('c', {});
      await daemon.signal('SIGTERM');
      const file = path.join(daemon.dir, 'containers/c.json');
      fs.writeFileSync(file, Buffer.from([0x7b, 0x00, 0xff]));
      const r = await run(process.execPath, [(await import('../helpers/daemon.js')).hostCli, 'serve', '--dir', daemon.dir], {
        timeoutMs: 20_000,
      });
      assert.equal(r.code, 1);
      assert.ok(r.stderr.includes(file));
      assert.deepEqual(fs.readFileSync(file), Buffer.from([0x7b, 0x00, 0xff]));
    } finally {
      await daemon.destroy();
    }
  });
});
