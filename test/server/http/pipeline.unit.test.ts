// The request pipeline end to end on a real HTTP server listening on a Unix socket (no
// root): routeRequests with its reports, replies, errors, bodies and parser rejections,
// and its change-waits.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { answerClientError } from '../../../dist/server/http/client-errors.js';
import { routeRequests } from '../../../dist/server/http/pipeline.js';
import { errorReply, json, text } from '../../../dist/server/http/reply.js';
import type { Route } from '../../../dist/server/http/router.js';
import { ApolloError } from '../../../dist/shared/errors.js';

describe('routeRequests on a real Unix socket', () => {
  let dir: string;
  let socketPath: string;
  let server: http.Server;
  const unexpected: unknown[] = [];
  const etag = '"rev-42"';

  const routes: Route<{ who: string }>[] = [
    { method: 'GET', path: '/value', handler: (context) => json({ hello: context.who }, { etag }) },
    { method: 'GET', path: '/text/:name', handler: (_context, request) => text(`name=${request.params['name'] ?? ''}`) },
    {
      method: 'GET',
      path: '/missing',
      handler: () => {
        throw new ApolloError('not-found', 'x');
      },
    },
    {
      method: 'GET',
      path: '/boom',
      handler: () => {
        throw new Error('secret detail');
      },
    },
    { method: 'PATCH', path: '/echo', handler: (_context, request) => json({ got: request.body.toString('utf8') }) },
    { method: 'GET', path: '/unset', handler: () => errorReply('not-found', 'y is not set', '"unset-7"') },
    {
      method: 'GET',
      path: '/later',
      handler: async () => {
        laterCalls++;
        await new Promise((resolve) => setImmediate(resolve));
        return text('later');
      },
    },
  ];
  let laterCalls = 0;
  /** What onAnswered was told, one entry per call. */
  const reports: string[] = [];

  interface Answer {
    status: number;
    headers: http.IncomingHttpHeaders;
    body: string;
  }

  function request(method: string, target: string, headers: Record<string, string> = {}, body?: string): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const req = http.request({ socketPath, method, path: target, headers: { Host: 'apollo', ...headers }, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  /** Sends raw bytes and reads until the server closes the connection. */
  function raw(bytes: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(socketPath);
      const chunks: Buffer[] = [];
      socket.on('connect', () => socket.write(bytes));
      socket.on('data', (chunk) => chunks.push(chunk));
      socket.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      socket.on('error', reject);
    });
  }

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'devapollo-router-'));
    socketPath = path.join(dir, 'sock');
    server = http.createServer(
      routeRequests(routes, {
        contextOf: () => ({ who: 'alpha' }),
        maxBodyBytes: 16,
        onUnexpected: (_req, error) => unexpected.push(error),
        onAnswered: (req, route, status, seconds) => {
          assert.ok(seconds >= 0);
          reports.push(`${req.method} ${route} ${status}`);
        },
      }),
    );
    server.on('clientError', answerClientError);
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  });

  after(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('every request is reported once, when answered, with its route pattern and status', async () => {
    const cases: [method: string, target: string, headers: Record<string, string>, body: string | undefined, report: string][] = [
      ['GET', '/value', {}, undefined, 'GET /value 200'],
      ['GET', '/value', { 'If-None-Match': etag }, undefined, 'GET /value 304'],
      ['HEAD', '/text/a%20b', {}, undefined, 'HEAD /text/:name 200'],
      ['GET', '/missing', {}, undefined, 'GET /missing 404'],
      ['GET', '/unset', {}, undefined, 'GET /unset 404'],
      ['GET', '/boom', {}, undefined, 'GET /boom 500'],
      ['GET', '/later', {}, undefined, 'GET /later 200'],
      ['PATCH', '/echo', {}, 'hi', 'PATCH /echo 200'],
      ['PATCH', '/echo', {}, 'x'.repeat(17), 'PATCH /echo 413'],
      ['GET', '/nope', {}, undefined, 'GET unmatched 404'],
      ['DELETE', '/value', {}, undefined, 'DELETE unmatched 405'],
    ];
    for (const [method, target, headers, body, expected] of cases) {
      const before = reports.length;
      const answer = await request(method, target, headers, body);
      // Reported right after the answer was written, so before the client has read it.
      assert.deepEqual(reports.slice(before), [expected], `${method} ${target}`);
      assert.equal(String(answer.status), expected.split(' ')[2]);
    }
  });

  test('an asynchronous handler is awaited, and called once per request', async () => {
    const before = laterCalls;
    const answer = await request('GET', '/later');
    assert.equal(answer.status, 200);
    assert.equal(answer.body, 'later');
    assert.equal(laterCalls - before, 1);
  });

  test('a JSON reply with an etag is a 200 with ETag and Content-Type', async () => {
    const answer = await request('GET', '/value');
    assert.equal(answer.status, 200);
    assert.equal(answer.headers['etag'], etag);
    assert.equal(answer.headers['content-type'], 'application/json');
    assert.equal(answer.headers['content-length'], String(Buffer.byteLength(answer.body)));
    assert.deepEqual(JSON.parse(answer.body), { hello: 'alpha' });
  });

  test('If-None-Match with the current etag is a 304 without a body', async () => {
    const answer = await request('GET', '/value', { 'If-None-Match': etag });
    assert.equal(answer.status, 304);
    assert.equal(answer.headers['etag'], etag);
    assert.equal(answer.body, '');
    const weak = await request('GET', '/value', { 'If-None-Match': `"other", W/${etag}` });
    assert.equal(weak.status, 304);
    const stale = await request('GET', '/value', { 'If-None-Match': '"rev-41"' });
    assert.equal(stale.status, 200);
    assert.deepEqual(JSON.parse(stale.body), { hello: 'alpha' });
  });

  test('HEAD gets the headers of GET and no body', async () => {
    const answer = await request('HEAD', '/value');
    assert.equal(answer.status, 200);
    assert.equal(answer.headers['etag'], etag);
    assert.equal(answer.body, '');
  });

  test('a text reply carries the percent-decoded param', async () => {
    const answer = await request('GET', '/text/a%20b');
    assert.equal(answer.status, 200);
    assert.equal(answer.headers['content-type'], 'text/plain; charset=utf-8');
    assert.equal(answer.body, 'name=a b');
  });

  test('a thrown ApolloError becomes its status and the exact envelope', async () => {
    const answer = await request('GET', '/missing');
    assert.equal(answer.status, 404);
    assert.equal(answer.headers['content-type'], 'application/json');
    assert.equal(answer.body, '{"type":"error","error":"x","error_code":404}');
  });

  test('an error reply is its status, the exact envelope and its ETag; If-None-Match never makes it a 304', async () => {
    for (const headers of [{}, { 'If-None-Match': '"unset-7"' }]) {
      const answer = await request('GET', '/unset', headers);
      assert.equal(answer.status, 404);
      assert.equal(answer.headers['etag'], '"unset-7"');
      assert.equal(answer.headers['content-type'], 'application/json');
      assert.equal(answer.body, '{"type":"error","error":"y is not set","error_code":404}');
    }
    const head = await request('HEAD', '/unset');
    assert.equal(head.status, 404);
    assert.equal(head.headers['etag'], '"unset-7"');
    assert.equal(head.body, '');
  });

  test('a thrown plain Error is a 500 with the envelope and is reported, without its message', async () => {
    const before = unexpected.length;
    const answer = await request('GET', '/boom');
    assert.equal(answer.status, 500);
    assert.equal(answer.headers['content-type'], 'application/json');
    assert.deepEqual(JSON.parse(answer.body), { type: 'error', error: 'internal error', error_code: 500 });
    assert.ok(!answer.body.includes('secret detail'));
    assert.equal(unexpected.length, before + 1);
    assert.equal((unexpected.at(-1) as Error).message, 'secret detail');
  });

  test('unknown path 404, other method 405 with Allow, both as envelopes', async () => {
    const missing = await request('GET', '/nowhere');
    assert.equal(missing.status, 404);
    assert.equal(JSON.parse(missing.body).error_code, 404);
    const wrong = await request('DELETE', '/value');
    assert.equal(wrong.status, 405);
    assert.equal(wrong.headers['allow'], 'GET, HEAD');
    assert.deepEqual(JSON.parse(wrong.body), { type: 'error', error: 'method DELETE is not allowed here', error_code: 405 });
  });

  test('a request body reaches the handler, and one over the limit is a 413', async () => {
    const small = await request('PATCH', '/echo', { 'Content-Type': 'application/json' }, '{"a":1}');
    assert.equal(small.status, 200);
    assert.deepEqual(JSON.parse(small.body), { got: '{"a":1}' });
    const big = await request('PATCH', '/echo', {}, 'x'.repeat(100));
    assert.equal(big.status, 413);
    assert.equal(JSON.parse(big.body).error_code, 413);
  });

  test('bytes the HTTP parser rejects get a 400 with the envelope', async () => {
    const response = await raw('GARBAGE\r\n\r\n');
    const [head = '', body] = response.split('\r\n\r\n');
    assert.match(head, /^HTTP\/1\.1 400 Bad Request\r\n/);
    assert.match(head, /\r\nContent-Type: application\/json\r\n/);
    assert.equal(body, '{"type":"error","error":"malformed HTTP request","error_code":400}');
    assert.match(head, new RegExp(`\r\nContent-Length: ${Buffer.byteLength(body ?? '')}\r\n`));
  });
});

