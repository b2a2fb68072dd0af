/**
 * The daemon's containers, the one object the APIs talk to: their records on disk (the
 * book: by name, made durable one update at a time, every change announced), with the
 * lifecycle commands (lifecycle.ts), the namespace→instance map that identifies every
 * guest connection (instance-registry.ts) and the rules of a record (record-rules.ts)
 * each in its own module behind it.
 */
import { EventEmitter } from 'node:events';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { ApolloError } from '../../shared/errors.js';
import { keyMap } from '../../shared/key-map.js';
import type { ExitWatcher } from '../kernel/exit-watcher.js';
import type { KernelFeatures } from '../kernel/features.js';
import type { Logger } from '../log.js';
import type { DaemonPaths } from '../paths.js';
import type { ContainerRecord, ContainerStore, GuestState } from '../state/container-store.js';
import type { Container, Instance } from './container.js';
import type { IdRange, ReadFile } from './idmap.js';
import { InstanceRegistry } from './instance-registry.js';
import { IsolatedRanges } from './isolated-ranges.js';
import {
  type ContainerBook,
  type LaunchRequest,
  Lifecycle,
  type RegisterOptions,
  type Registration,
  type RunOfContainer,
} from './lifecycle.js';
import { configDifferences, isolatedKey, privilegedIsolated, validatedConfig, withConfig, withGuestState } from './record-rules.js';

export type { LaunchRequest, RegisterOptions, Registration, RunOfContainer } from './lifecycle.js';
export { newRecord } from './record-rules.js';

export interface ManagerOptions {
  readonly paths: DaemonPaths;
  readonly store: ContainerStore;
  readonly watcher: ExitWatcher;
  readonly logger: Logger;
  /** The kernel features the daemon detected at start (kernel/features.ts). */
  readonly kernel: KernelFeatures;
  readonly maxValueBytes: number;
  /** The shared ranges every unprivileged container maps to by default. */
  readonly uids: IdRange;
  readonly gids: IdRange;
  readonly stopTimeoutMs: number;
  /** Each container's output log is rotated at this size (`serve --max-log-size`). */
  readonly maxLogBytes: number;
  /** Reads /etc/subuid and /etc/subgid (isolated ranges); the real files by default. */
  readonly readIdFile?: ReadFile;
}

/** What happened to a container, for event streams (guest and host). */
export interface ContainerEvent {
  readonly type: 'config' | 'lifecycle';
  readonly container: string;
  readonly timestamp: string;
  readonly metadata: Readonly<Record<string, unknown>>;
}

export class ContainerManager extends EventEmitter<{ event: [ContainerEvent, Container] }> implements ContainerBook {
  readonly containers = new Map<string, Container>();
  /** The kernel features identity uses (the peer lookups of both sockets read them here). */
  readonly kernel: KernelFeatures;
  private readonly registry: InstanceRegistry;
  private readonly lifecycle: Lifecycle;
  private readonly ranges: IsolatedRanges;

  constructor(private readonly options: ManagerOptions) {
    super();
    this.setMaxListeners(0);
    this.kernel = options.kernel;
    this.registry = new InstanceRegistry(options.watcher, options.kernel);
    this.ranges = new IsolatedRanges({ uids: options.uids, gids: options.gids }, options.logger, options.readIdFile);
    this.lifecycle = new Lifecycle(this, this.registry, this.ranges, options);
  }

  /** Loads the records and re-adopts every init that still runs (same pid, start time, boot). */
  restore(records: readonly ContainerRecord[]): Promise<void> {
    return this.lifecycle.restore(records);
  }

  /** The instance a pid namespace belongs to, if any (the peer lookup). */
  instanceOfNamespace(key: bigint): Instance | undefined {
    return this.registry.lookup(key);
  }

