// CLI output: CSV quoting, JSON rendering, when colour is used, and runCli's error line and
// exit code.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ApolloError } from '../../dist/shared/errors.js';
import { renderCsv, renderEventLine, renderJson, renderTable, runCli, safeJson, useColor, visible } from '../../dist/shared/output.js';

describe('control characters from elsewhere', () => {
  const hostile = 'a\tb\nc\r\u001b]0;t\u0007\u001b[2J\u007f\u009b\u202e\u2028z';

  test('visible escapes them all, and leaves other text alone', () => {
    assert.equal(visible(hostile), 'a\\tb\\nc\\r\\x1b]0;t\\x07\\x1b[2J\\x7f\\x9b\\u202e\\u2028z');
    assert.equal(visible('plain ü ✓ \\ "quoted"'), 'plain ü ✓ \\ "quoted"');
  });

  test('table cells show them escaped: one line per row, no escape sequence', async () => {
    const table = await renderTable(['KEY', 'VALUE'], [['user.t', hostile]]);
    assert.equal(table.split('\n').length, 5);
    assert.match(table, /a\\tb\\nc\\r\\x1b\]0;t/);
    assert.equal(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e\u2028]/.test(table), false);
  });

  test('event lines show them escaped, in every field', async () => {
    const line = await renderEventLine({
      type: 'config',
      timestamp: hostile,
      container: hostile,
      metadata: { key: hostile, old_value: hostile, value: hostile },
    });
    assert.equal(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e\u2028]/.test(line), false);
    assert.ok(line.endsWith('\n') && line.indexOf('\n') === line.length - 1);
  });

  test('JSON escapes what JSON.stringify leaves raw, and means the same', () => {
    const value = { [hostile]: hostile };
    for (const text of [safeJson(value), renderJson(value)]) {
      assert.equal(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e\u2028]/.test(text), false);
      assert.deepEqual(JSON.parse(text), value);
    }
  });
});

describe('renderTable', () => {
  test('a head prints as the first row', async () => {
    const lines = (await renderTable(['NAME', 'STATE'], [['alpha', 'Running']])).split('\n');
    assert.match(lines[1] ?? '', /^│ NAME +│ STATE +│$/);
    assert.match(lines[2] ?? '', /^│ alpha +│ Running +│$/);
  });

  test('a head of empty strings (names and values) prints no empty header row', async () => {
    const lines = (await renderTable(['', ''], [['version', '0.1.0']])).split('\n');
    assert.match(lines[0] ?? '', /^┌─+┬─+┐$/);
    assert.match(lines[1] ?? '', /^│ version +│ 0\.1\.0 +│$/);
  });
});

describe('renderCsv', () => {
  test('plain fields are not quoted; records end with CRLF', () => {
    assert.equal(
      renderCsv(
        ['name', 'state'],
        [
          ['alpha', 'Started'],
          ['beta', 'Ready'],
        ],
      ),
      'name,state\r\nalpha,Started\r\nbeta,Ready\r\n',
    );
  });

  test('the head alone when there are no rows', () => {
    assert.equal(renderCsv(['a', 'b'], []), 'a,b\r\n');
  });

  test('fields with commas, quotes, CR or LF are quoted, quotes doubled', () => {
    const csv = renderCsv(
      ['k', 'v'],
      [
        ['a,b', 'say "hi"'],
        ['line\nbreak', 'cr\rhere'],
        ['crlf\r\nboth', ''],
        [' spaced ', '"'],
      ],
    );
    assert.equal(csv, 'k,v\r\n' + '"a,b","say ""hi"""\r\n' + '"line\nbreak","cr\rhere"\r\n' + '"crlf\r\nboth",\r\n' + ' spaced ,""""\r\n');
  });
});

describe('renderJson', () => {
  test('two-space indented with a trailing newline', () => {
    assert.equal(renderJson({ a: [1, 'x'], b: null }), '{\n  "a": [\n    1,\n    "x"\n  ],\n  "b": null\n}\n');
    assert.equal(renderJson([]), '[]\n');
    assert.deepEqual(JSON.parse(renderJson({ k: 'v' })), { k: 'v' });
  });
});