describe('change-waits in routeRequests', () => {
  let dir: string;
  let socketPath: string;
  let server: http.Server;
  let revision = 1;
  const topics: string[] = [];
  let begun = 0;
  let ended = 0;
  const wakers = new Set<() => void>();
  /** The value of /maybe; a 404 reply with an ETag while undefined. */
  let maybe: string | undefined;
  const routes: Route<null>[] = [
    {
      method: 'GET',
      path: '/maybe',
      handler: () =>
        maybe === undefined ? errorReply('not-found', 'maybe is not set', `"m${revision}"`) : text(maybe, { etag: `"m${revision}"` }),
      waitsOn: () => 'maybe',
    },
    {
      method: 'GET',
      path: '/thing/:name',
      handler: () => text(`r${revision}`, { etag: `"r${revision}"` }),
      waitsOn: (request) => `thing:${request.params['name'] ?? ''}`,
    },
  ];

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'devapollo-router-waits-'));
    socketPath = path.join(dir, 'sock');
    server = http.createServer(
      routeRequests(routes, {
        contextOf: () => null,
        maxBodyBytes: 16,
        onUnexpected: () => undefined,
        waits: {
          next: (_context, topic, timeoutMs, signal) =>
            new Promise<boolean>((resolve) => {
              topics.push(topic);
              const timer = setTimeout(() => resolve(false), timeoutMs);
              const wake = () => {
                clearTimeout(timer);
                wakers.delete(wake);
                resolve(!signal.aborted);
              };
              wakers.add(wake);
              signal.addEventListener('abort', wake, { once: true });
            }),
          begin: () => void begun++,
          end: () => void ended++,
        },
      }),
    );
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const waitFor = async (check: () => boolean) => {
    while (!check()) await new Promise((resolve) => setTimeout(resolve, 5));
  };

  test('a wait answers on a change of its topic, with the new ETag', async () => {
    const answer = new Promise<string>((resolve) => {
      http.get({ socketPath, path: '/thing/a?wait=true&timeout=30', agent: false }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString('utf8')));
        res.on('end', () => resolve(`${res.headers['etag']} ${body}`));
      });
    });
    await waitFor(() => wakers.size === 1);
    assert.deepEqual(topics, ['thing:a']);
    revision++;
    for (const wake of [...wakers]) wake();
    assert.equal(await answer, `"r${revision}" r${revision}`);
    assert.equal(ended, begun);
  });

  test('a 404 reply with an ETag is waited on like any answer: the wait ends when the value is set', async () => {
    const get = (target: string) =>
      new Promise<string>((resolve) => {
        http.get({ socketPath, path: target, agent: false }, (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString('utf8')));
          res.on('end', () => resolve(`${res.statusCode} ${res.headers['etag']} ${body}`));
        });
      });
    const unset = await get('/maybe');
    assert.equal(unset, `404 "m${revision}" {"type":"error","error":"maybe is not set","error_code":404}`);
    const before = topics.length;
    const answer = get(`/maybe?wait=true&timeout=30&etag=${encodeURIComponent(`"m${revision}"`)}`);
    await waitFor(() => topics.length === before + 1);
    assert.equal(topics.at(-1), 'maybe');
    revision++;
    maybe = 'now';
    for (const wake of [...wakers]) wake();
    assert.equal(await answer, `200 "m${revision}" now`);
    assert.equal(ended, begun);
  });

  test('pipelined waits on a connection that closes all end, also those whose response was never attached', async () => {
    const before = { begun, ended };
    const socket = net.connect(socketPath);
    socket.on('error', () => undefined);
    socket.write('GET /thing/b?wait=true&timeout=600 HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(3));
    await waitFor(() => begun - before.begun === 3);
    socket.destroy();
    await waitFor(() => ended - before.ended === 3);
    assert.equal(wakers.size, 0);
  });
});
