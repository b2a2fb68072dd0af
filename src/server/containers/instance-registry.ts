/**
 * The running instances by pid namespace: the whole identity lookup of both sockets, and
 * the descriptors that keep it true. An instance holds its init's pidfd (so its pid
 * cannot be recycled under it) and, where namespace keys are inode numbers, a descriptor
 * pinning the namespace (so its inode cannot be reused while mapped). Adopting maps an
 * instance, unmapping drops it from the lookup at once, releasing closes its descriptors
 * exactly once.
 */
import { ApolloError } from '../../shared/errors.js';
import type { ExitWatcher } from '../kernel/exit-watcher.js';
import type { KernelFeatures } from '../kernel/features.js';
import { namespaceKey, openPidNamespace } from '../kernel/namespaces.js';
import { closeFd, pidfdIsAlive } from '../kernel/pidfd.js';
import { hostUidOfRoot } from '../kernel/proc.js';
import { type Container, Instance } from './container.js';

export class InstanceRegistry {
  /** Running instances by pid-namespace key: the whole identity lookup, O(1). */
  private readonly byNamespace = new Map<bigint, Instance>();
  private closed = false;

  constructor(
    private readonly watcher: ExitWatcher,
    private readonly kernel: KernelFeatures,
  ) {}

  /** The instance a pid namespace belongs to, if any (the peer lookup). */
  lookup(key: bigint): Instance | undefined {
    return this.byNamespace.get(key);
  }

  /**
   * Maps the init's pid namespace to a new instance of `container`. The caller has pinned
   * the init with `pidfd`; the namespace is read from /proc and the pidfd checked
   * afterwards, so the namespace is the init's own even if its pid had been recycled in
   * between. No other running instance may hold that namespace.
   */
  adopt(container: Container, pid: number, pidfd: number, startTime: string): Instance {
    let nsfd: number;
    try {
      nsfd = openPidNamespace(pid);
    } catch {
      throw new ApolloError('bad-request', `no process with pid ${pid}`);
    }
    let pinFd = -1;
    let key: bigint;
    try {
      if (!pidfdIsAlive(pidfd)) throw new ApolloError('bad-request', `process ${pid} exited`);
      key = namespaceKey(nsfd, this.kernel);
      if (!this.kernel.namespaceIds) pinFd = nsfd;
    } finally {
      if (pinFd !== nsfd) closeFd(nsfd);
    }
    const holder = this.byNamespace.get(key);
    if (holder?.running) {
      closeFd(pinFd);
      throw new ApolloError('conflict', `that pid namespace already belongs to container ${holder.container.name}`);
    }
    const rootUid = hostUidOfRoot(pid) ?? 0;
    const instance = new Instance(container, pid, pidfd, startTime, key, rootUid, pinFd);
    container.instance = instance;
    this.byNamespace.set(key, instance);
    return instance;
  }

  /** Instances mapped (status `internals`). */
  get size(): number {
    return this.byNamespace.size;
  }

  /** Calls `onExit` once the init exits (the exit watcher polls its pidfd). */
  watch(instance: Instance, onExit: () => void): void {
    this.watcher.watch(instance.pidfd, onExit);
  }

  /** Drops an instance from the identity map at once; its descriptors stay open until release. */
  unmap(instance: Instance): void {
    instance.markEnded();
    if (this.byNamespace.get(instance.namespaceKey) === instance) this.byNamespace.delete(instance.namespaceKey);
    if (instance.container.instance === instance) instance.container.instance = undefined;
    instance.container.notifyChanged();
  }

  /**
   * Unmaps the instance and closes its descriptors, the first time only: true when this
   * call did it (the caller then records the stop and settles the instance), false when
   * another did, or the registry is closed (the daemon is shutting down: nothing stopped).
   */
  release(instance: Instance): boolean {
    if (this.closed || !instance.claimRelease()) return false;
    this.unmap(instance);
    this.watcher.unwatch(instance.pidfd);
    closeFd(instance.pidfd);
    closeFd(instance.pinFd);
    return true;
  }

  /** Lets go of every instance without stopping any container (daemon shutdown). */
  close(): void {
    this.closed = true;
    for (const instance of this.byNamespace.values()) {
      this.watcher.unwatch(instance.pidfd);
      closeFd(instance.pidfd);
      closeFd(instance.pinFd);
    }
    this.byNamespace.clear();
  }
}
