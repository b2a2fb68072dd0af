// Route matching without a server: Router.match (404, 405 with Allow, HEAD, table order,
// percent-decoding) and splitTarget.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { json } from '../../../dist/server/http/reply.js';
import { type Route, Router, splitTarget } from '../../../dist/server/http/router.js';
import { ApolloError } from '../../../dist/shared/errors.js';

/** Asserts that `fn` throws an ApolloError with this code; returns it for more checks. */
function throwsApollo(fn: () => unknown, code: string): ApolloError {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof ApolloError, `expected an ApolloError, got ${String(caught)}`);
  assert.equal(caught.code, code);
  return caught;
}

describe('Router.match', () => {
  const noop = () => json(null);
  const routes: Route<null>[] = [
    { method: 'GET', path: '/', handler: noop },
    { method: 'GET', path: '/1.0', handler: noop },
    { method: 'PATCH', path: '/1.0', handler: noop },
    { method: 'GET', path: '/1.0/config', handler: noop },
    { method: 'GET', path: '/1.0/config/:key', handler: noop },
    { method: 'POST', path: '/1.0/things', handler: noop },
    { method: 'DELETE', path: '/1.0/things/:name/files/:file', handler: noop },
  ];
  const router = new Router(routes);

  test('static paths match their own route, by method', () => {
    assert.equal(router.match('GET', '/').route, routes[0]);
    assert.equal(router.match('GET', '/1.0').route, routes[1]);
    assert.equal(router.match('PATCH', '/1.0').route, routes[2]);
    assert.equal(router.match('GET', '/1.0/config').route, routes[3]);
    assert.deepEqual(router.match('GET', '/1.0/config').params, {});
  });

  test('a :param is one percent-decoded segment', () => {
    const plain = router.match('GET', '/1.0/config/user.foo');
    assert.equal(plain.route, routes[4]);
    assert.deepEqual(plain.params, { key: 'user.foo' });
    assert.deepEqual(router.match('GET', '/1.0/config/user.a%20b%2Fc%C3%A9').params, { key: 'user.a b/cé' });
    assert.deepEqual(router.match('DELETE', '/1.0/things/alpha/files/x%3Fy').params, { name: 'alpha', file: 'x?y' });
  });

  test('an unknown path is a 404', () => {
    for (const p of ['/nope', '/1.0/', '/1.0/config/', '/1.0/config/a/b', '/1.0/Config', '']) {
      const error = throwsApollo(() => router.match('GET', p), 'not-found');
      assert.equal(error.status, 404, p);
    }
  });

  test('a known path with another method is a 405 with Allow', () => {
    const onInfo = throwsApollo(() => router.match('DELETE', '/1.0'), 'method-not-allowed');
    assert.equal(onInfo.status, 405);
    assert.equal(onInfo.headers['Allow'], 'GET, HEAD, PATCH');
    const onThings = throwsApollo(() => router.match('GET', '/1.0/things'), 'method-not-allowed');
    assert.equal(onThings.headers['Allow'], 'POST');
    const onKey = throwsApollo(() => router.match('PUT', '/1.0/config/user.foo'), 'method-not-allowed');
    assert.equal(onKey.headers['Allow'], 'GET, HEAD');
  });

  test('HEAD matches GET routes, and only those', () => {
    assert.equal(router.match('HEAD', '/1.0').route, routes[1]);
    assert.deepEqual(router.match('HEAD', '/1.0/config/user.x').params, { key: 'user.x' });
    throwsApollo(() => router.match('HEAD', '/1.0/things'), 'method-not-allowed');
  });

  test('the first route in table order wins, whichever lookup finds it', () => {
    const shadowing: Route<null>[] = [
      { method: 'GET', path: '/a/:x', handler: noop },
      { method: 'GET', path: '/a/fixed', handler: noop },
      { method: 'GET', path: '/b/fixed', handler: noop },
      { method: 'GET', path: '/b/:y', handler: noop },
      { method: 'PUT', path: '/c/:z', handler: noop },
      { method: 'GET', path: '/c/:w', handler: noop },
    ];
    const table = new Router(shadowing);
    assert.equal(table.match('GET', '/a/fixed').route, shadowing[0]);
    assert.deepEqual(table.match('GET', '/a/fixed').params, { x: 'fixed' });
    assert.equal(table.match('GET', '/b/fixed').route, shadowing[2]);
    assert.deepEqual(table.match('GET', '/b/other').params, { y: 'other' });
    assert.deepEqual(table.match('GET', '/c/one').params, { w: 'one' });
    assert.deepEqual(table.match('PUT', '/c/one').params, { z: 'one' });
    throwsApollo(() => table.match('GET', '/b/'), 'not-found');
    assert.equal(throwsApollo(() => table.match('POST', '/c/one'), 'method-not-allowed').headers['Allow'], 'PUT, GET, HEAD');
  });

  test('invalid percent-encoding in a param is a 400', () => {
    for (const p of ['/1.0/config/%', '/1.0/config/%zz', '/1.0/config/%C3']) {
      const error = throwsApollo(() => router.match('GET', p), 'bad-request');
      assert.equal(error.status, 400);
    }
  });
});

describe('splitTarget', () => {
  test('splits the path from the query and parses the query', () => {
    const { path: p, query } = splitTarget('/1.0/config/user.foo?wait=true&etag=%22abc%22&timeout=5');
    assert.equal(p, '/1.0/config/user.foo');
    assert.equal(query.get('wait'), 'true');
    assert.equal(query.get('etag'), '"abc"');
    assert.equal(query.get('timeout'), '5');
  });

  test('without a query the path is the whole target and the query is empty', () => {
    const { path: p, query } = splitTarget('/1.0');
    assert.equal(p, '/1.0');
    assert.equal([...query].length, 0);
    assert.equal(splitTarget('/?').path, '/');
  });

  test('the path stays raw; only the router decodes params', () => {
    assert.equal(splitTarget('/1.0/config/a%2Fb?x=1').path, '/1.0/config/a%2Fb');
  });

  test('a target that is not a path is a 400', () => {
    for (const t of ['', '*', 'http://apollo/1.0', '1.0', '?x=1']) {
      throwsApollo(() => splitTarget(t), 'bad-request');
    }
  });
});
