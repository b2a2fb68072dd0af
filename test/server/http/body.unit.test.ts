// Request bodies without a daemon: readBody's limit (declared, streamed, exactly at it)
// on a real HTTP server on a Unix socket, and parseJsonBody's refusals.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseJsonBody, readBody } from '../../../dist/server/http/body.js';
import { ApolloError } from '../../../dist/shared/errors.js';

describe('readBody', () => {
  const limit = 8;
  let dir: string;
  let socketPath: string;
  let server: http.Server;
  /** What each request's readBody gave: its body, or its error's code. */
  const outcomes: string[] = [];
  /** For each refusal: whether the request still had its live socket, and the error's Connection header. */
  const refusals: { socketKept: boolean; connection: string | undefined }[] = [];

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'devapollo-body-'));
    socketPath = path.join(dir, 'sock');
    server = http.createServer((req, res) => {
      readBody(req, limit).then(
        (body) => {
          outcomes.push(`body ${body.toString('utf8')}`);
          res.end('ok');
        },
        (error: unknown) => {
          outcomes.push(error instanceof ApolloError ? `${error.code} ${error.message}` : String(error));
          // Checked a turn later: whatever readBody did to the stream has happened by then.
          setImmediate(() => {
            refusals.push({
              socketKept: req.socket !== null && !req.socket.destroyed,
              connection: error instanceof ApolloError ? error.headers['Connection'] : undefined,
            });
            res.destroy();
          });
        },
      );
    });
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** Sends raw bytes; resolves with readBody's outcome for it. */
  const send = (bytes: string): Promise<string> =>
    new Promise((resolve) => {
      const before = outcomes.length;
      const socket = net.connect(socketPath, () => socket.write(bytes));
      socket.on('error', () => undefined);
      const check = setInterval(() => {
        if (outcomes.length > before) {
          clearInterval(check);
          socket.destroy();
          resolve(outcomes[before] as string);
        }
      }, 2);
    });

  test('a body of exactly the limit is read whole', async () => {
    assert.equal(await send('PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\n12345678'), 'body 12345678');
  });

  test('a declared length over the limit is refused before a byte of the body is read', async () => {
    // The body never comes: only the declaration can have been refused.
    assert.equal(
      await send('PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\n'),
      'payload-too-large the request body is larger than 8 bytes',
    );
  });

  test('a chunked body is counted as it comes, and refused once it passes the limit', async () => {
    const chunked = 'PUT / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n12345\r\n5\r\n67890\r\n';
    assert.equal(await send(chunked), 'payload-too-large the request body is larger than 8 bytes');
    assert.equal(await send('PUT / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n'), 'body abcd');
  });

  test('a refused body leaves the request its socket, to be answered on, and the 413 closes the connection', async () => {
    // The daemon's answer path looks the connection up from req.socket after the 413: a
    // request stream destroyed by the refusal left it null there, and the daemon crashed.
    refusals.length = 0;
    const chunked = 'PUT / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n12345\r\n5\r\n67890\r\n';
    assert.equal(await send(chunked), 'payload-too-large the request body is larger than 8 bytes');
    assert.equal(
      await send('PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\n'),
      'payload-too-large the request body is larger than 8 bytes',
    );
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.deepEqual(refusals, [
      { socketKept: true, connection: 'close' },
      { socketKept: true, connection: 'close' },
    ]);
  });
});

describe('parseJsonBody', () => {
  const codeOf = (body: string): string => {
    try {
      parseJsonBody(Buffer.from(body));
      return 'parsed';
    } catch (error) {
      return error instanceof ApolloError ? `${error.code}: ${error.message}` : String(error);
    }
  };

  test('JSON is parsed; an empty body and what is not JSON are 400s that say why', () => {
    assert.deepEqual(parseJsonBody(Buffer.from('{"state":"Ready"}')), { state: 'Ready' });
    assert.equal(codeOf(''), 'bad-request: a JSON request body is required');
    assert.match(codeOf('{"state":'), /^bad-request: the request body is not valid JSON: /);
  });
});
