// Operating the daemon: inherited sockets (as systemd passes them), the unit files,
// logs, metrics and status.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe } from 'node:test';
import { ActivatedDaemon } from '../helpers/activation.js';
import { eventually, hostCli, repoRoot, run, TestDaemon } from '../helpers/daemon.js';
import { curlUnavailable, gatedTest } from '../helpers/env.js';

describe('socket activation (descriptors passed as systemd passes them)', () => {
  const test = gatedTest(curlUnavailable);
  let daemon: ActivatedDaemon | undefined;

  after(async () => {
    await daemon?.destroy();
  });

  test('the daemon serves inherited sockets, never unlinks them, and queued connections survive a restart', async () => {
    daemon = await ActivatedDaemon.start();
    const { dir } = daemon;
    const cli = (args: string[]) => (daemon as ActivatedDaemon).cli(args);
    const guestSocket = path.join(dir, 'devapollo/sock');
    assert.match(daemon.log, /socket_activation=true/);
    const status = JSON.parse((await cli(['status', '--format', 'json'])).out) as { socket_activation: boolean };
    assert.equal(status.socket_activation, true);
    assert.equal((await cli(['launch', 'act', '-c', 'user.foo=activated'])).code, 0);
    assert.equal(
      (await cli(['exec', 'act', '--', 'curl', '-sS', '--unix-socket', '/dev/apollo/sock', 'http://apollo/1.0/config/user.foo'])).out,
      'activated',
    );

    // Stop the daemon: the sockets stay, and a connection made now waits for the next daemon.
    await daemon.stop();
    assert.ok(fs.existsSync(guestSocket), 'the guest socket is not unlinked');
    assert.ok(fs.existsSync(path.join(dir, 'unix.socket')), 'the admin socket is not unlinked');
    const queued = new Promise<string>((resolve, reject) => {
      const socket = net.connect(guestSocket);
      let answer = '';
      socket.on('data', (c: Buffer) => (answer += c.toString('utf8')));
      socket.on('error', reject);
      socket.on('close', () => resolve(answer));
      socket.write('GET /1.0 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const restarted = daemon.startAgain();
    // Answered (a host process gets 403), not refused: no connection attempt was dropped.
    assert.match(await queued, /^HTTP\/1\.1 403 /);
    await restarted;
    assert.equal(
      (await cli(['exec', 'act', '--', 'curl', '-sS', '--unix-socket', '/dev/apollo/sock', 'http://apollo/1.0/config/user.foo'])).out,
      'activated',
    );
    assert.equal((await cli(['delete', 'act', '--force'])).code, 0);
  });

  test('descriptors without the names guest and admin are refused clearly', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'devapollo-activated-'));
    const r = spawnSync(
      'sh',
      ['-c', `LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=other exec ${process.execPath} ${hostCli} serve --dir ${dir}-x`],
      { encoding: 'utf8' },
    );
    assert.equal(r.status, 2);
    assert.match(r.stderr, /^Error: socket activation needs two sockets named "guest" and "admin"/);
    fs.rmSync(`${dir}-x`, { recursive: true, force: true });
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe('systemd units', () => {
  const unitDir = path.join(repoRoot, 'systemd');
  const read = (name: string) => fs.readFileSync(path.join(unitDir, name), 'utf8');
  const value = (unit: string, key: string) => new RegExp(`^${key}=(.*)$`, 'm').exec(unit)?.[1];

  gatedTest(false)('the service never stops a container, and the sockets match the daemon', async () => {
    const service = read('devapollo.service');
    const guest = read('devapollo.socket');
    const admin = read('devapollo-admin.socket');
    assert.equal(value(service, 'KillMode'), 'process');
    assert.equal(value(service, 'TasksMax'), 'infinity');
    assert.equal(value(guest, 'FileDescriptorName'), 'guest');
    assert.equal(value(admin, 'FileDescriptorName'), 'admin');
    assert.equal(value(guest, 'SocketMode'), '0666');
    assert.equal(value(admin, 'SocketMode'), '0660');
    const dir = / --dir (\S+)/.exec(value(service, 'ExecStart') ?? '')?.[1];
    assert.equal(value(guest, 'ListenStream'), `${dir}/devapollo/sock`);
    assert.equal(value(admin, 'ListenStream'), `${dir}/unix.socket`);
  });

  gatedTest(spawnSync('systemd-analyze', ['--version']).status === 0 ? false : 'needs systemd-analyze')(
    'systemd-analyze verify accepts the units',
    async () => {
      const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'devapollo-units-'));
      try {
        for (const name of fs.readdirSync(unitDir)) {
          // verify checks that ExecStart exists: point it at this checkout.
          const text = read(name).replaceAll('/usr/local/bin/devapollo', path.join(repoRoot, 'bin/devapollo.js'));
          fs.writeFileSync(path.join(scratch, name), text);
        }
        const r = spawnSync('systemd-analyze', ['verify', ...fs.readdirSync(scratch).map((n) => path.join(scratch, n))], {
          encoding: 'utf8',
        });
        const problems = r.stderr
          .split('\n')
          // Not about our units: this machine runs without systemd as pid 1.
          .filter((line) => line.trim() !== '' && !/Failed to|not running|System has not been booted/.test(line));
        assert.deepEqual(problems, []);
      } finally {
        fs.rmSync(scratch, { recursive: true, force: true });
      }
    },
  );
});

describe('logs, metrics and status', () => {
  let daemon: TestDaemon;
  const test = gatedTest(curlUnavailable);

  before(async () => {
    if (curlUnavailable) return;
    daemon = await TestDaemon.start({ args: ['--log-format', 'json', '--log-requests'] });
    await daemon.launch('ops', { config: { 'user.password': 'hunter2-never-logged' } });
  });

  after(async () => {
    await daemon?.destroy();
  });

  test('JSON logs: start, container started, config change and requests, never a value', async () => {
    await daemon.curl('ops', '/1.0/config/user.password');
    assert.equal((await daemon.cli(['config', 'set', 'ops', 'user.password=hunter3-never-logged'])).code, 0);
    await run('curl', ['-sS', '--unix-socket', path.join(daemon.dir, 'devapollo/sock'), 'http://x/1.0']);
    await eventually(() => daemon.stderr.includes('refused guest peer'), 'the refusal is logged');
    const lines = daemon.stderr
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const messages = lines.map((l) => l['msg']);
    for (const expected of ['devapollo started', 'container started', 'config changed', 'request', 'refused guest peer']) {
      assert.ok(messages.includes(expected), `${expected} in ${JSON.stringify(messages)}`);
    }
    const request = lines.find((l) => l['msg'] === 'request' && l['api'] === 'guest');
    assert.equal(request?.['container'], 'ops');
    assert.equal(request?.['status'], 200);
    const refusal = lines.find((l) => l['msg'] === 'refused guest peer');
    assert.equal(typeof refusal?.['pid'], 'number');
    assert.equal(refusal?.['reason'], 'not in a running container');
    assert.doesNotMatch(daemon.stderr, /hunter[23]/);
    for (const line of lines) {
      assert.match(String(line['time']), /^\d{4}-\d\d-\d\dT/);
      assert.ok(['debug', 'info', 'warn', 'error'].includes(String(line['level'])));
    }
  });

  test('GET /metrics on the admin socket: Prometheus text with requests, latency, connections, containers, refusals, events', async () => {
    const r = await run('curl', ['-sS', '-i', '--unix-socket', path.join(daemon.dir, 'unix.socket'), 'http://d/metrics']);
    assert.match(r.out, /\r\nContent-Type: text\/plain; version=0\.0\.4; charset=utf-8\r\n/i);
    const body = r.out.split('\r\n\r\n')[1] ?? '';
    assert.match(body, /^devapollo_requests_total\{api="guest",route="\/1\.0\/config\/:key",status="200"\} \d+$/m);
    assert.match(body, /^devapollo_request_duration_seconds_bucket\{api="guest",le="\+Inf"\} \d+$/m);
    assert.match(body, /^devapollo_request_duration_seconds_count\{api="guest"\} \d+$/m);
    assert.match(body, /^devapollo_guest_connections \d+$/m);
    assert.match(body, /^devapollo_containers\{state="Running"\} 1$/m);
    assert.match(body, /^devapollo_refused_peers_total\{reason="not in a running container"\} \d+$/m);
    assert.match(body, /^devapollo_events_delivered_total \d+$/m);
    assert.match(body, /^# TYPE devapollo_request_duration_seconds histogram$/m);
    const gauge = (name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(body)?.[1] ?? Number.NaN);
    assert.ok(gauge('process_resident_memory_bytes') > 10 * 1024 * 1024, 'resident memory');
    assert.ok(gauge('nodejs_heap_size_used_bytes') > 1024 * 1024, 'heap used');
    assert.ok(gauge('nodejs_external_memory_bytes') > 0, 'external memory');
    // Its own sockets and the container's pidfd at least.
    assert.ok(gauge('process_open_fds') >= 4, 'open descriptors');
    assert.doesNotMatch(body, /hunter|user\.password/);
    // From a guest, /metrics does not exist.
    assert.equal((await daemon.curl('ops', '/metrics', ['-o', '/dev/null', '-w', '%{http_code}'])).out, '404');
  });

  test('shell completion offers container names and keys from the daemon', async () => {
    const complete = (...words: string[]) => daemon.cli(['--get-yargs-completions', 'devapollo', '--dir', daemon.dir, ...words]);
    const names = await complete('stop', '');
    assert.equal(names.code, 0, names.stderr);
    assert.ok(names.out.split('\n').includes('ops'), names.out);
    assert.equal(names.stderr, '');
    const keys = await complete('config', 'get', 'ops', '');
    assert.ok(keys.out.split('\n').includes('user.password'), keys.out);
    const settable = await complete('config', 'set', 'ops', 'user.p');
    assert.ok(settable.out.split('\n').includes('user.password='), settable.out);
    const commands = await complete('');
    assert.ok(commands.out.split('\n').includes('launch'));
    const script = await daemon.cli(['completion']);
    assert.match(script.out, /devapollo --get-yargs-completions/);
    // The guest's: the container's readable keys, asked through its socket.
    const guestKeys = await daemon.guest('ops', ['--get-yargs-completions', 'devapollo-guest', 'get', '']);
    assert.ok(guestKeys.out.split('\n').includes('user.password'), guestKeys.out);
  });

  test('status: health, version, uptime, sockets and counts, as a table and JSON', async () => {
    const table = await daemon.cli(['status']);
    assert.equal(table.code, 0);
    for (const row of ['version', 'uptime', 'guest socket', 'admin socket', 'containers']) assert.match(table.out, new RegExp(row));
    const json = JSON.parse((await daemon.cli(['status', '--format', 'json'])).out) as Record<string, unknown>;
    assert.equal(json['socket_activation'], false);
    assert.deepEqual(json['containers'], { total: 1, running: 1 });
  });
});

describe('log levels', () => {
  gatedTest(curlUnavailable)('--log-level warn keeps info lines out; text format is one line per event', async () => {
    const daemon = await TestDaemon.start({ args: ['--log-level', 'warn'] });
    try {
      assert.equal(daemon.stderr, '');
      await run('curl', ['-sS', '--unix-socket', path.join(daemon.dir, 'devapollo/sock'), 'http://x/1.0']);
      await eventually(() => daemon.stderr.includes('refused guest peer'), 'a warning is logged');
      assert.match(daemon.stderr, /^\d{4}-\d\d-\d\dT\S+ WARN {2}refused guest peer pid=\d+ uid=0 reason="not in a running container"\n$/);
    } finally {
      await daemon.destroy();
    }
  });
});
