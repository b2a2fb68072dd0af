// Workload identity tokens end to end: a real daemon, real containers asking on the real
// socket, and a verifier devapollo did not write (Debian's PyJWT) fed the JWK Set from
// DIR/public/jwks.json and from `devapollo identity jwks`.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe } from 'node:test';
import { eventually, hostCli, type RunResult, run, TestDaemon } from '../../helpers/daemon.js';
import { curlUnavailable, gatedTest } from '../../helpers/env.js';
import { childrenOf } from '../../helpers/procs.js';
import { systemPython } from '../../helpers/runtimes.js';

/**
 * PyJWT, as a relying party uses it: argv[1] the token, argv[2] the audience, argv[3] the
 * issuer; the JWK Set on stdin. Prints the claims, or the exception's name and exits 2.
 */
const pyjwtVerify = `
import json, sys, jwt
token, audience, issuer = sys.argv[1], sys.argv[2], sys.argv[3]
keys = jwt.PyJWKSet.from_dict(json.load(sys.stdin))
kid = jwt.get_unverified_header(token).get("kid")
key = next((k for k in keys.keys if k.key_id == kid), None)
if key is None:
    print("NoSuchKey")
    sys.exit(2)
try:
    claims = jwt.decode(token, key.key, algorithms=["ES256"], audience=audience, issuer=issuer,
                        options={"require": ["iss", "sub", "aud", "iat", "nbf", "exp", "jti"]})
except jwt.PyJWTError as error:
    print(type(error).__name__)
    sys.exit(2)
print(json.dumps(claims))
`;

/** PyJWT signing `claims` with a fresh P-256 key it made, under header kid `kid`. */
const pyjwtForge = `
import json, sys, jwt
from cryptography.hazmat.primitives.asymmetric import ec
claims, kid = json.loads(sys.argv[1]), sys.argv[2]
print(jwt.encode(claims, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256", headers={"kid": kid}))
`;

const pyjwtUnavailable: string | false =
  curlUnavailable ||
  (fs.existsSync(systemPython) && (await run(systemPython, ['-c', 'import jwt, cryptography'])).code === 0
    ? false
    : 'needs python3-jwt and python3-cryptography (scripts/install-test-deps.sh)');

interface Claims {
  iss: string;
  sub: string;
  aud: string;
  iat: number;
  nbf: number;
  exp: number;
  jti: string;
  devapollo: { container: string; instance: string; host: string; privileged: boolean };
}

function decodePart(token: string, index: number): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[index] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
}

