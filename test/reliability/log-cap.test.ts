// A container's output goes to DIR/logs/NAME.log. Unbounded, one container filled DIR
// with it, and every other container's config writes failed (no space left). Each log
// is now capped (`serve --max-log-size`, default 10 MiB) and rotated once to
// NAME.log.1, by a monitor process per container that runs on the host side, outside
// the container's namespaces, and outlives daemon restarts.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe } from 'node:test';
import { eventually, run, TestDaemon } from '../helpers/daemon.js';
import { containersUnavailable, gatedTest } from '../helpers/env.js';

const MiB = 1024 * 1024;

/** A tmpfs of `size` for a daemon's DIR, unmounted (lazily, should a monitor still hold a file) at the end. */
async function smallDisk(size: string): Promise<{ dir: string; remove: () => Promise<void> }> {
  const mountPoint = fs.mkdtempSync(path.join(os.tmpdir(), 'devapollo-logdisk-'));
  const mounted = await run('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', mountPoint]);
  assert.equal(mounted.code, 0, mounted.stderr);
  return {
    dir: path.join(mountPoint, 'apollo'),
    remove: async () => {
      if ((await run('umount', [mountPoint])).code !== 0) await run('umount', ['-l', mountPoint]);
      fs.rmSync(mountPoint, { recursive: true, force: true });
    },
  };
}

function size(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return -1;
  }
}

