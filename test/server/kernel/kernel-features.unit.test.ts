// DEVAPOLLO_TEST_LEGACY_KERNEL: which features a test turns off, and the refusal of a
// name that would turn off nothing. Detection itself: this kernel has all three.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { detectKernelFeatures, parseLegacyKernel } from '../../../dist/server/kernel/features.js';

describe('kernel features', () => {
  test('each name turns off its feature alone; all, 1 and the full list turn off all three', () => {
    assert.deepEqual([...parseLegacyKernel('peer-pidfd')], ['peerPidfd']);
    assert.deepEqual([...parseLegacyKernel(' pidfd-namespace ')], ['pidfdNamespace']);
    assert.deepEqual([...parseLegacyKernel('ns-get-id')], ['namespaceIds']);
    for (const value of ['all', '1', 'peer-pidfd,pidfd-namespace,ns-get-id']) assert.equal(parseLegacyKernel(value).size, 3, value);
    assert.equal(parseLegacyKernel(undefined).size, 0);
    assert.equal(parseLegacyKernel('').size, 0);
  });

  test('an unknown name is refused with the names there are', () => {
    assert.throws(() => parseLegacyKernel('peer-pidfd,nsid'), /unknown feature "nsid"; use peer-pidfd, pidfd-namespace, ns-get-id or all/);
  });

  test('what is turned off is off, whatever the kernel has', () => {
    const off = detectKernelFeatures(parseLegacyKernel('all'));
    assert.deepEqual(off, { peerPidfd: false, pidfdNamespace: false, namespaceIds: false });
    const one = detectKernelFeatures(parseLegacyKernel('ns-get-id'));
    assert.equal(one.namespaceIds, false);
  });
});
