/**
 * Raw HTTP requests on /dev/apollo/sock from inside a container, many in one `exec`: a
 * node script (readable by the container's root) that runs the requests it is given, one
 * after another or all at once, and prints each answer as JSON. Bodies are sent as exact
 * bytes (hex), or only declared (a Content-Length with nothing after it, to see what the
 * daemon answers before a body arrives).
 */
import type { TestDaemon } from './daemon.js';
import { guestScript } from './daemon.js';

/** One request. */
export interface GuestRequest {
  readonly method: string;
  readonly path: string;
  /** The body's bytes. */
  readonly body?: Buffer | string;
  /** Sent chunked (no Content-Length). */
  readonly chunked?: boolean;
  /** Only the headers, declaring this Content-Length; the answer is read without sending the body. */
  readonly declareOnly?: number;
}

/** One answer. */
export interface GuestAnswer {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: string;
}

const source = String.raw`
const http = require('node:http');
const net = require('node:net');
const [mode] = process.argv.slice(2);
const requests = JSON.parse(require('node:fs').readFileSync(0, 'utf8'));
const socketPath = '/dev/apollo/sock';
const agent = new http.Agent({ keepAlive: true, maxSockets: mode === 'parallel' ? 64 : 1 });
function one(r) {
  if (r.declareOnly !== undefined) {
    return new Promise((resolve, reject) => {
      const socket = net.connect(socketPath, () => {
        socket.write(r.method + ' ' + r.path + ' HTTP/1.1\r\nHost: apollo\r\nContent-Length: ' + r.declareOnly + '\r\n\r\n');
      });
      let text = '';
      socket.on('data', (c) => {
        text += c.toString('latin1');
        const end = text.indexOf('\r\n\r\n');
        if (end === -1) return;
        const head = text.slice(0, end).split('\r\n');
        const length = Number((/content-length: *(\d+)/i.exec(text) || [])[1] || 0);
        if (text.length < end + 4 + length) return;
        const headers = {};
        for (const line of head.slice(1)) headers[line.slice(0, line.indexOf(':')).toLowerCase()] = line.slice(line.indexOf(':') + 1).trim();
        socket.destroy();
        resolve({ status: Number(head[0].split(' ')[1]), headers, body: text.slice(end + 4, end + 4 + length) });
      });
      socket.on('error', reject);
    });
  }
  return new Promise((resolve, reject) => {
    const body = r.bodyHex === undefined ? undefined : Buffer.from(r.bodyHex, 'hex');
    const headers = { Host: 'apollo' };
    if (body !== undefined && !r.chunked) headers['Content-Length'] = body.length;
    const req = http.request({ socketPath, agent, method: r.method, path: r.path, headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', (e) => resolve({ status: 0, headers: {}, body: String(e) }));
    if (body !== undefined && r.chunked) {
      for (let i = 0; i < body.length; i += 4096) req.write(body.subarray(i, i + 4096));
    }
    req.end(body !== undefined && !r.chunked ? body : undefined);
  });
}
(async () => {
  const answers = mode === 'parallel' ? await Promise.all(requests.map(one)) : [];
  if (mode !== 'parallel') for (const r of requests) answers.push(await one(r));
  agent.destroy();
  process.stdout.write(JSON.stringify(answers));
})();
`;

let script: string | undefined;

/** Runs `requests` in container `name` (in order, or `parallel`ly), returning each answer. */
export async function guestRequests(
  daemon: TestDaemon,
  name: string,
  requests: readonly GuestRequest[],
  mode: 'sequential' | 'parallel' = 'sequential',
): Promise<GuestAnswer[]> {
  script ??= guestScript('guest-requests.cjs', source);
  const input = JSON.stringify(
    requests.map((r) => ({
      method: r.method,
      path: r.path,
      bodyHex: r.body === undefined ? undefined : Buffer.from(r.body).toString('hex'),
      chunked: r.chunked === true,
      declareOnly: r.declareOnly,
    })),
  );
  const result = await daemon.exec(name, [process.execPath, script, mode], { input, timeoutMs: 120_000 });
  if (result.code !== 0) throw new Error(`guest requests in ${name} failed (${result.code}): ${result.stderr}`);
  return JSON.parse(result.out) as GuestAnswer[];
}