  list(): Container[] {
    return [...this.containers.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  get(name: string): Container {
    const container = this.containers.get(name);
    if (container === undefined) throw new ApolloError('not-found', `container ${JSON.stringify(name)} not found`);
    return container;
  }

  /** Sizes of what the manager keeps by container, namespace or pid (status `internals`). */
  internals(): Record<string, number> {
    return {
      containers: this.containers.size,
      instances_by_namespace: this.registry.size,
      isolated_idmaps: this.ranges.size,
      exit_watches: this.options.watcher.size,
      manager_event_listeners: this.listenerCount('event'),
    };
  }

  counts(): { total: number; running: number } {
    let running = 0;
    for (const c of this.containers.values()) if (c.instance?.running) running++;
    return { total: this.containers.size, running };
  }

  /**
   * Defines a container without starting it: Stopped, its keys settable before anything
   * runs; `start` runs it with devapollo's launcher, or a runtime's start hook binds to
   * it (`register`), whichever comes first.
   */
  create(request: LaunchRequest): Promise<Container> {
    return this.lifecycle.create(request);
  }

  /** Creates a container and starts it; returns once it runs and is served. */
  launch(request: LaunchRequest): Promise<Container> {
    return this.lifecycle.launch(request);
  }

  start(name: string): Promise<Container> {
    return this.lifecycle.start(name);
  }

  /** SIGTERM to the init, SIGKILL after the timeout (or at once with force); see Lifecycle.stop. */
  stop(name: string, options: { force?: boolean; timeoutMs?: number } = {}): Promise<Container> {
    return this.lifecycle.stop(name, options);
  }

  /** Stops (if it runs) and starts the container again, busy throughout; see Lifecycle.restart. */
  restart(name: string, options: { force?: boolean; timeoutMs?: number } = {}): Promise<Container> {
    return this.lifecycle.restart(name, options);
  }

  /** Deletes a stopped container; with force a running one is killed first (a registered one is only let go). */
  delete(name: string, options: { force?: boolean } = {}): Promise<void> {
    return this.lifecycle.delete(name, options);
  }

  /** Adopts a container another runtime started (LXC, OCI), by its init's pid. */
  register(name: string, pid: number, options: RegisterOptions = {}): Promise<Registration> {
    return this.lifecycle.register(name, pid, options);
  }

  /** Lets go of a registered container's init without stopping it (another runtime's stop hook). */
  unregister(name: string, run: RunOfContainer = {}): Promise<Container> {
    return this.lifecycle.unregister(name, run);
  }

  /** Sets (or, with null or "", unsets) config keys, durably, then tells listeners. */
  async setConfig(name: string, changes: Readonly<Record<string, string | null>>): Promise<Container> {
    const container = this.get(name);
    const validated = validatedConfig(changes, this.options.maxValueBytes);
    if (validated[isolatedKey] === 'true' && container.record.privileged) throw privilegedIsolated(name);
    let before: Readonly<Record<string, string>> = keyMap();
    const changed = await this.update(container, (r) => {
      before = r.config;
      return withConfig(r, validated, 'change');
    });
    if (changed) this.announceConfigChanges(container, before);
    return container;
  }

  /** A config event (and a log line) for each key that differs from `before`. */
  announceConfigChanges(container: Container, before: Readonly<Record<string, string>>): void {
    for (const { key, oldValue, value } of configDifferences(before, container.record.config)) {
      this.options.logger.info('config changed', { container: container.name, key });
      this.emitEvent(container, 'config', { key, old_value: oldValue, value, etag: container.keyEtag(key) });
    }
  }

  /**
   * A guest's write of a key of its own container (PUT/DELETE of guest.*, PROTOCOL.md
   * section 3a): the same durable record update and config events as a host's setConfig,
   * value null unsetting. `admit` sees the record the write would change, inside the
   * update, and throws to refuse it (quotas: two writes at once cannot both fit); an
   * instance that has ended by then writes nothing (403).
   */
  async setGuestKey(instance: Instance, key: string, value: string | null, admit: (record: ContainerRecord) => void): Promise<void> {
    const container = instance.container;
    const changes = validatedConfig(keyMap([[key, value]]), this.options.maxValueBytes);
    let before: Readonly<Record<string, string>> = keyMap();
    const changed = await this.update(container, (r) => {
      if (!instance.running) throw new ApolloError('forbidden', 'Forbidden: the container is no longer running');
      admit(r);
      before = r.config;
      return withConfig(r, changes, 'change');
    });
    if (changed) this.announceConfigChanges(container, before);
  }

  /** The guest's own state (PATCH /1.0): stored, shown in list, reset at every start. */
  async setGuestState(instance: Instance, state: GuestState): Promise<void> {
    const container = instance.container;
    const changed = await this.update(container, (r) => {
      if (!instance.running) throw new ApolloError('forbidden', 'Forbidden: the container is no longer running');
      return r.guest_state === state ? undefined : withGuestState(r, state);
    });
    if (changed) this.emitEvent(container, 'lifecycle', { action: 'guest-state', name: container.name, state });
  }

  /** Lets go of every instance without stopping any container (daemon shutdown). */
  close(): void {
    this.registry.close();
  }

  logFile(name: string): string {
    return path.join(this.options.paths.logsDir, `${name}.log`);
  }

  /** NAME.log and its rotated NAME.log.1 (a monitor still draining finds them gone and stops). */
  async removeLogs(name: string): Promise<void> {
    const log = this.logFile(name);
    await Promise.all([fsp.rm(log, { force: true }), fsp.rm(`${log}.1`, { force: true })]).catch(() => undefined);
  }

  /**
   * Applies `change` to the record, durably, one update at a time per container. Returns
   * false when `change` returns undefined (nothing to do). The record in memory changes
   * only once the disk has it.
   */
  update(container: Container, change: (record: ContainerRecord) => ContainerRecord | undefined): Promise<boolean> {
    return container.serialize(async () => {
      if (container.removed) throw new ApolloError('not-found', `container ${JSON.stringify(container.name)} not found`);
      const next = change(container.record);
      if (next === undefined) return false;
      await this.options.store.save(next);
      container.record = next;
      container.notifyChanged();
      return true;
    });
  }

  emitLifecycle(container: Container, action: string): void {
    this.emitEvent(container, 'lifecycle', { action, name: container.name });
  }

  private emitEvent(container: Container, type: 'config' | 'lifecycle', metadata: Record<string, unknown>): void {
    this.emit('event', { type, container: container.name, timestamp: new Date().toISOString(), metadata }, container);
  }
}