describe('workload identity tokens', () => {
  let daemon: TestDaemon;
  const test = gatedTest(pyjwtUnavailable);
  const issuer = 'https://apollo.example.test';
  const trustDomain = 'example.test';
  let host: string;

  before(async () => {
    if (pyjwtUnavailable) return;
    daemon = await TestDaemon.start({ args: ['--identity-issuer', issuer, '--trust-domain', trustDomain] });
    await daemon.launch('alpha');
    await daemon.launch('beta', { privileged: true });
    host = (await run('hostname', [])).out.trim();
  });

  after(async () => {
    await daemon?.destroy();
  });

  /** A token from inside `name`, with the guest client; fails the test if it cannot get one. */
  async function tokenOf(name: string, audience: string, ttl?: number): Promise<string> {
    const result = await daemon.guest(name, ['token', '--audience', audience, ...(ttl === undefined ? [] : ['--ttl', String(ttl)])]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.out, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\n$/, 'the token and a newline');
    return result.out.trim();
  }

  const jwksFile = () => fs.readFileSync(path.join(daemon.dir, 'public', 'jwks.json'), 'utf8');
  async function jwksCli(): Promise<string> {
    const result = await daemon.cli(['identity', 'jwks']);
    assert.equal(result.code, 0, result.stderr);
    return result.out;
  }

  function pyjwt(token: string, jwks: string, audience: string): Promise<RunResult> {
    return run(systemPython, ['-c', pyjwtVerify, token, audience, issuer], { input: jwks });
  }

  async function verifiedByPyjwt(token: string, jwks: string, audience: string): Promise<Claims> {
    const result = await pyjwt(token, jwks, audience);
    assert.equal(result.code, 0, `PyJWT refused it: ${result.out}${result.stderr}`);
    return JSON.parse(result.out) as Claims;
  }

  async function refusedByPyjwt(token: string, jwks: string, audience: string, error: string): Promise<void> {
    const result = await pyjwt(token, jwks, audience);
    assert.equal(result.code, 2, `PyJWT accepted it: ${result.out}${result.stderr}`);
    assert.equal(result.out.trim(), error);
  }

  function verifyCli(token: string, audience?: string): Promise<RunResult> {
    return daemon.cli(['identity', 'verify', token, ...(audience === undefined ? [] : ['--audience', audience])]);
  }

  async function refusedByCli(token: string, reason: RegExp, audience?: string): Promise<void> {
    const result = await verifyCli(token, audience);
    assert.equal(result.code, 4, `identity verify accepted it: ${result.out}`);
    assert.equal(result.out, '');
    assert.match(result.stderr, /^Error: the token is not valid: /);
    assert.match(result.stderr, reason);
  }

  test("A's token verifies with PyJWT, with the JWK Set from DIR/public/jwks.json and from `identity jwks`, and names A", async () => {
    const token = await tokenOf('alpha', 'vault');
    const header = decodePart(token, 0);
    const jwks = JSON.parse(jwksFile()) as { keys: { kid: string }[] };
    assert.deepEqual(header, { alg: 'ES256', kid: jwks.keys[0]?.kid, typ: 'JWT' });
    assert.deepEqual(JSON.parse(await jwksCli()), jwks);
    for (const source of [jwksFile(), await jwksCli()]) {
      const claims = await verifiedByPyjwt(token, source, 'vault');
      assert.equal(claims.iss, issuer);
      assert.equal(claims.sub, `spiffe://${trustDomain}/devapollo/${host}/alpha`);
      assert.equal(claims.aud, 'vault');
      assert.equal(claims.nbf, claims.iat);
      assert.equal(claims.exp - claims.iat, 300, 'the default ttl');
      assert.match(claims.jti, /^[0-9a-f-]{36}$/);
      assert.deepEqual(Object.keys(claims.devapollo).sort(), ['container', 'host', 'instance', 'privileged']);
      assert.equal(claims.devapollo.container, 'alpha');
      assert.equal(claims.devapollo.host, host);
      assert.equal(claims.devapollo.privileged, false);
      assert.match(claims.devapollo.instance, /^[0-9a-f-]{36}$/);
    }
    // The PEM form, for verifiers that take PEM keys (Vault's jwt_validation_pubkeys).
    const pem = await daemon.cli(['identity', 'jwks', '--format', 'pem']);
    assert.equal(pem.code, 0, pem.stderr);
    assert.match(pem.out, /^-----BEGIN PUBLIC KEY-----\n[\s\S]+\n-----END PUBLIC KEY-----\n$/);
    const withPem = await run(
      systemPython,
      ['-c', 'import sys, jwt; print(jwt.decode(sys.argv[1], sys.stdin.read(), algorithms=["ES256"], audience="vault")["sub"])', token],
      { input: pem.out },
    );
    assert.equal(withPem.out.trim(), `spiffe://${trustDomain}/devapollo/${host}/alpha`, withPem.stderr);
    const verified = await verifyCli(token, 'vault');
    assert.equal(verified.code, 0, verified.stderr);
    assert.equal((JSON.parse(verified.out) as Claims).jti, decodePart(token, 1)['jti']);
    const discovery = JSON.parse(fs.readFileSync(path.join(daemon.dir, 'public', 'openid-configuration'), 'utf8')) as Record<
      string,
      unknown
    >;
    assert.equal(discovery['issuer'], issuer);
    assert.equal(discovery['jwks_uri'], `${issuer}/jwks.json`);
    assert.deepEqual(discovery['id_token_signing_alg_values_supported'], ['ES256']);
  });

  test("B's token names B, another instance; each token gets its own jti", async () => {
    const a = decodePart(await tokenOf('alpha', 'svc'), 1) as unknown as Claims;
    const b = await verifiedByPyjwt(await tokenOf('beta', 'svc'), jwksFile(), 'svc');
    assert.equal(b.sub, `spiffe://${trustDomain}/devapollo/${host}/beta`);
    assert.equal(b.devapollo.container, 'beta');
    assert.equal(b.devapollo.privileged, true);
    assert.notEqual(b.devapollo.instance, a.devapollo.instance);
    assert.notEqual(b.jti, a.jti);
  });

  test('the answer is application/jwt with an ETag; the JWK Set is JSON; the log has container, audience, jti and exp, never the token', async () => {
    const answer = await daemon.curl('alpha', '/1.0/identity/token?audience=https%3A%2F%2Fapi.example.test&ttl=60', ['-i']);
    const [head, body] = answer.out.split('\r\n\r\n') as [string, string];
    assert.match(head, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(head, /\r\nContent-Type: application\/jwt\r\n/i);
    assert.match(head, /\r\nETag: "[0-9a-f-]{36}"\r\n/i);
    const claims = decodePart(body, 1) as unknown as Claims;
    assert.equal(claims.aud, 'https://api.example.test');
    assert.equal(claims.exp - claims.iat, 60);
    const jwks = await daemon.curl('alpha', '/1.0/identity/jwks', ['-i']);
    assert.match(jwks.out, /\r\nContent-Type: application\/json\r\n/i);
    assert.deepEqual(JSON.parse(jwks.out.split('\r\n\r\n')[1] ?? ''), JSON.parse(jwksFile()));
    const line = daemon.stderr.split('\n').find((l) => l.includes(`jti=${claims.jti}`)) ?? '';
    assert.match(line, /identity token issued container=alpha audience=https:\/\/api\.example\.test jti=\S+ exp=\S+/);
    assert.ok(!daemon.stderr.includes(body.split('.')[2] ?? 'x'), 'no signature in the log');
    assert.ok(!daemon.stderr.includes(body.split('.')[1] ?? 'x'), 'no payload in the log');
  });

  test('audience and ttl: required, bounded, and refused with the reason (400; the guest exits 2)', async () => {
    for (const [target, reason] of [
      ['/1.0/identity/token', /audience is required/],
      ['/1.0/identity/token?audience=', /audience must not be empty/],
      ['/1.0/identity/token?audience=a&audience=b', /give audience once/],
      ['/1.0/identity/token?audience=a&ttl=0', /ttl must be a whole number of seconds from 1 to 3600, not \\"0\\"/],
      ['/1.0/identity/token?audience=a&ttl=3601', /not \\"3601\\"/],
      ['/1.0/identity/token?audience=a&ttl=1.5', /not \\"1.5\\"/],
      ['/1.0/identity/token?audience=a&ttl=abc', /not \\"abc\\"/],
      ['/1.0/identity/token?audience=a%0Ab', /audience must be printable/],
      // A line separator (a fake log line), a C1 control, a bidi override, bad UTF-8 (red team).
      ['/1.0/identity/token?audience=a%E2%80%A8INFO%20fake', /audience must be printable/],
      ['/1.0/identity/token?audience=a%C2%85b', /audience must be printable/],
      ['/1.0/identity/token?audience=a%E2%80%AEc', /audience must be printable/],
      ['/1.0/identity/token?audience=a%FF', /audience must be printable/],
      [`/1.0/identity/token?audience=${'a'.repeat(1025)}`, /longer than 1024/],
    ] as const) {
      const answer = await daemon.curl('alpha', target, ['-w', '\n%{http_code}']);
      const [body, status] = answer.out.split('\n') as [string, string];
      assert.equal(status, '400', target);
      assert.equal((JSON.parse(body) as { error_code: number }).error_code, 400);
      assert.match(body, reason, target);
    }
    const bad = await daemon.guest('alpha', ['token', '--audience', 'a', '--ttl', '7200']);
    assert.equal(bad.code, 2);
    assert.equal(bad.out, '');
    assert.match(bad.stderr, /^Error: ttl must be a whole number of seconds from 1 to 3600/);
    const missing = await daemon.guest('alpha', ['token']);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /audience/);
    const longest = decodePart(await tokenOf('alpha', 'a', 3600), 1) as unknown as Claims;
    assert.equal(longest.exp - longest.iat, 3600);
  });

  test('the host and a process in no managed container get 403', async () => {
    const sock = path.join(daemon.dir, 'devapollo', 'sock');
    const curlArgs = ['-sS', '--unix-socket', sock, '-w', '\n%{http_code}', 'http://apollo/1.0/identity/token?audience=vault'];
    const fromHost = await run('curl', curlArgs);
    assert.match(fromHost.out, /\n403$/);
    const unknown = await run('unshare', ['--pid', '--fork', '--kill-child', 'curl', ...curlArgs]);
    assert.match(unknown.out, /\n403$/, unknown.stderr);
    assert.ok(!unknown.out.includes('eyJ'));
  });

  test('security.devapollo.identity=false: its token requests get 403 (the guest exits 4); true again serves it', async () => {
    const refusedValue = await daemon.cli(['config', 'set', 'beta', 'security.devapollo.identity=maybe']);
    assert.equal(refusedValue.code, 2);
    assert.match(refusedValue.stderr, /must be "true" or "false"/);
    assert.equal((await daemon.cli(['config', 'set', 'beta', 'security.devapollo.identity=false'])).code, 0);
    try {
      const refused = await daemon.guest('beta', ['token', '--audience', 'vault']);
      assert.equal(refused.code, 4);
      assert.equal(refused.out, '');
      assert.match(refused.stderr, /identity tokens are turned off for this container/);
      const status = await daemon.curl('beta', '/1.0/identity/token?audience=vault', ['-o', '/dev/null', '-w', '%{http_code}']);
      assert.equal(status.out, '403');
      // The other container is not affected.
      await tokenOf('alpha', 'vault');
    } finally {
      assert.equal((await daemon.cli(['config', 'set', 'beta', 'security.devapollo.identity=true'])).code, 0);
    }
    await tokenOf('beta', 'vault');
  });

  test('a wrong audience fails, with PyJWT and with identity verify --audience', async () => {
    const token = await tokenOf('alpha', 'vault');
    await refusedByPyjwt(token, jwksFile(), 'not-vault', 'InvalidAudienceError');
    await refusedByCli(token, /its audience is "vault", not "not-vault"/, 'not-vault');
  });

  test('an expired token fails (ttl 1 s, then waiting past it)', async () => {
    const token = await tokenOf('alpha', 'vault', 1);
    const exp = (decodePart(token, 1) as unknown as Claims).exp;
    while (Date.now() / 1000 < exp + 1) await new Promise((resolve) => setTimeout(resolve, 200));
    await refusedByPyjwt(token, jwksFile(), 'vault', 'ExpiredSignatureError');
    await refusedByCli(token, /it expired at /);
  });

  test('a tampered payload fails', async () => {
    const token = await tokenOf('alpha', 'vault');
    const [header, payload, signature] = token.split('.') as [string, string, string];
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Claims;
    claims.devapollo.container = 'beta';
    claims.sub = claims.sub.replace(/alpha$/, 'beta');
    const tampered = `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${signature}`;
    await refusedByPyjwt(tampered, jwksFile(), 'vault', 'InvalidSignatureError');
    await refusedByCli(tampered, /its signature does not verify/);
    // One character of the signature changed (the one replaced is the one compared: when
    // the second-last was already an A and the last was not, this left it unchanged).
    const flipped = `${header}.${payload}.${signature.slice(0, -2)}${signature.at(-2) === 'A' ? 'B' : 'A'}${signature.slice(-1)}`;
    assert.notEqual(flipped, token);
    await refusedByCli(flipped, /its signature does not verify/);
    await refusedByCli('not-a-token', /it is not a signed JWT/);
  });

  test('a token signed by another key fails, whether it claims our kid or another', async () => {
    const token = await tokenOf('alpha', 'vault');
    const claims = decodePart(token, 1);
    const kid = decodePart(token, 0)['kid'] as string;
    for (const [claimedKid, reason] of [
      [kid, /its signature does not verify/],
      ['someone-else', /signed by a key this daemon does not have \(kid "someone-else"\)/],
    ] as const) {
      const forged = await run(systemPython, ['-c', pyjwtForge, JSON.stringify(claims), claimedKid]);
      assert.equal(forged.code, 0, forged.stderr);
      const forgedToken = forged.out.trim();
      await refusedByPyjwt(forgedToken, jwksFile(), 'vault', claimedKid === kid ? 'InvalidSignatureError' : 'NoSuchKey');
      await refusedByCli(forgedToken, reason);
    }
  });

  test('after rotate, old tokens still verify, new ones carry the new kid, and both keys are published', async () => {
    const old = await tokenOf('alpha', 'vault');
    const oldKid = decodePart(old, 0)['kid'];
    const rotated = await daemon.cli(['identity', 'rotate']);
    assert.equal(rotated.code, 0, rotated.stderr);
    const newKid = rotated.out.trim();
    assert.notEqual(newKid, oldKid);
    const jwks = JSON.parse(jwksFile()) as { keys: { kid: string }[] };
    assert.deepEqual(
      jwks.keys.map((k) => k.kid),
      [newKid, oldKid],
    );
    assert.deepEqual(JSON.parse(await jwksCli()), jwks);
    const fresh = await tokenOf('alpha', 'vault');
    assert.equal(decodePart(fresh, 0)['kid'], newKid);
    for (const token of [old, fresh]) {
      await verifiedByPyjwt(token, jwksFile(), 'vault');
      assert.equal((await verifyCli(token, 'vault')).code, 0);
    }
    assert.equal(fs.readdirSync(path.join(daemon.dir, 'identity')).length, 2);
  });

  test('a restart keeps the keys: old tokens verify, new ones are signed by the same key; file modes hold', async () => {
    const before = await tokenOf('alpha', 'vault');
    const kid = decodePart(before, 0)['kid'];
    const jwks = jwksFile();
    await daemon.signal('SIGTERM');
    await daemon.spawn(['--identity-issuer', issuer, '--trust-domain', trustDomain]);
    assert.equal(jwksFile(), jwks);
    assert.equal((await verifyCli(before, 'vault')).code, 0);
    assert.equal(decodePart(await tokenOf('alpha', 'vault'), 0)['kid'], kid);
    const mode = (p: string) => fs.statSync(path.join(daemon.dir, p)).mode & 0o777;
    assert.equal(mode('identity'), 0o700);
    for (const entry of fs.readdirSync(path.join(daemon.dir, 'identity'))) assert.equal(mode(path.join('identity', entry)), 0o600);
    assert.equal(mode('public'), 0o755);
    assert.equal(mode('public/jwks.json'), 0o644);
    assert.equal(mode('public/openid-configuration'), 0o644);
    const jwkSet = JSON.parse(jwks) as { keys: Record<string, unknown>[] };
    for (const key of jwkSet.keys) assert.equal(key['d'], undefined, 'no private part is published');
  });

  test('after delete, identity verify refuses the token; after re-creating the name, still', async () => {
    await daemon.launch('gamma');
    const token = await tokenOf('gamma', 'vault');
    assert.equal((await verifyCli(token)).code, 0);
    assert.equal((await daemon.cli(['delete', 'gamma', '--force'])).code, 0);
    await refusedByCli(token, /container gamma no longer exists/);
    // PyJWT cannot know: the signature holds until exp (README: keep ttl short).
    await verifiedByPyjwt(token, jwksFile(), 'vault');
    await daemon.launch('gamma');
    await refusedByCli(token, /instance \S+ of container gamma is gone/);
    assert.equal((await verifyCli(await tokenOf('gamma', 'vault'))).code, 0);
  });

  test('identity verify reads the token from stdin with -; usage errors exit 2', async () => {
    const token = await tokenOf('alpha', 'vault');
    const fromStdin = await daemon.cli(['identity', 'verify', '-', '--audience', 'vault'], { input: `${token}\n` });
    assert.equal(fromStdin.code, 0, fromStdin.stderr);
    assert.equal((JSON.parse(fromStdin.out) as Claims).devapollo.container, 'alpha');
    assert.equal((await daemon.cli(['identity', 'verify'])).code, 2);
    assert.equal((await daemon.cli(['identity', 'nope'])).code, 2);
  });
});

