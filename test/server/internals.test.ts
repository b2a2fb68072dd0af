// Nothing the daemon keeps grows with its history (issue 18): after containers are
// launched, used from inside (requests, a change-wait, an event stream, each from a new
// process), stopped and deleted, every map and cache keyed by container, namespace,
// process or connection is back to its size before. The sizes come from `status --format
// json` under `internals`, which only a daemon run with DEVAPOLLO_DEBUG_INTERNALS=1 shows.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe } from 'node:test';
import { eventually, run, TestDaemon } from '../helpers/daemon.js';
import { curlUnavailable, gatedTest } from '../helpers/env.js';

type Internals = Record<string, number>;

/** The request counters' label sets, from GET /metrics: what tells two runs apart when their number differs. */
async function requestLabels(daemon: TestDaemon): Promise<string[]> {
  const result = await run('curl', ['-sS', '--unix-socket', path.join(daemon.dir, 'unix.socket'), 'http://apollo/metrics']);
  return result.out
    .split('\n')
    .filter((line) => line.startsWith('devapollo_requests_total{'))
    .map((line) => line.replace(/ \d+$/, ''));
}

async function internalsOf(daemon: TestDaemon): Promise<Internals | undefined> {
  const status = await daemon.cli(['status', '--format', 'json']);
  assert.equal(status.code, 0, status.stderr);
  return (JSON.parse(status.out) as { internals?: Internals }).internals;
}

/** One container's life: launched, asked from inside in every way a guest asks, then gone. */
async function live(daemon: TestDaemon, name: string, end: 'delete' | 'stop, then delete'): Promise<void> {
  await daemon.launch(name, { config: { 'user.foo': name } });
  const got = await daemon.curl(name, '/1.0/config/user.foo');
  assert.equal(got.out, name, got.stderr);
  // A change-wait and an event stream, each ended by curl's own timeout.
  await daemon.curl(name, '/1.0/config/user.foo?wait=true&timeout=30', ['--max-time', '1']);
  await daemon.curl(name, '/1.0/events?type=config', ['--max-time', '1']);
  await daemon.curl(name, '/1.0/meta-data');
  if (end === 'stop, then delete') assert.equal((await daemon.cli(['stop', name, '--force'])).code, 0);
  const deleted = await daemon.cli(['delete', name, '--force']);
  assert.equal(deleted.code, 0, deleted.stderr);
}

describe('the daemon after its history', () => {
  let daemon: TestDaemon;
  before(async () => {
    if (curlUnavailable) return;
    daemon = await TestDaemon.start({ env: { ...process.env, DEVAPOLLO_DEBUG_INTERNALS: '1' } });
  });
  after(async () => {
    await daemon?.destroy();
  });

  gatedTest(curlUnavailable)('keeps nothing of launched and deleted containers', async () => {
    await daemon.launch('stays', { config: { 'user.foo': 'here' } });
    // A life of each kind first: counters of routes and statuses are made once, on first
    // use; what is measured is what each further life leaves behind.
    await live(daemon, 'first', 'delete');
    await live(daemon, 'second', 'stop, then delete');
    await requestLabels(daemon); // its own counter, too
    const before = await internalsOf(daemon);
    const labelsBefore = await requestLabels(daemon);
    assert.ok(before !== undefined, 'status shows internals under DEVAPOLLO_DEBUG_INTERNALS=1');
    assert.equal(before['containers'], 1);
    assert.equal(before['instances_by_namespace'], 1);
    for (let i = 0; i < 4; i++) await live(daemon, `gone${i}`, i % 2 === 0 ? 'delete' : 'stop, then delete');
    // Releases and the known-process pruning run asynchronously, right after the answer.
    // The metrics' label sets are compared as the labels themselves, below: by API, route
    // and status, never by container. (Refusal reasons, a fixed list, may be met for the
    // first time by a connection a delete cut short.)
    const keyed = (sizes: Internals | undefined) => ({ ...sizes, metric_label_sets: undefined });
    let now: Internals | undefined;
    await eventually(async () => {
      now = await internalsOf(daemon);
      return JSON.stringify(keyed(now)) === JSON.stringify(keyed(before));
    }, 'the internals to return to their sizes before').catch(() => undefined);
    assert.deepEqual(await requestLabels(daemon), labelsBefore, 'request counters by API, route and status');
    assert.deepEqual(keyed(now), keyed(before));
  });

  gatedTest(curlUnavailable)('shows no internals without the switch', async () => {
    const plain = await TestDaemon.start();
    try {
      assert.equal(await internalsOf(plain), undefined);
    } finally {
      await plain.destroy();
    }
  });
});
