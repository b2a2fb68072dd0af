// The one error type: each code's HTTP and exit faces, rebuilding errors from the wire,
// and the JSON error envelope.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ApolloError, type ErrorCode, errorEnvelope, errorFaces, errorFromResponse } from '../../dist/shared/errors.js';

const expectedFaces: Record<ErrorCode, { http: number; exit: number }> = {
  'bad-request': { http: 400, exit: 2 },
  unauthorized: { http: 401, exit: 4 },
  forbidden: { http: 403, exit: 4 },
  'not-found': { http: 404, exit: 3 },
  'method-not-allowed': { http: 405, exit: 1 },
  'request-timeout': { http: 408, exit: 1 },
  conflict: { http: 409, exit: 1 },
  'payload-too-large': { http: 413, exit: 2 },
  'uri-too-long': { http: 414, exit: 2 },
  'too-many-requests': { http: 429, exit: 1 },
  'header-too-large': { http: 431, exit: 2 },
  internal: { http: 500, exit: 1 },
  unavailable: { http: 503, exit: 69 },
  usage: { http: 400, exit: 2 },
  'no-daemon': { http: 503, exit: 69 },
  'wait-timeout': { http: 504, exit: 75 },
};

describe('ApolloError faces', () => {
  test('the table holds exactly the expected codes', () => {
    assert.deepEqual(Object.keys(errorFaces).sort(), Object.keys(expectedFaces).sort());
  });

  for (const [code, face] of Object.entries(expectedFaces) as [ErrorCode, { http: number; exit: number }][]) {
    test(`${code} is HTTP ${face.http} and exit ${face.exit}`, () => {
      const error = new ApolloError(code, `message for ${code}`);
      assert.equal(error.status, face.http);
      assert.equal(error.exitCode, face.exit);
      assert.equal(error.code, code);
      assert.equal(error.message, `message for ${code}`);
    });
  }

  test('an ApolloError is an Error with its name, headers and cause', () => {
    const cause = new Error('root');
    const error = new ApolloError('too-many-requests', 'slow down', { cause, headers: { 'Retry-After': '5' } });
    assert.ok(error instanceof Error);
    assert.equal(error.name, 'ApolloError');
    assert.equal(error.cause, cause);
    assert.deepEqual(error.headers, { 'Retry-After': '5' });
    const bare = new ApolloError('internal', 'x');
    assert.deepEqual(bare.headers, {});
    assert.equal('cause' in bare, false);
  });
});

describe('errorFromResponse', () => {
  test('rebuilds the code from every status the daemon sends, and the message from the envelope', () => {
    const daemonCodes: ErrorCode[] = [
      'bad-request',
      'unauthorized',
      'forbidden',
      'not-found',
      'method-not-allowed',
      'request-timeout',
      'conflict',
      'payload-too-large',
      'uri-too-long',
      'too-many-requests',
      'header-too-large',
      'internal',
      'unavailable',
    ];
    for (const code of daemonCodes) {
      const status = errorFaces[code].http;
      const error = errorFromResponse(status, errorEnvelope(status, `why ${code}`));
      assert.ok(error instanceof ApolloError);
      assert.equal(error.code, code, `status ${status}`);
      assert.equal(error.status, status);
      assert.equal(error.exitCode, errorFaces[code].exit);
      assert.equal(error.message, `why ${code}`);
    }
  });

  test('a 404 from the daemon makes the guest exit 3', () => {
    const error = errorFromResponse(404, '{"type":"error","error":"not found","error_code":404}');
    assert.equal(error.code, 'not-found');
    assert.equal(error.exitCode, 3);
    assert.equal(error.message, 'not found');
  });

  test('a body that is not an envelope keeps a generic message', () => {
    for (const body of ['', '<html>502</html>', 'null', '"text"', '[1]', '{"type":"sync","error":"x"}', '{"type":"error","error":42}']) {
      const error = errorFromResponse(403, body);
      assert.equal(error.code, 'forbidden', body);
      assert.equal(error.message, 'the daemon answered with status 403', body);
    }
  });

  test('statuses outside the table fall back by class', () => {
    assert.equal(errorFromResponse(418, '').code, 'bad-request');
    assert.equal(errorFromResponse(502, 'Bad Gateway').code, 'internal');
    assert.equal(errorFromResponse(502, 'Bad Gateway').message, 'the daemon answered with status 502');
    assert.equal(errorFromResponse(599, '').exitCode, 1);
  });
});

describe('errorEnvelope', () => {
  test('exact bytes', () => {
    assert.equal(errorEnvelope(404, 'not found'), '{"type":"error","error":"not found","error_code":404}');
    assert.equal(errorEnvelope(400, 'a "quoted"\nline'), '{"type":"error","error":"a \\"quoted\\"\\nline","error_code":400}');
    assert.equal(errorEnvelope(500, 'é'), '{"type":"error","error":"é","error_code":500}');
  });
});
