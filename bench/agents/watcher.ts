/**
 * Event watchers inside one container: opens N streams of `GET /1.0/events?type=config`
 * on /dev/apollo/sock and, for every config event on every stream, prints
 * "VALUE NANOSECONDS" with the receipt time from the system-wide monotonic clock
 * (process.hrtime, CLOCK_MONOTONIC), which the benchmark compares with the time it sent
 * the change. Imports only node: modules, so it runs from a copy in a world-readable
 * directory in an unprivileged container.
 *
 * Argument: a JSON object { streams }. Prints "ready N" once every stream is open; exits
 * when stdin closes.
 */
import http from 'node:http';

const { streams } = JSON.parse(process.argv[2] ?? '{}') as { streams: number };
const requests: http.ClientRequest[] = [];
let out = '';
let flushing = false;

/** Batches output lines written in the same tick (1,000 streams may hear one event). */
function print(line: string): void {
  out += line;
  if (flushing) return;
  flushing = true;
  setImmediate(() => {
    flushing = false;
    process.stdout.write(out);
    out = '';
  });
}

function open(): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      { socketPath: '/dev/apollo/sock', path: '/1.0/events?type=config', headers: { Host: 'apollo' }, agent: false },
      (res) => {
        if (res.statusCode !== 200) {
          reject(new Error(`events answered ${res.statusCode}`));
          return;
        }
        let buffer = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          const now = process.hrtime.bigint();
          buffer += chunk;
          for (let newline = buffer.indexOf('\n'); newline !== -1; newline = buffer.indexOf('\n')) {
            const line = buffer.slice(0, newline);
            buffer = buffer.slice(newline + 1);
            if (line.trim() === '') continue; // heartbeat
            const event = JSON.parse(line) as { metadata: { value: string } };
            print(`${event.metadata.value} ${now}\n`);
          }
        });
        resolve();
      },
    );
    req.once('error', reject);
    requests.push(req);
  });
}

await Promise.all(Array.from({ length: streams }, open));
process.stdout.write(`ready ${streams}\n`);
process.stdin.resume();
process.stdin.once('end', () => {
  for (const req of requests) req.destroy();
  process.exit(0);
});
