/**
 * The three kernel features identity rests on, detected once when the daemon starts and
 * handed to the code that uses them (the peer lookup, the instance registry, `status`),
 * never re-probed per call:
 * - SO_PEERPIDFD (Linux 6.5): the peer's pidfd from the socket itself, so a recycled pid
 *   can never be read; without it the pid is opened as a pidfd at once (a short window).
 * - PIDFD_GET_PID_NAMESPACE (6.11): the pidfd's pid namespace with no race; without it
 *   /proc/PID/ns/pid is opened and the pidfd checked afterwards.
 * - NS_GET_ID (6.12): 64-bit namespace ids never reused while the machine runs; without
 *   it inode numbers are the keys and a mapped namespace is pinned open.
 *
 * For tests only, `DEVAPOLLO_TEST_LEGACY_KERNEL` makes the daemon do without some of them,
 * so that each fallback runs, and is tested, on this kernel: a comma-separated list of
 * `peer-pidfd`, `pidfd-namespace`, `ns-get-id`, or `all` (also `1`). Never set it in
 * production: the fallbacks are slower, and without SO_PEERPIDFD a recycled pid can be
 * read in a short window (see peer.ts).
 */
import fs from 'node:fs';
import { ApolloError } from '../../shared/errors.js';
import { close, Errno, errno, getsockopt, ioctlBuffer, ioctlValue, O_CLOEXEC, socket } from './libc.js';
import { closeFd, openPidfd } from './pidfd.js';

/** What this kernel offers (after any a test turned off). */
export interface KernelFeatures {
  readonly peerPidfd: boolean;
  readonly pidfdNamespace: boolean;
  readonly namespaceIds: boolean;
}

/** The names `DEVAPOLLO_TEST_LEGACY_KERNEL` takes, one per feature. */
export const legacyFeatureNames = {
  'peer-pidfd': 'peerPidfd',
  'pidfd-namespace': 'pidfdNamespace',
  'ns-get-id': 'namespaceIds',
} as const satisfies Record<string, keyof KernelFeatures>;

export type LegacyFeatureName = keyof typeof legacyFeatureNames;

export const SOL_SOCKET = 1;
export const SO_PEERPIDFD = 77;
export const NS_GET_ID = 0x8008b70d;
export const PIDFD_GET_PID_NAMESPACE = 0xff05;
const ENODATA = 61;

/**
 * The features a test asked the daemon to do without, from the variable's value; an
 * unknown name is refused with the list, so a misspelt mode can never test nothing.
 */
export function parseLegacyKernel(value: string | undefined): Set<keyof KernelFeatures> {
  const off = new Set<keyof KernelFeatures>();
  for (const raw of (value ?? '').split(',')) {
    const name = raw.trim();
    if (name === '') continue;
    if (name === 'all' || name === '1') {
      for (const feature of Object.values(legacyFeatureNames)) off.add(feature);
    } else if (Object.hasOwn(legacyFeatureNames, name)) {
      off.add(legacyFeatureNames[name as LegacyFeatureName]);
    } else {
      throw new ApolloError(
        'usage',
        `DEVAPOLLO_TEST_LEGACY_KERNEL: unknown feature ${JSON.stringify(name)}; use ${Object.keys(legacyFeatureNames).join(', ')} or all`,
      );
    }
  }
  return off;
}

/** Asks the kernel, once, which features it has; those in `off` count as missing. */
export function detectKernelFeatures(off: ReadonlySet<keyof KernelFeatures> = new Set()): KernelFeatures {
  return {
    peerPidfd: !off.has('peerPidfd') && kernelHasPeerPidfd(),
    pidfdNamespace: !off.has('pidfdNamespace') && kernelHasPidfdNamespace(),
    namespaceIds: !off.has('namespaceIds') && kernelHasNamespaceIds(),
  };
}

let thisProcess: KernelFeatures | undefined;

/**
 * This process's features, detected at the first call (honouring the test variable).
 * The daemon calls it once at start and passes the answer on; the default for callers
 * not handed one (unit tests, code not yet given the daemon's).
 */
export function processKernelFeatures(): KernelFeatures {
  thisProcess ??= detectKernelFeatures(parseLegacyKernel(process.env['DEVAPOLLO_TEST_LEGACY_KERNEL']));
  return thisProcess;
}

/**
 * Without a peer an AF_UNIX socket answers SO_PEERPIDFD with ENODATA where the kernel
 * knows the option, ENOPROTOOPT where it does not: no connection is needed to tell.
 */
function kernelHasPeerPidfd(): boolean {
  const fd = socket(1, 1 | O_CLOEXEC, 0);
  if (fd < 0) return false;
  try {
    const length = new Uint32Array([4]);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, Buffer.alloc(4), length) === 0) return true;
    return errno() === ENODATA;
  } finally {
    close(fd);
  }
}

/** PIDFD_GET_PID_NAMESPACE on a pidfd of this very process. */
function kernelHasPidfdNamespace(): boolean {
  const { fd: pidfd } = openPidfd(process.pid);
  if (pidfd < 0) return false;
  try {
    const nsfd = ioctlValue(pidfd, PIDFD_GET_PID_NAMESPACE, 0);
    if (nsfd >= 0) {
      closeFd(nsfd);
      return true;
    }
    const err = errno();
    return err !== Errno.ENOTTY && err !== Errno.EINVAL;
  } finally {
    closeFd(pidfd);
  }
}

/** NS_GET_ID on this process's own pid namespace. */
function kernelHasNamespaceIds(): boolean {
  const fd = fs.openSync('/proc/self/ns/pid', 'r');
  try {
    return ioctlBuffer(fd, NS_GET_ID, Buffer.alloc(8)) === 0;
  } finally {
    fs.closeSync(fd);
  }
}