describe('identity token requests and serve options', () => {
  const test = gatedTest(pyjwtUnavailable);

  test("token requests count against the container's request rate (429)", async () => {
    const daemon = await TestDaemon.start({ args: ['--rate-limit', '0.01', '--rate-burst', '3'] });
    try {
      await daemon.launch('alpha');
      const statuses: string[] = [];
      const answer = await daemon.exec('alpha', [
        'sh',
        '-c',
        'for i in 1 2 3 4; do curl -sS --unix-socket /dev/apollo/sock -o /dev/null -w "%{http_code}\\n" "http://apollo/1.0/identity/token?audience=a"; done',
      ]);
      statuses.push(...answer.out.trim().split('\n'));
      assert.deepEqual(statuses, ['200', '200', '200', '429']);
    } finally {
      await daemon.destroy();
    }
  });

  test('each container has its own token rate (--token-rate, --token-burst): 429 with Retry-After past it; its GETs and other containers are not limited', async () => {
    const daemon = await TestDaemon.start({ args: ['--token-rate', '0.01', '--token-burst', '2'] });
    try {
      await daemon.launch('alpha');
      await daemon.launch('beta');
      const askFour = (name: string) =>
        daemon.exec(name, [
          'sh',
          '-c',
          'for i in 1 2 3 4; do curl -sS --unix-socket /dev/apollo/sock -o /dev/null -w "%{http_code}\\n" "http://apollo/1.0/identity/token?audience=a"; done',
        ]);
      assert.deepEqual((await askFour('alpha')).out.trim().split('\n'), ['200', '200', '429', '429']);
      const refusal = await daemon.curl('alpha', '/1.0/identity/token?audience=a', ['-i']);
      assert.match(refusal.out, /^HTTP\/1\.1 429 /);
      assert.match(refusal.out, /\r\nRetry-After: \d+\r\n/i);
      assert.match(refusal.out, /too many identity tokens for this container \(at most 0\.01 a second, 2 at once\)/);
      assert.equal((await daemon.curl('alpha', '/1.0', ['-o', '/dev/null', '-w', '%{http_code}'])).out, '200');
      assert.deepEqual((await askFour('beta')).out.trim().split('\n'), ['200', '200', '429', '429']);
      const bad = await run(process.execPath, [hostCli, 'serve', '--dir', '/nonexistent/devapollo-never', '--token-burst', '0']);
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /--token-burst must be a number \(whole\) of at least 1/);
    } finally {
      await daemon.destroy();
    }
  });

  test('a registered container gets a new instance at each register: the tokens of the run before are refused', async () => {
    const daemon = await TestDaemon.start();
    // A pid namespace another runtime made: `unshare --pid --fork` with an idle init.
    const unshare = spawn('unshare', ['--pid', '--fork', '--kill-child', '--mount-proc', 'sleep', '1000'], { stdio: 'ignore' });
    try {
      let init = 0;
      await eventually(() => {
        init = childrenOf(unshare.pid ?? -1)[0] ?? 0;
        return init > 0;
      }, 'the foreign namespace has its init');
      const tokenFromInside = async (): Promise<string> => {
        const sock = path.join(daemon.dir, 'devapollo', 'sock');
        const answer = await run('nsenter', [
          '--target',
          String(init),
          '--pid',
          '--',
          'curl',
          '-sS',
          '--unix-socket',
          sock,
          'http://apollo/1.0/identity/token?audience=a',
        ]);
        assert.match(answer.out, /^eyJ/, answer.out + answer.stderr);
        return answer.out;
      };
      assert.equal((await daemon.cli(['register', 'delta', '--pid', String(init)])).code, 0);
      const first = await tokenFromInside();
      assert.equal((await daemon.cli(['identity', 'verify', first])).code, 0);
      const record = () =>
        JSON.parse(fs.readFileSync(path.join(daemon.dir, 'containers', 'delta.json'), 'utf8')) as { instance_uuid: string };
      assert.equal((decodePart(first, 1) as unknown as Claims).devapollo.instance, record().instance_uuid);
      // The runtime's stop hook lets go of the run (as `hook` does), its start hook binds the next one.
      const unregistered = await new Promise<number>((resolve) => {
        const req = spawn('curl', [
          '-sS',
          '-o',
          '/dev/null',
          '-w',
          '%{http_code}',
          '-X',
          'DELETE',
          '--unix-socket',
          path.join(daemon.dir, 'unix.socket'),
          'http://apollo/1.0/containers/delta/init',
        ]);
        let out = '';
        req.stdout.on('data', (c: Buffer) => (out += c.toString()));
        req.once('close', () => resolve(Number(out)));
      });
      assert.equal(unregistered, 200);
      assert.equal((await daemon.cli(['identity', 'verify', first])).code, 0, 'a stopped container still exists, with the same instance');
      assert.equal((await daemon.cli(['register', 'delta', '--pid', String(init)])).code, 0);
      const refused = await daemon.cli(['identity', 'verify', first]);
      assert.equal(refused.code, 4);
      assert.match(refused.stderr, /instance \S+ of container delta is gone/);
      const second = await tokenFromInside();
      assert.notEqual(
        (decodePart(second, 1) as unknown as Claims).devapollo.instance,
        (decodePart(first, 1) as unknown as Claims).devapollo.instance,
      );
      assert.equal((await daemon.cli(['identity', 'verify', second])).code, 0);
    } finally {
      unshare.kill('SIGKILL');
      await daemon.destroy();
    }
  });

  test('a daemon refuses to start on a corrupt key file, says which, and leaves it as it was', async () => {
    const daemon = await TestDaemon.start();
    try {
      const identityDir = path.join(daemon.dir, 'identity');
      const [file] = fs.readdirSync(identityDir);
      assert.ok(file);
      await daemon.signal('SIGTERM');
      const keyFile = path.join(identityDir, file);
      fs.writeFileSync(keyFile, '{"schema": 1, "kid": ');
      const before = fs.readFileSync(keyFile);
      await assert.rejects(daemon.spawn(), (error: Error) => {
        assert.match(error.message, /exited with 1/);
        assert.match(
          error.message,
          new RegExp(`Error: identity key file ${keyFile.replace(/[.]/g, '\\.')} is not valid JSON .*devapollo will not overwrite it`),
        );
        return true;
      });
      assert.deepEqual(fs.readFileSync(keyFile), before);
      assert.deepEqual(fs.readdirSync(identityDir), [file], 'no key was made in its place');
    } finally {
      await daemon.destroy();
    }
  });

  test('serve refuses a bad --identity-issuer or --trust-domain with the value and exit 2', async () => {
    for (const [args, reason] of [
      [
        ['--identity-issuer', 'http://apollo.example.test'],
        /^Error: --identity-issuer "http:\/\/apollo.example.test" must be an https:\/\/ URL/,
      ],
      [['--trust-domain', 'Not/A/Domain'], /^Error: --trust-domain "Not\/A\/Domain" is not a SPIFFE trust domain/],
    ] as const) {
      const result = await run(process.execPath, [hostCli, 'serve', '--dir', '/nonexistent/devapollo-never', ...args]);
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, reason);
      assert.ok(!fs.existsSync('/nonexistent/devapollo-never'));
    }
  });
});
