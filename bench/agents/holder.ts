/**
 * Opens many guest connections from inside one container and holds them open: each
 * sends one kept-alive `GET /1.0/config/user.foo` and must get its own container's value
 * (identity at scale), then stays connected until stdin closes. Imports only node:
 * modules, so it runs from a copy in a world-readable directory in an unprivileged
 * container.
 *
 * Argument: a JSON object { connections, expect }. Prints "ready N" or "mismatch …".
 */
import net from 'node:net';

const { connections, expect } = JSON.parse(process.argv[2] ?? '{}') as { connections: number; expect: string };
const request = 'GET /1.0/config/user.foo HTTP/1.1\r\nHost: apollo\r\n\r\n';
const sockets: net.Socket[] = [];

/**
 * One connection, one request; resolves with the body once the whole answer is in. A
 * connect that finds the listen backlog full (EAGAIN on a Unix socket) is tried again.
 */
async function ask(): Promise<string> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await askOnce();
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EAGAIN' || attempt === 100) throw error;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
}

function askOnce(): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect('/dev/apollo/sock');
    let data = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      data += chunk;
      const end = data.indexOf('\r\n\r\n');
      if (end === -1) return;
      const length = Number(/content-length:\s*(\d+)/i.exec(data.slice(0, end))?.[1] ?? -1);
      const body = data.slice(end + 4);
      if (Buffer.byteLength(body) >= length) resolve(`${data.slice(9, 12)} ${body}`);
    });
    socket.once('error', reject);
    socket.once('close', () => reject(new Error(`closed early: ${data}`)));
    socket.once('connect', () => sockets.push(socket));
    socket.write(request);
  });
}

const answers = await Promise.all(Array.from({ length: connections }, ask));
const wrong = answers.filter((a) => a !== `200 ${expect}`);
process.stdout.write(wrong.length === 0 ? `ready ${answers.length}\n` : `mismatch ${wrong.length}: ${wrong[0]}\n`);
process.stdin.resume();
process.stdin.once('end', () => {
  for (const socket of sockets) socket.destroy();
  process.exit(0);
});
