// serve --identity-issuer and --trust-domain: the defaults and the values refused.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { identitySettings, spiffeId } from '../../../dist/server/identity/settings.js';

describe('identity settings', () => {
  test('the defaults are https://HOSTNAME and HOSTNAME (lowercased for the trust domain)', () => {
    const settings = identitySettings({}, 'Build-7');
    assert.deepEqual(settings, { issuer: 'https://build-7', trustDomain: 'build-7', host: 'Build-7' });
    assert.equal(spiffeId(settings, 'web'), 'spiffe://build-7/devapollo/Build-7/web');
  });

  test('an issuer with a path and a trust domain are kept as given', () => {
    const settings = identitySettings({ issuer: 'https://id.example.com/apollo', trustDomain: 'example.com' }, 'h1');
    assert.equal(settings.issuer, 'https://id.example.com/apollo');
    assert.equal(settings.trustDomain, 'example.com');
  });

  test('issuers relying parties would refuse are usage errors that name the value', () => {
    for (const [issuer, reason] of [
      ['http://id.example.com', /must be an https:\/\/ URL/],
      ['id.example.com', /is not a URL/],
      ['https://id.example.com/', /must not end with "\/" \(use "https:\/\/id.example.com"\)/],
      ['https://id.example.com?x=1', /no query or fragment/],
      ['https://id.example.com#x', /no query or fragment/],
      ['https://u:p@id.example.com', /user name or password/],
      ['https://ID.example.com', /normal form \("https:\/\/id.example.com"\)/],
    ] as const) {
      assert.throws(
        () => identitySettings({ issuer }, 'h1'),
        (error: Error & { code?: string }) => {
          assert.equal(error.code, 'usage');
          assert.match(error.message, new RegExp(`^--identity-issuer ${JSON.stringify(issuer).replace(/[.?*+^$()|[\]\\/]/g, '\\$&')}`));
          assert.match(error.message, reason);
          return true;
        },
      );
    }
  });

  test('trust domains that are not SPIFFE trust domains are usage errors', () => {
    for (const trustDomain of ['Example.com', 'a/b', '', 'x'.repeat(256), 'spiffe://x']) {
      assert.throws(() => identitySettings({ trustDomain }, 'h1'), /--trust-domain .* is not a SPIFFE trust domain/);
    }
    assert.throws(() => identitySettings({}, 'host_with spaces'), /cannot be part of a SPIFFE ID/);
  });
});
