// The `devapollo/guest-client` export as a program imports it, by the package's name
// (Node resolves a package's own name through its exports map): the client, and the
// error class its failures are instances of, with their stable code.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ApolloError, answerLimits, defaultSocketPath, errorFaces, GuestClient, rateLimitRetries } from 'devapollo/guest-client';
import { ApolloError as InternalApolloError } from '../../dist/shared/errors.js';

describe('devapollo/guest-client', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'devapollo-export-'));
  const socketPath = path.join(dir, 'sock');
  // A stand-in for the daemon: the test is about the export, not the daemon's answers.
  /** Requests seen per path, and how many 429s each throttled path answers before a 200. */
  const seen = new Map<string, number>();
  const throttled: Record<string, { refusals: number; retryAfter: string }> = {
    '/1.0/config/user.twice': { refusals: 2, retryAfter: '0' },
    '/1.0/config/user.always': { refusals: Infinity, retryAfter: '0' },
    '/1.0/config/user.hour': { refusals: Infinity, retryAfter: '3600' },
  };
  const server = http.createServer((req, res) => {
    const count = (seen.get(req.url ?? '') ?? 0) + 1;
    seen.set(req.url ?? '', count);
    const throttle = throttled[req.url ?? ''];
    if (throttle !== undefined && count <= throttle.refusals) {
      res.writeHead(429, { 'Content-Type': 'application/json', 'Retry-After': throttle.retryAfter });
      res.end(JSON.stringify({ type: 'error', error: 'too many requests', error_code: 429 }));
      return;
    }
    if (req.url === '/1.0/config/user.set' || throttle !== undefined) {
      res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8', ETag: '"1"' }).end('value');
      return;
    }
    res.writeHead(404, { 'Content-Type': 'application/json' }).end(JSON.stringify({ type: 'error', error: 'not found', error_code: 404 }));
  });

  before(() => new Promise<void>((resolve) => server.listen(socketPath, resolve)));
  after(() => {
    server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('exports the client, its defaults and the error class the CLIs use', () => {
    assert.equal(typeof GuestClient, 'function');
    assert.equal(defaultSocketPath, '/dev/apollo/sock');
    assert.equal(answerLimits.valueBytes, 64 * 1024 * 1024);
    assert.equal(ApolloError, InternalApolloError);
    assert.deepEqual(errorFaces['not-found'], { http: 404, exit: 3 });
  });

  test('a value is read; a daemon error and an absent daemon are ApolloErrors with their code', async () => {
    const client = new GuestClient({ socketPath, connectTimeoutMs: 2000 });
    assert.equal((await client.getText('/1.0/config/user.set')).toString(), 'value');
    await assert.rejects(client.getText('/1.0/config/user.unset'), (error: unknown) => {
      assert.ok(error instanceof ApolloError);
      assert.equal(error.code, 'not-found');
      assert.equal(error.status, 404);
      assert.equal(error.exitCode, 3);
      return true;
    });
    const absent = new GuestClient({ socketPath: path.join(dir, 'no-such-socket'), connectTimeoutMs: 200 });
    await assert.rejects(absent.getJson('/1.0'), (error: unknown) => {
      assert.ok(error instanceof ApolloError);
      assert.equal(error.code, 'no-daemon');
      assert.equal(error.exitCode, 69);
      return true;
    });
  });

  test('a 429 is retried after its Retry-After, at most 3 times; a wait of more than 5 s is not slept through', async () => {
    assert.deepEqual(rateLimitRetries, { attempts: 3, longestWaitMs: 5000 });
    const client = new GuestClient({ socketPath, connectTimeoutMs: 2000 });
    assert.equal((await client.getText('/1.0/config/user.twice')).toString(), 'value');
    assert.equal(seen.get('/1.0/config/user.twice'), 3);
    const refused = (error: unknown) => error instanceof ApolloError && error.code === 'too-many-requests' && error.exitCode === 1;
    await assert.rejects(client.getText('/1.0/config/user.always'), refused);
    assert.equal(seen.get('/1.0/config/user.always'), 1 + rateLimitRetries.attempts);
    await assert.rejects(client.getText('/1.0/config/user.hour'), refused);
    assert.equal(seen.get('/1.0/config/user.hour'), 1);
  });
});
