// Live config with real containers: event streams, change-waiting, the ready state and
// the off switch. Delivery is asserted with a generous hang guard, never a deadline.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe } from 'node:test';
import { eventually, guestTool, hostCli, repoRoot, run, TestDaemon } from '../../helpers/daemon.js';
import { curlUnavailable, gatedTest } from '../../helpers/env.js';
import { processesWhere } from '../../helpers/procs.js';

interface Streamed {
  readonly child: ChildProcess;
  readonly lines: () => string[];
  readonly events: () => Record<string, unknown>[];
}

describe('live config', () => {
  let daemon: TestDaemon;
  const test = gatedTest(curlUnavailable);
  const children: ChildProcess[] = [];

  /** A long-running command inside a container whose stdout lines the test reads. */
  const streamIn = (name: string, command: string[]): Streamed => {
    const child = spawn(process.execPath, [hostCli, '--dir', daemon.dir, 'exec', name, '--', ...command], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let out = '';
    child.stdout?.on('data', (c: Buffer) => (out += c.toString('utf8')));
    const lines = () => out.split('\n').filter((l) => l.trim() !== '');
    return { child, lines, events: () => lines().map((l) => JSON.parse(l) as Record<string, unknown>) };
  };
  const watch = (name: string, type = 'config,lifecycle') =>
    streamIn(name, [process.execPath, guestTool(), 'watch', '--type', type, '--format', 'json']);
  const configEvents = (s: Streamed) =>
    s
      .events()
      .filter((e) => e['type'] === 'config')
      .map((e) => e['metadata'] as Record<string, string>);

  before(async () => {
    if (curlUnavailable) return;
    daemon = await TestDaemon.start();
    await daemon.launch('a', { config: { 'user.foo': 'a0' } });
    await daemon.launch('b', { config: { 'user.foo': 'b0' } });
  });

  after(async () => {
    for (const child of children) child.kill('SIGKILL');
    await daemon?.destroy();
  });

  const set = async (name: string, ...assignments: string[]) => {
    const r = await daemon.cli(['config', 'set', name, ...assignments]);
    assert.equal(r.code, 0, r.stderr);
  };

  /** Sets a marker key and waits until the watcher reports it: everything before it has arrived. */
  const settle = async (name: string, s: Streamed, marker: string) => {
    await set(name, `user.marker=${marker}`);
    await eventually(
      () => configEvents(s).some((m) => m['key'] === 'user.marker' && m['value'] === marker),
      `${name} sees marker ${marker}`,
    );
  };

  test("a watcher sees its container's change; another container's watcher sees nothing of it; security.* is silent", async () => {
    const wa = watch('a');
    const wb = watch('b');
    // A watcher is ready once a first marker reaches it.
    await eventually(async () => {
      await set('a', `user.ping=${Date.now()}`);
      return configEvents(wa).length > 0;
    }, 'watcher a connected');
    await eventually(async () => {
      await set('b', `user.ping=${Date.now()}`);
      return configEvents(wb).length > 0;
    }, 'watcher b connected');
    const before = configEvents(wb).length;
    await set('a', 'user.foo=a1', 'security.devapollo.users=true', 'volatile.cloud-init.instance-id=x1');
    await eventually(() => configEvents(wa).some((m) => m['key'] === 'user.foo' && m['value'] === 'a1'), 'a sees user.foo');
    const change = configEvents(wa).find((m) => m['key'] === 'user.foo' && m['value'] === 'a1');
    assert.equal(change?.['old_value'], 'a0');
    await settle('a', wa, 'm1');
    await settle('b', wb, 'm1');
    assert.deepEqual(
      configEvents(wb)
        .slice(before)
        .map((m) => m['key']),
      ['user.marker'],
    );
    assert.ok(configEvents(wa).every((m) => !String(m['key']).startsWith('security.') && !String(m['key']).startsWith('volatile.')));
    for (const event of wa.events()) {
      assert.match(String(event['timestamp']), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
      assert.deepEqual(Object.keys(event).sort(), ['metadata', 'timestamp', 'type']);
    }
    assert.equal((await daemon.cli(['config', 'set', 'a', 'security.devapollo.users=false'])).code, 0);
  });

  test('curl gets one JSON object per line from /1.0/events, filtered by ?type=', async () => {
    const s = streamIn('b', ['curl', '-sN', '--unix-socket', '/dev/apollo/sock', 'http://apollo/1.0/events?type=config']);
    await eventually(async () => {
      await set('b', `user.ping=${Date.now()}`);
      return configEvents(s).length > 0;
    }, 'curl stream connected');
    await daemon.exec('b', [
      'curl',
      '-sS',
      '-X',
      'PATCH',
      '-d',
      '{"state":"Ready"}',
      '--unix-socket',
      '/dev/apollo/sock',
      'http://apollo/1.0',
    ]);
    await set('b', 'user.after=1');
    await eventually(() => configEvents(s).some((m) => m['key'] === 'user.after'), 'event after PATCH');
    assert.ok(
      s.events().every((e) => e['type'] === 'config'),
      'no lifecycle event with ?type=config',
    );
  });

  test('?type=device is accepted and selects nothing yet; config,device works (LXD clients ask for it), on both APIs', async () => {
    const devicesOnly = streamIn('b', ['curl', '-sN', '--unix-socket', '/dev/apollo/sock', 'http://apollo/1.0/events?type=device']);
    const lxdDefault = streamIn('b', ['curl', '-sN', '--unix-socket', '/dev/apollo/sock', 'http://apollo/1.0/events?type=config,device']);
    const admin = spawn(
      'curl',
      ['-sN', '--unix-socket', `${daemon.dir}/unix.socket`, 'http://d/1.0/events?type=config,device&container=b'],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    children.push(admin);
    let adminOut = '';
    admin.stdout.on('data', (c: Buffer) => (adminOut += c.toString('utf8')));
    await eventually(async () => {
      await set('b', `user.ping=${Date.now()}`);
      return configEvents(lxdDefault).length > 0 && adminOut.includes('"key":"user.ping"');
    }, 'config,device streams see config events');
    await settle('b', lxdDefault, 'device');
    assert.deepEqual(devicesOnly.events(), [], 'no events for ?type=device');
    const adminDevices = await run('curl', [
      '-sS',
      '--max-time',
      '1',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code}',
      '--unix-socket',
      `${daemon.dir}/unix.socket`,
      'http://d/1.0/events?type=device',
    ]);
    assert.equal(adminDevices.out, '200');
    const bad = await daemon.curl('b', '/1.0/events?type=config,nope', ['-w', ' %{http_code}']);
    assert.equal(bad.out, '{"type":"error","error":"unknown event type \\"nope\\": use config, lifecycle, device","error_code":400} 400');
  });

  test('a websocket client gets the same events, filtered by ?type= too', async () => {
    // Runs in a privileged container: its root is host root and can load ws from the checkout.
    await daemon.launch('wsc', { privileged: true, config: { 'user.foo': 'w0' } });
    const script = path.join(path.dirname(guestTool()), 'ws-client.cjs');
    fs.writeFileSync(
      script,
      `const WebSocket = require(${JSON.stringify(path.join(repoRoot, 'node_modules/ws'))});
const ws = new WebSocket('ws+unix:///dev/apollo/sock:' + process.argv[2]);
ws.on('open', () => console.log(JSON.stringify({ type: 'open' })));
ws.on('message', (data) => console.log(String(data)));
ws.on('error', (e) => { console.error(e.message); process.exit(1); });
`,
    );
    const s = streamIn('wsc', [process.execPath, script, '/1.0/events']);
    const lifecycleOnly = streamIn('wsc', [process.execPath, script, '/1.0/events?type=lifecycle']);
    await eventually(() => s.lines().length > 0 && lifecycleOnly.lines().length > 0, 'websockets open');
    await set('wsc', 'user.foo=w1');
    await eventually(() => configEvents(s).some((m) => m['value'] === 'w1'), 'websocket event');
    assert.equal(configEvents(s).find((m) => m['value'] === 'w1')?.['old_value'], 'w0');
    await set('wsc', 'user.foo=w2');
    await eventually(() => configEvents(s).some((m) => m['value'] === 'w2'), 'second websocket event');
    assert.deepEqual(configEvents(lifecycleOnly), [], 'no config event with ?type=lifecycle');
  });

  test('change-waiting: at once when the ETag differs, on change, or at the timeout unchanged', async () => {
    const etagOf = async () => {
      const r = await daemon.curl('a', '/1.0/config/user.foo', ['-i']);
      return /\r\nETag: ("[^"]+")\r\n/i.exec(r.out)?.[1] ?? '';
    };
    const e1 = await etagOf();
    // Timeout, nothing changed: the unchanged answer with the same ETag.
    const timedOut = await daemon.curl('a', `/1.0/config/user.foo?wait=true&etag=${encodeURIComponent(e1)}&timeout=1`, ['-i']);
    assert.match(timedOut.out, /^HTTP\/1\.1 200 /);
    assert.ok(timedOut.out.includes(`ETag: ${e1}`));
    // A wait started before a change returns with the new value, whenever the change lands.
    const waiting = daemon.curl('a', `/1.0/config/user.foo?wait=true&etag=${encodeURIComponent(e1)}&timeout=120`);
    await set('a', 'user.foo=a2');
    assert.equal((await waiting).out, 'a2');
    // A stale ETag answers at once: a change between two waits is never missed.
    const stale = await daemon.curl('a', `/1.0/config/user.foo?wait=true&etag=${encodeURIComponent(e1)}&timeout=120`);
    assert.equal(stale.out, 'a2');
    // A->B->A still changes the ETag.
    const e2 = await etagOf();
    await set('a', 'user.foo=zz');
    await set('a', 'user.foo=a2');
    assert.notEqual(await etagOf(), e2);
    // Another key's change leaves this key's ETag alone.
    const e3 = await etagOf();
    await set('a', 'user.other=1');
    assert.equal(await etagOf(), e3);
    const bad = await daemon.curl('a', '/1.0/config/user.foo?wait=true&timeout=soon', ['-o', '/dev/null', '-w', '%{http_code}']);
    assert.equal(bad.out, '400');
  });

  test('devapollo-guest wait: returns on a change, on --value, exits 75 at --timeout', async () => {
    const waitChange = daemon.guest('a', ['wait', 'user.w']);
    const waitValue = daemon.guest('a', ['wait', 'user.w', '--value', 'second']);
    await eventually(() => guestProcesses(['wait', 'user.w']) >= 2, 'both waits run');
    await new Promise((resolve) => setTimeout(resolve, 500));
    await set('a', 'user.w=first');
    const changed = await waitChange;
    assert.equal(changed.code, 0, changed.stderr);
    assert.ok(changed.out === 'first' || changed.out === 'second', changed.out);
    await set('a', 'user.w=second');
    const valued = await waitValue;
    assert.equal(valued.code, 0, valued.stderr);
    assert.equal(valued.out, 'second');
    const already = await daemon.guest('a', ['wait', 'user.w', '--value', 'second', '--timeout', '5']);
    assert.equal(already.out, 'second');
    const timeout = await daemon.guest('a', ['wait', 'user.never', '--timeout', '1']);
    assert.equal(timeout.code, 75);
    assert.equal(timeout.out, '');
    assert.match(timeout.stderr, /^Error: timed out waiting for user\.never to change\n$/);
  });

  test('wait and watch carry on across a daemon restart and miss nothing', async () => {
    const w = watch('b', 'config');
    await eventually(async () => {
      await set('b', `user.ping=${Date.now()}`);
      return configEvents(w).length > 0;
    }, 'watcher connected');
    const waiting = daemon.guest('b', ['wait', 'user.go', '--value', 'yes', '--timeout', '120']);
    await eventually(() => guestProcesses(['wait', 'user.go']) >= 1, 'wait runs');
    await daemon.signal('SIGTERM');
    await daemon.spawn();
    // Changed at once, possibly before the watcher has reconnected: it must still report it.
    await set('b', 'user.go=yes', 'user.during=restart');
    const r = await waiting;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.out, 'yes');
    await eventually(
      () => configEvents(w).some((m) => m['key'] === 'user.during' && m['value'] === 'restart'),
      'watcher reports the change',
    );
  });

  test('ready round-trips, is shown to the host, and resets to Started on restart', async () => {
    await daemon.launch('r', {});
    const monitor = spawn(process.execPath, [hostCli, '--dir', daemon.dir, 'monitor', 'r', '--format', 'json'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.push(monitor);
    let monitored = '';
    monitor.stdout.on('data', (c: Buffer) => (monitored += c.toString('utf8')));
    await eventually(async () => {
      await set('r', `user.ping=${Date.now()}`);
      return monitored.includes('user.ping');
    }, 'monitor connected');
    assert.equal((await daemon.guest('r', ['ready'])).code, 0);
    const state = async () =>
      (JSON.parse((await daemon.cli(['list', '--format', 'json'])).out) as { name: string; guest_state: string }[]).find(
        (c) => c.name === 'r',
      )?.guest_state;
    assert.equal(await state(), 'Ready');
    assert.match((await daemon.curl('r', '/1.0')).out, /"state":"Ready"/);
    await eventually(() => /"action":"guest-state".*"state":"Ready"/.test(monitored), 'the host sees the ready event');
    const badPatch = await daemon.curl('r', '/1.0', ['-X', 'PATCH', '-d', '{"state":"Sleeping"}', '-o', '/dev/null', '-w', '%{http_code}']);
    assert.equal(badPatch.out, '400');
    const notJson = await daemon.curl('r', '/1.0', ['-X', 'PATCH', '-d', 'state=Ready', '-o', '/dev/null', '-w', '%{http_code}']);
    assert.equal(notJson.out, '400');
    assert.equal((await daemon.cli(['stop', 'r', '--force'])).code, 0);
    assert.equal((await daemon.cli(['start', 'r'])).code, 0);
    assert.equal(await state(), 'Started');
    // The host sees everything, security.* included.
    await set('r', 'security.devapollo.users=true');
    await eventually(() => monitored.includes('security.devapollo.users'), 'monitor shows security.* changes');
  });

  test('turning security.devapollo off ends open event streams at once', async () => {
    await daemon.launch('off', {});
    const s = streamIn('off', ['curl', '-sN', '--unix-socket', '/dev/apollo/sock', 'http://apollo/1.0/events']);
    await eventually(async () => {
      await set('off', `user.ping=${Date.now()}`);
      return configEvents(s).length > 0;
    }, 'stream connected');
    const ended = new Promise((resolve) => s.child.once('exit', resolve));
    await set('off', 'security.devapollo=false');
    await ended;
    const refused = await daemon.curl('off', '/1.0/events', ['-o', '/dev/null', '-w', '%{http_code}']);
    assert.equal(refused.out, '403');
  });
});

/** How many guest-tool processes have all of `parts` in their command line. */
function guestProcesses(parts: string[]): number {
  return processesWhere((args) => args[1] === guestTool() && parts.every((p) => args.includes(p))).length;
}
