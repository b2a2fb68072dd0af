/**
 * One container's side of the guest-writes benchmark: durable writes of a guest.* key
 * (`PUT /1.0/config/guest.bench`, each answered once the record is fsynced), or GETs of
 * a user.* key, one after another on one kept-alive connection, for a number of seconds.
 * Imports only node: modules, so it runs from a copy in a world-readable directory.
 *
 * Argument: a JSON object { mode: "write" | "read", seconds, valueBytes }. Prints "ready",
 * then on each "go" line on stdin runs once and prints one JSON line
 * { count, seconds, latenciesMs, failures }; exits when stdin closes.
 */
import http from 'node:http';
import { createInterface } from 'node:readline';

const options = JSON.parse(process.argv[2] ?? '{}') as { mode: 'write' | 'read'; seconds: number; valueBytes: number };
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

function once(i: number): Promise<number> {
  const body = options.mode === 'write' ? Buffer.from(String(i).padEnd(options.valueBytes, 'x')) : undefined;
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        socketPath: '/dev/apollo/sock',
        agent,
        method: options.mode === 'write' ? 'PUT' : 'GET',
        path: options.mode === 'write' ? '/1.0/config/guest.bench' : '/1.0/config/user.bench',
        headers: body === undefined ? { Host: 'apollo' } : { Host: 'apollo', 'Content-Length': body.length },
      },
      (res) => {
        res.resume();
        res.once('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.once('error', reject);
    req.end(body);
  });
}

async function run(): Promise<void> {
  const latencies: number[] = [];
  let failures = 0;
  const started = performance.now();
  const end = started + options.seconds * 1000;
  for (let i = 0; performance.now() < end; i++) {
    const sent = performance.now();
    const status = await once(i);
    latencies.push(performance.now() - sent);
    if (status !== 200) failures++;
  }
  const seconds = (performance.now() - started) / 1000;
  process.stdout.write(`${JSON.stringify({ count: latencies.length, seconds, latenciesMs: latencies, failures })}\n`);
}

process.stdout.write('ready\n');
const lines = createInterface({ input: process.stdin });
let queue = Promise.resolve();
lines.on('line', (line) => {
  if (line.trim() === 'go') queue = queue.then(run);
});
lines.on('close', () => void queue.then(() => process.exit(0)));
