// The kernel paths identity can take, for tests that run on each: this kernel's own,
// each feature turned off alone, and all three off (DEVAPOLLO_TEST_LEGACY_KERNEL, see
// src/server/kernel/features.ts). Every fallback for an older kernel runs here.

/** What `status` reports under `identity`. */
export interface IdentityWire {
  readonly peer_pidfd: boolean;
  readonly pidfd_namespace: boolean;
  readonly namespace_ids: boolean;
}

export interface KernelMode {
  readonly name: string;
  /** The daemon's environment. */
  readonly env: NodeJS.ProcessEnv;
  /** The features the daemon must then report (this kernel has all three). */
  readonly identity: IdentityWire;
}

const all: IdentityWire = { peer_pidfd: true, pidfd_namespace: true, namespace_ids: true };

function mode(name: string, legacy: string | undefined, off: Partial<IdentityWire>): KernelMode {
  const env = { ...process.env };
  delete env['DEVAPOLLO_TEST_LEGACY_KERNEL'];
  if (legacy !== undefined) env['DEVAPOLLO_TEST_LEGACY_KERNEL'] = legacy;
  return { name, env, identity: { ...all, ...off } };
}

/**
 * The five modes. A suite runs each from a test file of its own (`*-suite.ts` holds the
 * tests): one file with all five would outlast the runner's per-file time limit on a busy
 * machine.
 */
export const kernelModes = {
  thisKernel: mode('this kernel', undefined, {}),
  withoutPeerPidfd: mode('without SO_PEERPIDFD', 'peer-pidfd', { peer_pidfd: false }),
  withoutPidfdNamespace: mode('without PIDFD_GET_PID_NAMESPACE', 'pidfd-namespace', { pidfd_namespace: false }),
  withoutNamespaceIds: mode('without NS_GET_ID', 'ns-get-id', { namespace_ids: false }),
  withoutAll: mode('without all three', 'all', { peer_pidfd: false, pidfd_namespace: false, namespace_ids: false }),
} as const satisfies Record<string, KernelMode>;
