/**
 * A container's everyday use of the guest API, for the history benchmark's mixed load:
 * one event stream (`GET /1.0/events?type=config`) held open, and GETs one after another
 * (config keys, the key list, meta-data, /1.0), mostly on a kept-alive connection and
 * every tenth on a new one, with a pause between them. Imports only node: modules, so
 * it runs from a copy in a world-readable directory in an unprivileged container.
 *
 * Argument: a JSON object { pauseMs }. Prints "ready" once the stream is open; when stdin
 * closes, prints "done REQUESTS EVENTS ERRORS" and exits.
 */
import http from 'node:http';

const { pauseMs } = JSON.parse(process.argv[2] ?? '{}') as { pauseMs: number };
const socketPath = '/dev/apollo/sock';
const paths = ['/1.0/config/user.foo', '/1.0/config', '/1.0/meta-data', '/1.0', '/1.0/config/user.missing'];
const keptAlive = new http.Agent({ keepAlive: true, maxSockets: 1 });
let requests = 0;
let events = 0;
let errors = 0;
let stopping = false;

function get(path: string, agent: http.Agent | false): Promise<void> {
  return new Promise((resolve) => {
    const req = http.get({ socketPath, path, headers: { Host: 'apollo' }, agent }, (res) => {
      res.resume();
      res.once('end', () => {
        requests++;
        // 404 is the answer for the missing key; anything else but 200 is an error.
        if (res.statusCode !== 200 && res.statusCode !== 404) errors++;
        resolve();
      });
    });
    req.once('error', () => {
      errors++;
      resolve();
    });
  });
}

const stream = await new Promise<http.ClientRequest>((resolve, reject) => {
  const req = http.get({ socketPath, path: '/1.0/events?type=config', headers: { Host: 'apollo' }, agent: false }, (res) => {
    if (res.statusCode !== 200) {
      reject(new Error(`events answered ${res.statusCode}`));
      return;
    }
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      for (const line of chunk.split('\n')) if (line.trim() !== '') events++;
    });
    resolve(req);
  });
  req.once('error', reject);
});
process.stdout.write('ready\n');
process.stdin.resume();
process.stdin.once('end', () => {
  stopping = true;
});
for (let i = 0; !stopping; i++) {
  await get(paths[i % paths.length] as string, i % 10 === 9 ? false : keptAlive);
  await new Promise((resolve) => setTimeout(resolve, pauseMs));
}
stream.destroy();
keptAlive.destroy();
process.stdout.write(`done ${requests} ${events} ${errors}\n`);
process.exit(0);
