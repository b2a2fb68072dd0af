// Replies without a daemon: what errorReply, fixedError and rawResponse make, byte for
// byte (sendReply and sendError are exercised on a real server in pipeline.unit.test).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { errorReply, fixedError, json, rawResponse, text } from '../../../dist/server/http/reply.js';
import { ApolloError } from '../../../dist/shared/errors.js';

describe('replies', () => {
  test('json and text set their type, and status and etag only when given', () => {
    assert.deepEqual(json([1]), { contentType: 'application/json', body: '[1]' });
    assert.deepEqual(json({}, { status: 201, etag: '"e"' }), { contentType: 'application/json', body: '{}', status: 201, etag: '"e"' });
    assert.deepEqual(text('v', { etag: '"t"' }), { contentType: 'text/plain; charset=utf-8', body: 'v', etag: '"t"' });
  });

  test("an error reply is the error's status and envelope, with the ETag it answers for", () => {
    assert.deepEqual(errorReply('not-found', 'config key user.x is not set', '"k1"'), {
      contentType: 'application/json',
      body: '{"type":"error","error":"config key user.x is not set","error_code":404}',
      status: 404,
      etag: '"k1"',
    });
  });

  test('a fixed error carries its headers and exact length; its raw form closes the connection unless it says otherwise', () => {
    const fixed = fixedError(new ApolloError('too-many-requests', 'slow down é', { headers: { 'Retry-After': '2' } }));
    const body = '{"type":"error","error":"slow down é","error_code":429}';
    assert.deepEqual(fixed, {
      status: 429,
      headers: { 'Retry-After': '2', 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) },
      body,
    });
    assert.equal(
      rawResponse(fixed),
      `HTTP/1.1 429 Too Many Requests\r\nRetry-After: 2\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
    const keeps = rawResponse({ status: 503, headers: { Connection: 'keep-alive' }, body: '' });
    assert.equal(keeps, 'HTTP/1.1 503 Service Unavailable\r\nConnection: keep-alive\r\n\r\n');
  });
});
