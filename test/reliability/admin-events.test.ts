// The admin socket's event stream (`devapollo monitor`) under the hub's limits: a reader
// that never reads while large values are set is dropped, the daemon's memory stays
// bounded, and a reader that reads gets every event. Figures go to the test log.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { describe } from 'node:test';
import { eventually, hostCli, rssOf, TestDaemon } from '../helpers/daemon.js';
import { curlUnavailable, gatedTest } from '../helpers/env.js';
import { metricsOf } from '../helpers/guest-load.js';

describe('admin event streams', () => {
  const test = gatedTest(curlUnavailable);

  test('a monitor that never reads, while 1 MiB values are set, is dropped; memory stays bounded; a reading monitor gets everything', async (t) => {
    const daemon = await TestDaemon.start();
    await daemon.launch('big', {});
    const pid = daemon.pid ?? 0;
    /** 40 events of about 2 MiB each (old and new value); the daemon's highest RSS meanwhile. */
    const setLargeValues = async (): Promise<number> => {
      let peak = rssOf(pid);
      for (let i = 0; i < 40; i++) {
        const r = await daemon.cli(['config', 'set', 'big', 'user.big', '-'], { input: String(i % 10).repeat(1024 * 1024) });
        assert.equal(r.code, 0, r.stderr);
        peak = Math.max(peak, rssOf(pid));
      }
      return peak;
    };
    // Setting 1 MiB values costs memory by itself (bodies, records, state files): measured
    // first without any reader, so that what follows is the stalled reader's share alone.
    const rssBefore = rssOf(pid);
    const rssWithout = await setLargeValues();
    const stalled = net.connect(path.join(daemon.dir, 'unix.socket'));
    const monitor = spawn(process.execPath, [hostCli, '--dir', daemon.dir, 'monitor', 'big', '--format', 'json'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      // A reader that asks and then never reads a byte.
      stalled.on('error', () => undefined);
      stalled.write('GET /1.0/events HTTP/1.1\r\nHost: x\r\n\r\n');
      stalled.pause();
      let monitored = '';
      monitor.stdout.on('data', (c: Buffer) => (monitored += c.toString('utf8')));
      await eventually(async () => (await metricsOf(daemon)).get('devapollo_admin_event_listeners') === 2, 'both admin streams open');
      // 80 MiB of events for a reader that never reads.
      const rssPeak = await setLargeValues();
      assert.equal((await daemon.cli(['config', 'set', 'big', 'user.last=1'])).code, 0);
      await eventually(() => monitored.includes('"key":"user.last"'), 'the reading monitor sees the last change');
      const metrics = await metricsOf(daemon);
      const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
      t.diagnostic(
        `daemon RSS ${mib(rssBefore)} MiB at first; at most ${mib(rssWithout)} MiB while 40 values of 1 MiB were set with no reader; at most ${mib(rssPeak)} MiB while 40 more were set with a reader that never reads (+${mib(rssPeak - rssWithout)} MiB)`,
      );
      t.diagnostic(
        `admin streams dropped: ${metrics.get('devapollo_admin_events_dropped_total')}; events delivered to admin streams: ${metrics.get('devapollo_admin_events_delivered_total')}`,
      );
      assert.equal(metrics.get('devapollo_admin_events_dropped_total'), 1);
      assert.equal(metrics.get('devapollo_admin_event_listeners'), 1);
      // Every change reached the monitor that reads, in order.
      const keys = monitored
        .trim()
        .split('\n')
        .map((line) => (JSON.parse(line) as { metadata: { key?: string } }).metadata.key)
        .filter((key) => key !== undefined);
      assert.deepEqual(keys, [...Array.from({ length: 40 }, () => 'user.big'), 'user.last']);
      assert.ok(rssPeak - rssWithout < 32 * 2 ** 20, `RSS grew by ${rssPeak - rssWithout} bytes`);
    } finally {
      stalled.destroy();
      monitor.kill('SIGKILL');
      await daemon.destroy();
    }
  });
});
