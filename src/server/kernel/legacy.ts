/**
 * For tests only: `DEVAPOLLO_TEST_LEGACY_KERNEL=peer-pidfd,pidfd-namespace,ns-get-id` (any
 * of them) makes the daemon act as on a kernel without those features, so that the
 * fallbacks for older kernels run, and are tested, on this one. Read once, when the
 * daemon starts; never set it in production: the fallbacks are slower, and without
 * SO_PEERPIDFD a recycled pid can be read in a short window (see peer.ts).
 */
export type KernelFeature = 'peer-pidfd' | 'pidfd-namespace' | 'ns-get-id';

const forced = new Set((process.env['DEVAPOLLO_TEST_LEGACY_KERNEL'] ?? '').split(',').map((name) => name.trim()));

/** Whether a test asked the daemon to do without `feature`. */
export function forcedOff(feature: KernelFeature): boolean {
  return forced.has(feature);
}
