// The guest only fetches its token: the one-file guest client must not carry jose (its
// size and start-up are what boot scripts pay), and must ask for the token as the contract says.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { describe, test } from 'node:test';
import { guestBundle } from '../../helpers/daemon.js';

describe('guest bundle and identity', () => {
  test('dist/devapollo-guest.cjs has the token command and none of jose', () => {
    const bundle = fs.readFileSync(guestBundle, 'utf8');
    assert.ok(bundle.includes('/1.0/identity/token?'), 'the token command is in the bundle');
    // Strings every part of jose carries: its error codes and its module paths.
    for (const marker of ['ERR_JOSE', 'ERR_JWS_', 'JWSSignatureVerificationFailed', 'jose/dist', 'calculateJwkThumbprint']) {
      assert.ok(!bundle.includes(marker), `the guest bundle carries ${marker}`);
    }
  });
});