describe('useColor', () => {
  const fakeStream = (isTTY: boolean) => ({ isTTY }) as unknown as NodeJS.WriteStream;

  function withNoColor(value: string | undefined, fn: () => void): void {
    const saved = process.env['NO_COLOR'];
    try {
      if (value === undefined) delete process.env['NO_COLOR'];
      else process.env['NO_COLOR'] = value;
      fn();
    } finally {
      if (saved === undefined) delete process.env['NO_COLOR'];
      else process.env['NO_COLOR'] = saved;
    }
  }

  test('colour on a terminal when NO_COLOR is unset or empty', () => {
    withNoColor(undefined, () => assert.equal(useColor(fakeStream(true)), true));
    withNoColor('', () => assert.equal(useColor(fakeStream(true)), true));
  });

  test('no colour with NO_COLOR set, even on a terminal', () => {
    withNoColor('1', () => assert.equal(useColor(fakeStream(true)), false));
    withNoColor('0', () => assert.equal(useColor(fakeStream(true)), false));
  });

  test('no colour on a stream that is not a terminal', () => {
    withNoColor(undefined, () => {
      assert.equal(useColor(fakeStream(false)), false);
      assert.equal(useColor({} as NodeJS.WriteStream), false);
    });
  });
});

describe('runCli', () => {
  /**
   * Runs runCli capturing stderr, from an unset exit code; restores stderr and the exit
   * code it found (node:test sets it when an earlier test failed) afterwards.
   */
  async function capture(main: () => Promise<void>): Promise<{ stderr: string; exitCode: typeof process.exitCode }> {
    const original = process.stderr.write;
    const exitCodeBefore = process.exitCode;
    process.exitCode = undefined;
    let stderr = '';
    process.stderr.write = ((chunk: string | Uint8Array) => {
      stderr += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
      return true;
    }) as typeof process.stderr.write;
    try {
      await runCli(main);
      return { stderr, exitCode: process.exitCode };
    } finally {
      process.stderr.write = original;
      process.exitCode = exitCodeBefore;
    }
  }

  test('success writes nothing and leaves the exit code alone', async () => {
    let ran = false;
    const result = await capture(async () => {
      ran = true;
    });
    assert.equal(ran, true);
    assert.equal(result.stderr, '');
    assert.equal(result.exitCode, undefined);
  });

  test('an ApolloError gives its exit code and one Error line', async () => {
    const result = await capture(async () => {
      throw new ApolloError('not-found', 'key user.foo is not set');
    });
    assert.equal(result.exitCode, 3);
    assert.equal(result.stderr, 'Error: key user.foo is not set\n');
  });

  test('each code ends with its own exit code', async () => {
    for (const [code, exit] of [
      ['unavailable', 69],
      ['wait-timeout', 75],
      ['forbidden', 4],
      ['usage', 2],
    ] as const) {
      const result = await capture(async () => {
        throw new ApolloError(code, 'x');
      });
      assert.equal(result.exitCode, exit, code);
    }
  });

  test('a message is printed with its control characters escaped', async () => {
    const result = await capture(async () => {
      throw new ApolloError('forbidden', 'Forbidden \u001b]0;pwned\u0007\u001b[2J\r');
    });
    assert.equal(result.stderr, 'Error: Forbidden \\x1b]0;pwned\\x07\\x1b[2J\\r\n');
  });

  test('only the first line of a multi-line message is printed', async () => {
    const result = await capture(async () => {
      throw new ApolloError('bad-request', 'first line\nsecond line');
    });
    assert.equal(result.stderr, 'Error: first line\n');
    assert.equal(result.exitCode, 2);
  });

  test('any other error exits 1, and a usage text follows the error line', async () => {
    const plain = await capture(async () => {
      throw new Error('boom');
    });
    assert.equal(plain.exitCode, 1);
    assert.equal(plain.stderr, 'Error: boom\n');

    const withUsage = await capture(async () => {
      throw Object.assign(new Error('unknown argument'), { usage: 'Usage: devapollo-guest get KEY' });
    });
    assert.equal(withUsage.stderr, 'Error: unknown argument\n\nUsage: devapollo-guest get KEY\n');

    const thrownString = await capture(async () => {
      throw 'just a string';
    });
    assert.equal(thrownString.stderr, 'Error: just a string\n');
    assert.equal(thrownString.exitCode, 1);
  });

  test('a thrown undefined still gives an Error line and exit 1', async () => {
    const result = await capture(async () => {
      throw undefined;
    });
    assert.equal(result.stderr, 'Error: undefined\n');
    assert.equal(result.exitCode, 1);
  });
});
