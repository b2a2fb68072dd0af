// devapollo-guest against a hostile or broken server on its socket (a container's root
// can put anything there): a body dribbled byte by byte, a 2 GiB body, terminal escape
// sequences in an error message, in values, in /1.0 and in events. The client must end
// within its timeout, stay small, and never pass an escape sequence to a terminal, while
// `get` still prints a value's exact bytes. The server here is a fake on purpose: the test
// is about the client.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { guestBundle, run } from '../helpers/daemon.js';

/** Bytes that would retitle the terminal, clear it and answer back, with C1 and bidi controls. */
const hostile = '\u001b]0;pwned\u0007\u001b[2J\u001b[6n\u009b31m\u202e\r\tend';

const escapedValue = Buffer.from(`value ${hostile}\n`, 'utf8');

describe('devapollo-guest against a hostile server', () => {
  let dir: string;
  let socket: string;
  let server: http.Server;
  const timers = new Set<NodeJS.Timeout>();

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'devapollo-hostile-'));
    socket = path.join(dir, 'sock');
    server = http.createServer((req, res) => {
      const target = req.url ?? '';
      const send = (status: number, type: string, body: string | Buffer, headers: Record<string, string> = {}) => {
        res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), ...headers });
        res.end(body);
      };
      if (target === '/1.0/config/user.slow' || target === '/1.0/meta-data') {
        // Headers at once, then one byte every 100 ms of a 1,000-byte body.
        res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': '1000', ETag: '"x-1"' });
        const timer = setInterval(() => res.write('x'), 100);
        timers.add(timer);
        res.once('close', () => clearInterval(timer));
      } else if (target === '/1.0/config/user.huge' || target === '/1.0/config/user.huge-chunked') {
        // 2 GiB, as fast as the client reads; chunked: no length declared up front.
        const declared = target.endsWith('huge') ? { 'Content-Length': String(2 * 1024 ** 3) } : {};
        res.writeHead(200, { 'Content-Type': 'text/plain', ETag: '"x-1"', ...declared });
        const chunk = Buffer.alloc(1024 * 1024, 0x61);
        let left = 2048;
        const pump = () => {
          while (left > 0 && !res.destroyed) {
            left--;
            if (!res.write(chunk)) return void res.once('drain', pump);
          }
          res.end();
        };
        pump();
      } else if (target === '/1.0/config/user.escape') {
        send(200, 'text/plain', escapedValue, { ETag: '"x-2"' });
      } else if (target === '/1.0/config/user.tab') {
        send(200, 'text/plain', 'a\tb\nc', { ETag: '"x-3"' });
      } else if (target === '/1.0/config') {
        send(
          200,
          'application/json',
          JSON.stringify(['/1.0/config/user.escape', '/1.0/config/user.tab', `/1.0/config/user.${encodeURIComponent(hostile)}`]),
          { ETag: '"x-4"' },
        );
      } else if (target === `/1.0/config/user.${encodeURIComponent(hostile)}`) {
        send(200, 'text/plain', 'named', { ETag: '"x-5"' });
      } else if (target === '/1.0') {
        send(
          200,
          'application/json',
          JSON.stringify({ api_version: '1.0', instance_type: 'container', location: `host${hostile}`, state: 'Started' }),
        );
      } else if (target.startsWith('/1.0/events')) {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        const event = {
          type: 'config',
          timestamp: `now${hostile}`,
          metadata: { key: `user.${hostile}`, old_value: hostile, value: `new${hostile}`, etag: '"x-9"' },
        };
        res.write(`${JSON.stringify(event)}\n`);
        const timer = setInterval(() => res.write('\n'), 500);
        timers.add(timer);
        res.once('close', () => clearInterval(timer));
      } else {
        send(403, 'application/json', JSON.stringify({ type: 'error', error: `Forbidden ${hostile}`, error_code: 403 }));
      }
    });
    await new Promise<void>((resolve) => server.listen(socket, resolve));
  });

  after(async () => {
    for (const timer of timers) clearInterval(timer);
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const guest = (args: readonly string[]) =>
    run(process.execPath, [guestBundle, '--socket', socket, '--connect-timeout', '1', ...args], { timeoutMs: 30_000 });

  /** Runs the guest CLI until it exits, reading its peak resident memory (VmHWM) meanwhile. */
  const peakMemory = (args: readonly string[]) =>
    new Promise<{ code: number | null; stderr: string; peakBytes: number }>((resolve) => {
      const child = spawn(process.execPath, [guestBundle, '--socket', socket, '--connect-timeout', '5', ...args], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      let peakBytes = 0;
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
      const poll = setInterval(() => {
        try {
          const kb = Number(/^VmHWM:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1] ?? 0);
          peakBytes = Math.max(peakBytes, kb * 1024);
        } catch {
          // Exited.
        }
      }, 5);
      const guard = setTimeout(() => child.kill('SIGKILL'), 60_000);
      child.once('close', (code) => {
        clearInterval(poll);
        clearTimeout(guard);
        resolve({ code, stderr, peakBytes });
      });
    });

  /** What the guest CLI writes to a terminal (stdout and stderr), run under a pseudo-terminal. */
  const onTerminal = async (args: readonly string[], wrap = '') => {
    const command = [process.execPath, guestBundle, '--socket', socket, '--connect-timeout', '2', ...args].map((a) => `'${a}'`).join(' ');
    const r = await run('script', ['-q', '-e', '-c', `${wrap}${command}`, '/dev/null'], {
      env: { ...process.env, NO_COLOR: '1' },
      timeoutMs: 30_000,
    });
    return r.stdout;
  };

  test('a body dribbled slower than the timeout: exit 69 within the timeout, for get and the full CLI', async () => {
    for (const args of [['get', 'user.slow'], ['metadata']]) {
      const r = await guest(args);
      assert.equal(r.code, 69, `${args.join(' ')}: ${r.signal ?? ''} ${r.stderr}`);
      assert.match(r.stderr, /^Error: the devapollo daemon did not answer on .* within 1 s\n$/);
    }
    // A wait takes a server that does not answer for one restarting, until its own timeout.
    const waited = await guest(['wait', 'user.slow', '--timeout', '2']);
    assert.equal(waited.code, 75, `${waited.signal ?? ''} ${waited.stderr}`);
  });

  test('a 2 GiB body: exit 1 with a clear message, memory bounded', async (t) => {
    for (const key of ['user.huge', 'user.huge-chunked']) {
      const r = await peakMemory(['get', key]);
      t.diagnostic(`${key}: peak RSS ${(r.peakBytes / 1024 ** 2).toFixed(0)} MiB`);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /^Error: the answer on .* is larger than 64 MiB, more than devapollo-guest reads: refusing it\n$/);
      assert.ok(r.peakBytes > 0 && r.peakBytes < 400 * 1024 ** 2, `peak RSS ${r.peakBytes}`);
    }
  });

  test('no escape sequence reaches a terminal: error messages, config tables, info, watch', async () => {
    const outputs = {
      error: await onTerminal(['get', 'security.x']),
      config: await onTerminal(['config']),
      info: await onTerminal(['info']),
      // watch runs until interrupted: SIGINT after its first event is printed.
      watch: await onTerminal(['watch'], 'timeout -s INT 3 '),
    };
    for (const [what, bytes] of Object.entries(outputs)) {
      assert.equal(bytes.indexOf(0x1b), -1, `${what} wrote ESC: ${JSON.stringify(bytes.toString('utf8'))}`);
      assert.equal(bytes.indexOf(Buffer.from('\u009b', 'utf8')), -1, `${what} wrote CSI`);
      assert.equal(bytes.indexOf(Buffer.from('\u202e', 'utf8')), -1, `${what} wrote a bidi override`);
      assert.match(bytes.toString('utf8'), /\\x1b\]0;pwned\\x07\\x1b\[2J/, what);
    }
    assert.match(outputs.error.toString('utf8'), /^Error: Forbidden \\x1b\]0;pwned/);
    assert.match(outputs.config.toString('utf8'), /a\\tb\\nc/);
  });

  test('what get prints stays byte-exact, and JSON stays JSON', async () => {
    const r = await guest(['get', 'user.escape']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout, escapedValue);
    const json = await guest(['config', '--format', 'json']);
    assert.equal(json.out.indexOf('\u001b'), -1);
    assert.equal(json.out.indexOf('\u009b'), -1);
    assert.deepEqual(JSON.parse(json.out), {
      'user.escape': escapedValue.toString('utf8'),
      'user.tab': 'a\tb\nc',
      [`user.${hostile}`]: 'named',
    });
  });
});
