// A hook's Error: and Warning: lines also go to syslog, where a user looks when a runtime
// says only "exit 69": to the real /dev/log (in a private mount namespace whose /dev/log is
// a real busybox syslogd's socket), as logger writes them; and a host without /dev/log
// changes nothing about what a hook does.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { syslogDatagram } from '../../dist/server/kernel/syslog.js';
import { hostCli, type RunOptions, run } from '../helpers/daemon.js';
import { gatedTest } from '../helpers/env.js';
import { BusyboxSyslog, sharedTempDir, syslogUnavailable } from '../helpers/runtimes.js';

/**
 * Runs a command in a private mount namespace whose /dev is a new tmpfs with the host's
 * null, zero, full, random and urandom, and, when `socket` is given, /dev/log bound to it.
 */
const privateDev = `set -e
stash=$1; socket=$2; shift 2
mount --bind /dev "$stash"
mount -t tmpfs -o mode=0755 tmpfs /dev
for d in null zero full random urandom; do touch /dev/$d; mount --bind "$stash/$d" /dev/$d; done
if [ -n "$socket" ]; then touch /dev/log; mount --bind "$socket" /dev/log; fi
exec "$@"`;

describe('hook lines in syslog', () => {
  const gated = gatedTest(syslogUnavailable);
  let syslog: BusyboxSyslog;
  let noDaemon: string;
  let stash: string;

  before(async () => {
    if (syslogUnavailable) return;
    syslog = await new BusyboxSyslog().start();
    // A daemon directory nobody serves: what hooks meet when the daemon is down.
    noDaemon = sharedTempDir('devapollo-down-');
    stash = fs.mkdtempSync(path.join(os.tmpdir(), 'devapollo-stash-'));
  });

  after(async () => {
    await syslog?.stop();
    for (const dir of [noDaemon, stash]) if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  /** `devapollo --dir NODAEMON ARGS`, with /dev/log the test syslogd's (or absent). */
  const hook = (args: readonly string[], options: RunOptions & { devLog: boolean }) =>
    run(
      'unshare',
      [
        '-m',
        '--propagation',
        'private',
        'sh',
        '-c',
        privateDev,
        'sh',
        stash,
        options.devLog ? syslog.socket : '',
        process.execPath,
        hostCli,
        '--dir',
        noDaemon,
        ...args,
      ],
      options,
    );
  const lxcEnv = (type: string) => ({ ...process.env, LXC_NAME: 'web', LXC_HOOK_TYPE: type, LXC_PID: String(process.pid) });

  gated('a refused start: the Error line reaches /dev/log with runtime, stage and container, facility daemon', async () => {
    const r = await hook(['hook', 'lxc'], { env: lxcEnv('start-host'), devLog: true });
    assert.equal(r.code, 69, r.stderr);
    assert.match(r.stderr, /^Error: cannot register LXC container web: no devapollo daemon answers on .*; refusing to start the container/);
    const [line, ...more] = syslog.lines('start-host hook for container "web"');
    assert.equal(more.length, 0);
    assert.match(
      line ?? '',
      /^\w{3} [ \d]\d \d\d:\d\d:\d\d \S+ daemon\.err devapollo\[\d+\]: LXC start-host hook for container "web": Error: cannot register LXC container web: no devapollo daemon answers on .*unix\.socket.*; refusing to start the container/,
    );
  });

  gated('a stop hook that only warns: the Warning line, at warning level', async () => {
    const r = await hook(['hook', 'lxc'], { env: lxcEnv('post-stop'), devLog: true });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /^Warning: no daemon to tell that LXC container web stopped/);
    assert.match(
      syslog.lines('post-stop hook')[0] ?? '',
      /daemon\.warn devapollo\[\d+\]: LXC post-stop hook for container "web": Warning: no daemon to tell that LXC container web stopped/,
    );
  });

  gated('an OCI state whose id is no devapollo name: the Error names the id it was given', async () => {
    const input = JSON.stringify({ ociVersion: '1.0.2', id: '9f'.repeat(32), pid: 1, status: 'created', bundle: '/b' });
    const r = await hook(['hook', 'oci', 'createRuntime'], { input, devLog: true });
    assert.equal(r.code, 2);
    assert.match(
      syslog.lines('OCI createRuntime hook')[0] ?? '',
      new RegExp(
        `daemon\\.err devapollo\\[\\d+\\]: OCI createRuntime hook for container "${'9f'.repeat(32)}": Error: the OCI container id`,
      ),
    );
  });

  gated('without /dev/log, or with a test socket that is no socket, hooks fail and warn exactly as before', async () => {
    const start = await hook(['hook', 'lxc'], { env: lxcEnv('start-host'), devLog: false });
    assert.equal(start.code, 69);
    assert.match(start.stderr, /^Error: cannot register LXC container web: no devapollo daemon answers on [^\n]*\n$/);
    const stop = await hook(['hook', 'lxc'], {
      env: { ...lxcEnv('post-stop'), APOLLO_SYSLOG_SOCKET: path.join(noDaemon, 'not-a-socket') },
      devLog: false,
    });
    assert.equal(stop.code, 0);
    assert.match(stop.stderr, /^Warning: no daemon to tell that LXC container web stopped[^\n]*\n$/);
  });
});

test('the datagram is what logger writes to a local socket: <PRI>timestamp TAG[PID]: one line', () => {
  const at = new Date(2026, 11, 2, 9, 5, 7);
  assert.equal(
    syslogDatagram('err', 'devapollo', 'LXC start-host hook: Error: x', at, 42).toString(),
    '<27>Dec  2 09:05:07 devapollo[42]: LXC start-host hook: Error: x',
  );
  assert.equal(
    syslogDatagram('warning', 'devapollo', 'a\nb\u0000c\u001b[1m', at, 42).toString(),
    '<28>Dec  2 09:05:07 devapollo[42]: a\\x0ab\\x00c\\x1b[1m',
  );
  const long = syslogDatagram('err', 'devapollo', 'é'.repeat(5000), at, 42);
  assert.ok(long.length <= 2048 && long.length >= 2047, String(long.length));
  assert.match(new TextDecoder('utf-8', { fatal: true }).decode(long), /é$/, 'cut between characters');
});