/** Whether the file's last bytes are `tail`. */
function endsWith(file: string, tail: string): boolean {
  try {
    const fd = fs.openSync(file, 'r');
    try {
      const length = fs.fstatSync(fd).size;
      const buffer = Buffer.alloc(Math.min(length, tail.length));
      fs.readSync(fd, buffer, 0, buffer.length, length - buffer.length);
      return buffer.toString('utf8') === tail;
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return false;
  }
}

/** The init's parent on the host (field 4 of /proc/PID/stat): its monitor. */
function parentOf(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
}

describe('the output log cap', () => {
  const test = gatedTest(containersUnavailable);
  let disk: { dir: string; remove: () => Promise<void> } | undefined;
  let daemon: TestDaemon;

  before(async () => {
    if (containersUnavailable) return;
    disk = await smallDisk('64m');
    daemon = await TestDaemon.start({ dir: disk.dir });
    await daemon.launch('quiet', { config: { 'user.a': '1' } });
  });

  after(async () => {
    await daemon?.destroy();
    await disk?.remove();
  });

  test('200 MiB of output into a 64 MiB DIR: the log and .log.1 stay within 10 MiB each, and the daemon keeps its state writable', async (t) => {
    const log = path.join(daemon.dir, 'logs/loud.log');
    const started = Date.now();
    // 64-byte lines, 200 MiB of them, then a marker; the container then idles.
    await daemon.launch('loud', {
      command: ['sh', '-c', `yes "$(printf '%063d' 0)" | head -c ${200 * MiB}; echo LOUD-DONE; exec sleep 600`],
    });
    // Done, or (without a cap) DIR is full and the end never comes.
    const full = () => fs.statfsSync(daemon.dir).bavail === 0;
    await eventually(() => endsWith(log, 'LOUD-DONE\n') || full(), 'all 200 MiB went through the monitor', 240_000);
    const seconds = (Date.now() - started) / 1000;
    const [current, rotated] = [size(log), size(`${log}.1`)];
    const free = fs.statfsSync(daemon.dir);
    t.diagnostic(
      `200 MiB of output in ${seconds.toFixed(1)} s: loud.log ${current} bytes, loud.log.1 ${rotated} bytes (cap ${10 * MiB}); ` +
        `the 64 MiB DIR has ${((free.bavail * free.bsize) / MiB).toFixed(1)} MiB free`,
    );
    assert.ok(current > 0 && current <= 10 * MiB, `loud.log is ${current} bytes`);
    assert.ok(rotated > 0 && rotated <= 10 * MiB, `loud.log.1 is ${rotated} bytes`);
    assert.deepEqual(fs.readdirSync(path.join(daemon.dir, 'logs')).sort(), ['loud.log', 'loud.log.1', 'quiet.log']);
    // Another container's config writes still work, a large one included.
    const set = await daemon.cli(['config', 'set', 'quiet', 'user.b', '-'], { input: 'x'.repeat(512 * 1024) });
    assert.equal(set.code, 0, set.stderr);
    assert.equal((await daemon.cli(['config', 'get', 'quiet', 'user.a'])).out, '1');
    assert.equal((await daemon.cli(['status'])).code, 0);
    assert.equal((await daemon.curl('quiet', '/1.0/config/user.a')).out, '1');
    // delete takes both files with it.
    assert.equal((await daemon.cli(['delete', '--force', 'loud'])).code, 0);
    assert.deepEqual(fs.readdirSync(path.join(daemon.dir, 'logs')), ['quiet.log']);
  });

  test('the monitor is on the host side, the init its child, and both outlive a daemon restart', async () => {
    await daemon.launch('chatty', { command: ['sh', '-c', 'while :; do echo tick; sleep 0.05; done'] });
    const [info] = JSON.parse((await daemon.cli(['list', '--format', 'json'])).out).filter(
      (c: { name: string }) => c.name === 'chatty',
    ) as {
      pid: number;
    }[];
    const init = info?.pid ?? 0;
    const monitor = parentOf(init);
    assert.match(fs.readFileSync(`/proc/${monitor}/cmdline`, 'utf8'), /^devapollo-monitor chatty\0/);
    // In the host's pid and user namespaces, as host root: nothing in the container names it.
    assert.equal(fs.readlinkSync(`/proc/${monitor}/ns/pid`), fs.readlinkSync('/proc/self/ns/pid'));
    assert.equal(fs.readlinkSync(`/proc/${monitor}/ns/user`), fs.readlinkSync('/proc/self/ns/user'));
    assert.match(fs.readFileSync(`/proc/${monitor}/status`, 'utf8'), /^Uid:\s+0\s/m);
    assert.notEqual(fs.readlinkSync(`/proc/${init}/ns/pid`), fs.readlinkSync('/proc/self/ns/pid'));
    const log = path.join(daemon.dir, 'logs/chatty.log');
    await daemon.signal('SIGKILL');
    const during = size(log);
    await eventually(() => size(log) > during, 'the log grows while no daemon runs');
    await daemon.spawn();
    assert.equal(parentOf(init), monitor, "the same monitor, still the init's parent");
    const restarted = size(log);
    await eventually(() => size(log) > restarted, 'the log grows after the restart');
    assert.equal((await daemon.cli(['stop', '--force', 'chatty'])).code, 0);
    await eventually(() => !fs.existsSync(`/proc/${monitor}`), 'the monitor exits with its container (having reaped the init)');
  });
});

describe('the log cap, small', () => {
  const test = gatedTest(containersUnavailable);
  let daemon: TestDaemon;

  before(async () => {
    if (containersUnavailable) return;
    daemon = await TestDaemon.start({ args: ['--max-log-size', '65536'] });
  });

  after(async () => {
    await daemon?.destroy();
  });

  test('the newest output is kept, in order: .log.1 then .log hold the last lines, each at most the cap', async () => {
    await daemon.launch('counter', {
      command: ['sh', '-c', 'i=0; while [ $i -lt 20000 ]; do echo "line $i"; i=$((i+1)); done; echo END; exec sleep 600'],
    });
    const log = path.join(daemon.dir, 'logs/counter.log');
    await eventually(() => endsWith(log, 'END\n'), 'the output is written');
    assert.ok(size(log) <= 65536 && size(`${log}.1`) <= 65536, `${size(log)} and ${size(`${log}.1`)} bytes`);
    const text = fs.readFileSync(`${log}.1`, 'utf8') + fs.readFileSync(log, 'utf8');
    // The oldest kept line may be cut at the front; every one after it follows the one before.
    const lines = text
      .slice(text.indexOf('\n') + 1)
      .trimEnd()
      .split('\n');
    assert.equal(lines.pop(), 'END');
    assert.equal(lines[lines.length - 1], 'line 19999');
    const first = Number(lines[0]?.slice(5));
    assert.ok(first > 10000, `the oldest lines are gone (from line ${first} on)`);
    for (const [i, line] of lines.entries()) assert.equal(line, `line ${first + i}`);
  });

  test('--max-log-size must be a whole number of at least 4096', async () => {
    for (const bad of ['0', '100', '1.5', 'lots']) {
      const r = await run(process.execPath, [
        (await import('../helpers/daemon.js')).hostCli,
        'serve',
        '--dir',
        daemon.dir,
        '--max-log-size',
        bad,
      ]);
      assert.equal(r.code, 2, `${bad}: ${r.stderr}`);
      assert.match(r.stderr, /^Error: --max-log-size must be a number \(whole\) of at least 4096\n/);
    }
  });
});
