// cloud-init meta-data: the generated instance-id and local-hostname, user.meta-data
// appended verbatim, and top-level overrides that replace a generated key instead of repeating it.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseDocument } from 'yaml';
import { buildMetaData } from '../../../dist/server/guest/meta-data.js';

/** Parses a meta-data document strictly: a repeated key or any YAML error fails the test. */
function parseStrict(text: string): Record<string, unknown> {
  const doc = parseDocument(text, { uniqueKeys: true });
  assert.deepEqual(
    doc.errors.map((e) => e.message),
    [],
    `invalid YAML:\n${text}`,
  );
  return doc.toJS() as Record<string, unknown>;
}

/** How many lines start (at column 0) with `key:`. */
function topLevelCount(text: string, key: string): number {
  return text.split('\n').filter((line) => line.startsWith(`${key}:`)).length;
}

describe('buildMetaData', () => {
  test('without user meta-data it is exactly the generated document', () => {
    assert.equal(buildMetaData('alpha', undefined), '#cloud-config\ninstance-id: alpha\nlocal-hostname: alpha\n');
    assert.deepEqual(parseStrict(buildMetaData('alpha', undefined)), { 'instance-id': 'alpha', 'local-hostname': 'alpha' });
  });

  test('an empty user meta-data adds nothing', () => {
    assert.equal(buildMetaData('alpha', ''), '#cloud-config\ninstance-id: alpha\nlocal-hostname: alpha\n');
  });

  test('user meta-data is appended verbatim, with a trailing newline', () => {
    const user = 'foo: bar\nlist:\n  - 1\n  - 2\n';
    const out = buildMetaData('alpha', user);
    assert.equal(out, `#cloud-config\ninstance-id: alpha\nlocal-hostname: alpha\n${user}`);
    assert.deepEqual(parseStrict(out), { 'instance-id': 'alpha', 'local-hostname': 'alpha', foo: 'bar', list: [1, 2] });
  });

  test('user meta-data is appended verbatim, without a trailing newline', () => {
    const out = buildMetaData('alpha', 'foo: bar');
    assert.equal(out, '#cloud-config\ninstance-id: alpha\nlocal-hostname: alpha\nfoo: bar');
  });

  test('a top-level instance-id replaces the generated one, keeping its position', () => {
    const out = buildMetaData('alpha', 'instance-id: custom-id\nfoo: bar\n');
    assert.equal(out, '#cloud-config\ninstance-id: custom-id\nlocal-hostname: alpha\nfoo: bar\n');
    assert.equal(topLevelCount(out, 'instance-id'), 1);
    assert.deepEqual(parseStrict(out), { 'instance-id': 'custom-id', 'local-hostname': 'alpha', foo: 'bar' });
  });

  test('a top-level local-hostname replaces the generated one', () => {
    const out = buildMetaData('alpha', 'foo: bar\nlocal-hostname: web-1\n');
    assert.equal(topLevelCount(out, 'local-hostname'), 1);
    assert.equal(topLevelCount(out, 'instance-id'), 1);
    assert.deepEqual(parseStrict(out), { 'instance-id': 'alpha', 'local-hostname': 'web-1', foo: 'bar' });
  });

  test('both keys overridden at once, with spacing variations', () => {
    const out = buildMetaData('alpha', 'local-hostname:   h2\ninstance-id : i2\n');
    assert.deepEqual(parseStrict(out), { 'instance-id': 'i2', 'local-hostname': 'h2' });
    assert.ok(!out.includes('alpha'), out);
  });

  test('an indented instance-id under another key is not an override', () => {
    const user = 'nested:\n  instance-id: inner\n  local-hostname: inner-host\n';
    const out = buildMetaData('alpha', user);
    assert.equal(out, `#cloud-config\ninstance-id: alpha\nlocal-hostname: alpha\n${user}`);
    assert.deepEqual(parseStrict(out), {
      'instance-id': 'alpha',
      'local-hostname': 'alpha',
      nested: { 'instance-id': 'inner', 'local-hostname': 'inner-host' },
    });
  });

  test('a key that merely starts with a generated key is not an override', () => {
    const out = buildMetaData('alpha', 'instance-id-extra: x\n');
    assert.deepEqual(parseStrict(out), { 'instance-id': 'alpha', 'local-hostname': 'alpha', 'instance-id-extra': 'x' });
  });

  test('a commented-out instance-id is not an override', () => {
    const out = buildMetaData('alpha', '# instance-id: nope\n');
    assert.deepEqual(parseStrict(out), { 'instance-id': 'alpha', 'local-hostname': 'alpha' });
  });

  test('CRLF user meta-data: overrides lose their CR, other lines stay verbatim', () => {
    const out = buildMetaData('alpha', 'instance-id: crlf-id\r\nfoo: bar\r\n');
    assert.equal(out, '#cloud-config\ninstance-id: crlf-id\nlocal-hostname: alpha\nfoo: bar\r\n');
    assert.equal(topLevelCount(out, 'instance-id'), 1);
    assert.deepEqual(parseStrict(out), { 'instance-id': 'crlf-id', 'local-hostname': 'alpha', foo: 'bar' });
  });

  test('CRLF user meta-data without overrides is appended verbatim', () => {
    const user = 'foo: bar\r\nbaz: qux\r\n';
    const out = buildMetaData('alpha', user);
    assert.equal(out, `#cloud-config\ninstance-id: alpha\nlocal-hostname: alpha\n${user}`);
    assert.deepEqual(parseStrict(out), { 'instance-id': 'alpha', 'local-hostname': 'alpha', foo: 'bar', baz: 'qux' });
  });
});

describe('buildMetaData: overrides spanning lines or quoted', () => {
  test('an override whose value continues on indented lines keeps them with it', () => {
    const out = buildMetaData('alpha', 'foo: bar\ninstance-id:\n  abc\n');
    assert.deepEqual(parseStrict(out), { 'instance-id': 'abc', 'local-hostname': 'alpha', foo: 'bar' });
  });

  test('an override written as a block scalar keeps its value', () => {
    const out = buildMetaData('alpha', 'instance-id: |\n  x\nfoo: 1\n');
    assert.deepEqual(parseStrict(out), { 'instance-id': 'x\n', 'local-hostname': 'alpha', foo: 1 });
  });

  test('a quoted instance-id key also replaces the generated one', () => {
    const out = buildMetaData('alpha', '"instance-id": q\n');
    assert.deepEqual(parseStrict(out), { 'instance-id': 'q', 'local-hostname': 'alpha' });
  });
});
