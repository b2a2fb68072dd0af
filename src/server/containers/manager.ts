/**
 * The daemon's containers: their records on disk, their running instances, and the map
 * from pid namespace to instance that identifies every guest connection.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { ApolloError } from '../../shared/errors.js';
import { keyMap } from '../../shared/key-map.js';
import { assertSettableKey, booleanKeys } from '../../shared/config-keys.js';
import { assertConfigKey, assertContainerName, isGuestReadableKey } from '../../shared/names.js';
import type { ExitWatcher } from '../kernel/exit-watcher.js';
import { namespaceKey, namespaceKeysAreIds, openPidNamespace } from '../kernel/namespaces.js';
import { closeFd, openPidfd, pidfdIsAlive, signalPidfd } from '../kernel/pidfd.js';
import { currentBootId, hostUidOfRoot, isNamespaceInit, processStartTime } from '../kernel/proc.js';
import type { Logger } from '../log.js';
import type { DaemonPaths } from '../paths.js';
import {
  type ContainerRecord,
  type ContainerStore,
  type GuestState,
  type IdmapRecord,
  stateSchemaVersion,
} from '../state/container-store.js';
import { Container, Instance } from './container.js';
import { allocateRange, containerIdCount, describeIdmap, type IdRange, idmapClash, type ReadFile, rootRanges } from './idmap.js';
import { assertInstanceId, instanceIdKey, withNewInstanceId } from './instance-id.js';
import { launchContainer } from './launcher.js';
import { annotationConfig, claimKey, knownAnnotationKeys, newClaim, ociBindRefusal, type OciStartFacts } from './oci-binding.js';

/** A container's own uid/gid range instead of the shared one; read at each start. */
const isolatedKey = 'security.idmap.isolated';

export interface ManagerOptions {
  readonly paths: DaemonPaths;
  readonly store: ContainerStore;
  readonly watcher: ExitWatcher;
  readonly logger: Logger;
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

/** Which run of a registered container a stop hook is for; unset fields match any. */
export interface RunOfContainer {
  /** The init's host pid (LXC's stop hooks have it). */
  readonly pid?: number | undefined;
  /** What its runtime calls the run (`InitRecord.runtime_id`). */
  readonly runtimeId?: string | undefined;
}

/** How a runtime's start hook names the run it registers. */
export interface RegisterOptions {
  readonly config?: Readonly<Record<string, string>>;
  readonly runtimeId?: string | undefined;
  /**
   * Set by an OCI start hook: its config comes from annotations, which may be an image's,
   * and binding to an existing record follows the rules of oci-binding.ts. Absent for
   * LXC hooks and `devapollo register`, whose config is the admin's.
   */
  readonly oci?: OciStartFacts | undefined;
}

/** A registration's outcome: the container, and what of the request was left out (for the hook's Warning: line). */
export interface Registration {
  readonly container: Container;
  readonly warnings: readonly string[];
}

export interface LaunchRequest {
  readonly name: string;
  readonly config: Readonly<Record<string, string>>;
  readonly privileged: boolean;
  readonly command: readonly string[] | null;
}

export class ContainerManager extends EventEmitter<{ event: [ContainerEvent, Container] }> {
  private readonly containers = new Map<string, Container>();
  /** Running instances by pid-namespace key: the whole identity lookup, O(1). */
  private readonly byNamespace = new Map<bigint, Instance>();
  /**
   * Every container's own id range, by container name: from the records, and from the
   * moment one is allocated (before its record is on disk), so two starts at once can
   * never be given the same range.
   */
  private readonly idmaps = new Map<string, IdmapRecord>();
  private closed = false;

  constructor(private readonly options: ManagerOptions) {
    super();
    this.setMaxListeners(0);
  }

  /** Loads the records and re-adopts every init that still runs (same pid, start time, boot). */
  async restore(records: readonly ContainerRecord[]): Promise<void> {
    const bootId = currentBootId();
    for (const record of records) {
      const container = new Container(record);
      this.containers.set(record.name, container);
      if (record.idmap !== null) this.idmaps.set(record.name, record.idmap);
      if (record.origin !== 'launch' && record.config[claimKey] === undefined) await this.giveClaim(container);
      const init = record.init;
      if (init === null) continue;
      const adopted = init.boot_id === bootId ? this.tryAdopt(container, init.pid, init.start_time) : undefined;
      if (adopted === undefined) {
        this.options.logger.info('container is no longer running', { container: record.name, pid: init.pid });
        await this.update(container, (r) => ({ ...withGuestState(r, 'Started'), init: null }));
      }
    }
    this.reportIdmapClashes();
  }

  /**
   * A container a runtime's hook may bind to that has no claim (made by a devapollo from
   * before claims, or unset by hand) gets one at start-up; if it cannot be written, the
   * container stays bindable only by its own runs, as it was.
   */
  private async giveClaim(container: Container): Promise<void> {
    try {
      await this.update(container, (r) => withConfig(r, keyMap([[claimKey, newClaim()]]), 'creation'));
    } catch (error) {
      this.options.logger.warn('cannot give a container its claim', { container: container.name, error: String(error) });
    }
  }

  /** The instance a pid namespace belongs to, if any (the peer lookup). */
  instanceOfNamespace(key: bigint): Instance | undefined {
    return this.byNamespace.get(key);
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
      instances_by_namespace: this.byNamespace.size,
      isolated_idmaps: this.idmaps.size,
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
  async create(request: LaunchRequest): Promise<Container> {
    return this.define(request, undefined);
  }

  /** Creates a container and starts it; returns once it runs and is served. */
  async launch(request: LaunchRequest): Promise<Container> {
    const container = await this.define(request, 'starting');
    try {
      await this.startInstance(container);
    } catch (error) {
      // A launch that cannot start leaves nothing behind, so it can simply be retried.
      this.containers.delete(container.name);
      this.idmaps.delete(container.name);
      await this.options.store.remove(container.name).catch(() => undefined);
      await this.removeLogs(container.name);
      throw error;
    } finally {
      container.busy = undefined;
    }
    return container;
  }

  /**
   * Checks and saves a new container's record (origin `create`), busy with `busy`. One
   * that is only created (not busy starting) gets a claim: the token an OCI runtime's
   * start hook shows to bind to it (oci-binding.ts).
   */
  private async define(request: LaunchRequest, busy: string | undefined): Promise<Container> {
    assertContainerName(request.name);
    const config = this.validatedConfig(request.config);
    if (busy === undefined && config[claimKey] === undefined) config[claimKey] = newClaim();
    if (request.command !== null && request.command.length === 0) {
      throw new ApolloError('bad-request', 'the command is empty');
    }
    if (request.privileged && config[isolatedKey] === 'true') throw privilegedIsolated(request.name);
    if (this.containers.has(request.name)) {
      throw new ApolloError('conflict', `container ${JSON.stringify(request.name)} already exists`);
    }
    const record = newRecord(request.name, 'create', request.privileged, request.command);
    const container = new Container(withConfig(record, config, 'creation') ?? record);
    container.busy = busy;
    this.containers.set(record.name, container);
    try {
      await this.options.store.save(container.record);
    } catch (error) {
      this.containers.delete(record.name);
      throw error;
    }
    this.emitLifecycle(container, 'created');
    this.options.logger.info('container created', { container: record.name });
    return container;
  }

  async start(name: string): Promise<Container> {
    const container = this.get(name);
    this.claim(container, 'starting');
    try {
      if (container.instance?.running) throw new ApolloError('conflict', `container ${name} is already running`);
      if (container.record.origin === 'register') {
        throw new ApolloError('conflict', `container ${name} was started by another runtime: start it there`);
      }
      await this.startInstance(container);
      return container;
    } finally {
      container.busy = undefined;
    }
  }

  /** SIGTERM to the init, SIGKILL after the timeout (or at once with force). */
  async stop(name: string, options: { force?: boolean; timeoutMs?: number } = {}): Promise<Container> {
    const container = this.get(name);
    this.claim(container, 'stopping');
    try {
      const instance = container.instance;
      if (instance === undefined || !instance.running) {
        throw new ApolloError('conflict', `container ${name} is not running`);
      }
      if (container.record.origin === 'register') {
        throw new ApolloError('conflict', `container ${name} was started by another runtime: stop it there`);
      }
      await this.terminate(instance, options.force === true, options.timeoutMs ?? this.options.stopTimeoutMs);
      return container;
    } finally {
      container.busy = undefined;
    }
  }

  /** Deletes a stopped container; with force a running one is killed first (a registered one is only let go). */
  async delete(name: string, options: { force?: boolean } = {}): Promise<void> {
    const container = this.get(name);
    this.claim(container, 'deleting');
    try {
      const instance = container.instance;
      if (instance?.running) {
        if (options.force !== true) {
          throw new ApolloError('conflict', `container ${name} is running: stop it first or use --force`);
        }
        if (container.record.origin === 'register') await this.release(instance, 'unregistered');
        else await this.terminate(instance, true, 0);
      }
      await container.serialize(() => this.options.store.remove(name));
      this.containers.delete(name);
      this.idmaps.delete(name);
      await this.removeLogs(name);
      this.emitLifecycle(container, 'deleted');
      this.options.logger.info('container deleted', { container: name });
    } finally {
      container.busy = undefined;
    }
  }

  /**
   * Adopts a container another runtime started (LXC, OCI), by its init's pid. The pid must
   * be the init of its own pid namespace, and no other container may hold that namespace.
   */
  async register(name: string, pid: number, options: RegisterOptions = {}): Promise<Registration> {
    assertContainerName(name);
    if (!Number.isSafeInteger(pid) || pid <= 0) throw new ApolloError('bad-request', `invalid pid ${String(pid)}`);
    // An OCI state's annotations may be an image's: one naming a key devapollo does not
    // know is left out with a warning, not a failed start (the admin's own keys are checked).
    const unknown = options.oci === undefined ? { config: options.config ?? {}, ignored: [] } : knownAnnotationKeys(options.config ?? {});
    const requested = this.validatedConfig(unknown.config);
    const runtimeId = options.runtimeId;
    const existing = this.containers.get(name);
    if (existing !== undefined) {
      if (existing.record.origin === 'launch') {
        throw new ApolloError('conflict', `container ${name} was launched by devapollo; choose another name`);
      }
      if (existing.record.origin === 'create' && existing.record.command !== null) {
        throw new ApolloError('conflict', `container ${name} was created with a command for devapollo to run: start it with devapollo start`);
      }
      if (existing.instance?.running) throw new ApolloError('conflict', `container ${name} is already registered and running`);
      const refusal = options.oci === undefined ? undefined : ociBindRefusal(existing.record, runtimeId, options.oci);
      if (refusal !== undefined) {
        this.options.logger.warn('an OCI start hook was refused the name of an existing container', { container: name, pid });
        throw new ApolloError('forbidden', refusal);
      }
    }
    const { config: changes, ignored } =
      options.oci === undefined ? { config: requested, ignored: [] } : annotationConfig(requested, existing?.record);
    const warnings = [...unknown.ignored, ...ignored];
    for (const warning of warnings) this.options.logger.warn('OCI annotations ignored', { container: name, why: warning });
    // A container a runtime's hook may bind to again has a claim from its first registration.
    if (existing === undefined && changes[claimKey] === undefined) changes[claimKey] = newClaim();
    const { fd: pidfd } = openPidfd(pid);
    if (pidfd < 0) throw new ApolloError('bad-request', `no process with pid ${pid}`);
    let container: Container | undefined;
    let claimed = false;
    try {
      // Checked after the pidfd pins the process: the answer is about this very process.
      if (!isNamespaceInit(pid)) {
        throw new ApolloError('bad-request', `pid ${pid} is not the init (pid 1) of its own pid namespace`);
      }
      const startTime = processStartTime(pid);
      if (startTime === undefined || !pidfdIsAlive(pidfd)) throw new ApolloError('bad-request', `no process with pid ${pid}`);
      container = existing ?? new Container(newRecord(name, 'register', false, null));
      this.claim(container, 'registering');
      claimed = true;
      const instance = this.adopt(container, pid, pidfd, startTime);
      // A hook's -c at every start sets the same values again: those are no change.
      const when = existing === undefined ? 'creation' : 'change';
      let before = container.record.config;
      try {
        await this.update(container, (r) => {
          before = r.config;
          const { last_runtime_id: _lastRun, ...rest } = withGuestState(withConfig(r, changes, when) ?? r, 'Started');
          return {
            ...rest,
            origin: 'register',
            // Each run another runtime binds is a new instance (identity tokens name it).
            instance_uuid: randomUUID(),
            privileged: instance.rootUid === 0,
            init: {
              pid,
              start_time: startTime,
              boot_id: currentBootId(),
              ...(runtimeId === undefined ? {} : { runtime_id: runtimeId }),
            },
            // This run is the last one now (an LXC run, with no id, leaves none).
            ...(runtimeId === undefined ? {} : { last_runtime_id: runtimeId }),
          };
        });
      } catch (error) {
        this.unmap(instance);
        throw error;
      }
      this.containers.set(name, container);
      this.watch(instance);
      if (existing !== undefined) this.announceConfigChanges(container, before);
      this.emitLifecycle(container, 'started');
      this.options.logger.info('container registered', { container: name, pid });
      return { container, warnings };
    } catch (error) {
      if (container?.instance === undefined) closeFd(pidfd);
      throw error;
    } finally {
      if (claimed && container !== undefined) container.busy = undefined;
    }
  }

  /**
   * Lets go of a registered container's init without stopping it (another runtime's stop
   * hook): its namespace no longer maps, its record and config stay for the next start.
   * A created container that never ran has nothing to let go of. A stop hook runs late,
   * after the name may run again: with `run`, only that run is let go, any other is left
   * alone (the answer then shows it still Running).
   */
  async unregister(name: string, run: RunOfContainer = {}): Promise<Container> {
    const container = this.get(name);
    if (container.record.origin === 'launch') {
      throw new ApolloError('conflict', `container ${name} was launched by devapollo: use stop`);
    }
    const instance = container.instance;
    if (instance === undefined) return container;
    const other =
      (run.pid !== undefined && run.pid !== instance.pid) ||
      (run.runtimeId !== undefined && run.runtimeId !== container.record.init?.runtime_id);
    if (other) {
      this.options.logger.warn('a stop hook for another run of this container left it registered', { container: name, pid: instance.pid });
      return container;
    }
    await this.release(instance, 'unregistered');
    return container;
  }

  /** Sets (or, with null or "", unsets) config keys, durably, then tells listeners. */
  async setConfig(name: string, changes: Readonly<Record<string, string | null>>): Promise<Container> {
    const container = this.get(name);
    const validated = this.validatedConfig(changes);
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
  private announceConfigChanges(container: Container, before: Readonly<Record<string, string>>): void {
    const after = container.record.config;
    const value = (config: Readonly<Record<string, string>>, key: string) => (Object.hasOwn(config, key) ? config[key] : undefined);
    for (const key of new Set([...Object.keys(before), ...Object.keys(after)])) {
      if (value(before, key) === value(after, key)) continue;
      this.options.logger.info('config changed', { container: container.name, key });
      this.emitEvent(container, 'config', {
        key,
        old_value: value(before, key) ?? '',
        value: value(after, key) ?? '',
        etag: container.keyEtag(key),
      });
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
    const changes = this.validatedConfig(keyMap([[key, value]]));
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
    const changed = await this.update(container, (r) => (r.guest_state === state ? undefined : withGuestState(r, state)));
    if (changed) this.emitEvent(container, 'lifecycle', { action: 'guest-state', name: container.name, state });
  }

  /** Lets go of every instance without stopping any container (daemon shutdown). */
  close(): void {
    this.closed = true;
    for (const instance of this.byNamespace.values()) {
      this.options.watcher.unwatch(instance.pidfd);
      closeFd(instance.pidfd);
      closeFd(instance.pinFd);
    }
    this.byNamespace.clear();
  }

  logFile(name: string): string {
    return path.join(this.options.paths.logsDir, `${name}.log`);
  }

  /** NAME.log and its rotated NAME.log.1 (a monitor still draining finds them gone and stops). */
  private async removeLogs(name: string): Promise<void> {
    const log = this.logFile(name);
    await Promise.all([fsp.rm(log, { force: true }), fsp.rm(`${log}.1`, { force: true })]).catch(() => undefined);
  }

  private claim(container: Container, what: string): void {
    if (container.busy !== undefined) {
      throw new ApolloError('conflict', `container ${container.name} is busy (${container.busy})`);
    }
    container.busy = what;
  }

  private async startInstance(container: Container): Promise<void> {
    const ids = await this.idRangesFor(container);
    const { record } = container;
    let instance: Instance | undefined;
    try {
      await launchContainer(
        {
          name: record.name,
          privileged: record.privileged,
          command: record.command,
          guestDir: record.config['security.devapollo'] === 'false' ? null : this.options.paths.guestDir,
          lxdCompat: record.config['security.devapollo.lxd-compat'] === 'true',
          stageDir: this.options.paths.stageDir,
          logFile: this.logFile(record.name),
          maxLogBytes: this.options.maxLogBytes,
          uids: ids.uids,
          gids: ids.gids,
        },
        async (pid) => {
          // The launcher keeps the init unreaped until we answer, so this pid cannot be recycled.
          const { fd: pidfd, errno } = openPidfd(pid);
          if (pidfd < 0) throw new ApolloError('internal', `cannot open the init of ${record.name} (errno ${errno})`);
          const startTime = processStartTime(pid);
          if (startTime === undefined) {
            closeFd(pidfd);
            throw new ApolloError('internal', `the init of ${record.name} exited during start-up`);
          }
          try {
            instance = this.adopt(container, pid, pidfd, startTime);
          } catch (error) {
            closeFd(pidfd);
            throw error;
          }
          // devapollo runs it from now on: no hook may bind to it, so its claim has no use.
          await this.update(container, (r) => ({
            ...withGuestState(withConfig(r, keyMap([[claimKey, null]]), 'creation') ?? r, 'Started'),
            origin: 'launch',
            init: { pid, start_time: startTime, boot_id: currentBootId() },
          }));
        },
      );
    } catch (error) {
      // Registered, and then the command could not be executed, the init died or the
      // state could not be written: the init is killed and the registration undone.
      if (instance !== undefined) {
        signalPidfd(instance.pidfd, 'SIGKILL');
        if (instance.claimRelease()) await this.forget(instance);
      }
      throw error;
    }
    if (instance === undefined) throw new ApolloError('internal', `container ${record.name} did not register`);
    this.watch(instance);
    this.emitLifecycle(container, 'started');
    this.options.logger.info('container started', { container: record.name, pid: instance.pid });
  }

  /**
   * The host ranges the container is started with: its own with security.idmap.isolated
   * (allocated and recorded at its first such start, kept until it is deleted), else the
   * shared ones. A range it no longer uses stays reserved: files its root wrote under it
   * must not become another container's.
   */
  private async idRangesFor(container: Container): Promise<{ uids: IdRange; gids: IdRange }> {
    const { record } = container;
    if (record.privileged || record.config[isolatedKey] !== 'true') return { uids: this.options.uids, gids: this.options.gids };
    let idmap = this.idmaps.get(record.name) ?? record.idmap;
    if (idmap !== null) this.assertOwnRange(record.name, idmap);
    if (idmap === null) {
      const own = this.allocateIdmap(record.name);
      this.idmaps.set(record.name, own);
      try {
        await this.update(container, (r) => ({ ...r, idmap: own }));
      } catch (error) {
        this.idmaps.delete(record.name);
        throw error;
      }
      this.options.logger.info('container given its own id range', { container: record.name, uid_base: own.uid_base, gid_base: own.gid_base });
      idmap = own;
    }
    return { uids: { base: idmap.uid_base, count: idmap.count }, gids: { base: idmap.gid_base, count: idmap.count } };
  }

  /**
   * Refuses to start a container whose own range (from its record) overlaps another
   * record's own range or the shared one: two containers would share file ownership and
   * processes' uids (a state file copied by hand to clone a container copies its range).
   * Both records are kept as they are; the admin deletes one (or unsets
   * security.idmap.isolated of one made that way by mistake, after deleting the other).
   */
  private assertOwnRange(name: string, idmap: IdmapRecord): void {
    const clash = idmapClash(name, idmap, this.idmaps, this.options.uids, this.options.gids);
    if (clash === undefined) return;
    throw new ApolloError(
      'conflict',
      `container ${name} cannot start: its own id range (${describeIdmap(idmap)}) overlaps ${clash}; ` +
        'two containers must never share ids (was a state file copied by hand?): delete one of them with devapollo delete NAME, and the other starts',
    );
  }

  /** Says in the daemon's log which records' own ranges overlap (found at start-up); those containers are refused at start. */
  private reportIdmapClashes(): void {
    for (const [name, idmap] of this.idmaps) {
      const clash = idmapClash(name, idmap, this.idmaps, this.options.uids, this.options.gids);
      if (clash !== undefined) {
        this.options.logger.warn('a container\'s own id range overlaps another\'s: it is refused at start until one of them is deleted', { container: name, range: describeIdmap(idmap), overlaps: clash });
      }
    }
  }

  /** A uid and a gid range that no container holds and that are not the shared ones. */
  private allocateIdmap(name: string): IdmapRecord {
    const pick = (file: '/etc/subuid' | '/etc/subgid', shared: IdRange, base: (m: IdmapRecord) => number): number => {
      const reserved: IdRange[] = [shared];
      for (const idmap of this.idmaps.values()) reserved.push({ base: base(idmap), count: idmap.count });
      const ranges = rootRanges(file, this.options.readIdFile);
      const range = allocateRange(ranges, reserved);
      if (range === undefined) {
        const held = this.idmaps.size;
        throw new ApolloError(
          'conflict',
          `cannot give container ${name} its own id range: ${ranges.length === 0 ? `root has no range in ${file}` : `root's ranges in ${file} have no ${containerIdCount} ids left (${held} isolated container${held === 1 ? '' : 's'} hold${held === 1 ? 's' : ''} them)`}; add a range for root there, or unset ${isolatedKey}`,
        );
      }
      return range.base;
    };
    return {
      uid_base: pick('/etc/subuid', this.options.uids, (m) => m.uid_base),
      gid_base: pick('/etc/subgid', this.options.gids, (m) => m.gid_base),
      count: containerIdCount,
    };
  }

  /** Re-adopts an init after a daemon restart, if the same process still runs. */
  private tryAdopt(container: Container, pid: number, startTime: string): Instance | undefined {
    const { fd: pidfd } = openPidfd(pid);
    if (pidfd < 0) return undefined;
    // The pidfd pins whatever process has this pid now; its start time says whether it is ours.
    if (processStartTime(pid) !== startTime || !isNamespaceInit(pid)) {
      closeFd(pidfd);
      return undefined;
    }
    try {
      const instance = this.adopt(container, pid, pidfd, startTime);
      this.watch(instance);
      this.options.logger.info('container re-adopted', { container: container.name, pid });
      return instance;
    } catch (error) {
      closeFd(pidfd);
      this.options.logger.warn('cannot re-adopt container', { container: container.name, error: String(error) });
      return undefined;
    }
  }

  /**
   * Maps the init's pid namespace to a new instance. The caller has pinned the init with
   * `pidfd`; the namespace is read from /proc and the pidfd checked afterwards, so the
   * namespace is the init's own even if its pid had been recycled in between.
   */
  private adopt(container: Container, pid: number, pidfd: number, startTime: string): Instance {
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
      key = namespaceKey(nsfd);
      if (!namespaceKeysAreIds()) pinFd = nsfd;
    } finally {
      if (pinFd !== nsfd) closeFd(nsfd);
    }
    const holder = this.byNamespace.get(key);
    if (holder !== undefined && holder.running) {
      closeFd(pinFd);
      throw new ApolloError('conflict', `that pid namespace already belongs to container ${holder.container.name}`);
    }
    const rootUid = hostUidOfRoot(pid) ?? 0;
    const instance = new Instance(container, pid, pidfd, startTime, key, rootUid, pinFd);
    container.instance = instance;
    this.byNamespace.set(key, instance);
    return instance;
  }

  private watch(instance: Instance): void {
    this.options.watcher.watch(instance.pidfd, () => {
      void this.release(instance, 'exited');
    });
  }

  /** Drops an instance from the identity map at once; the pidfd stays open until release. */
  private unmap(instance: Instance): void {
    instance.markEnded();
    if (this.byNamespace.get(instance.namespaceKey) === instance) this.byNamespace.delete(instance.namespaceKey);
    if (instance.container.instance === instance) instance.container.instance = undefined;
    instance.container.notifyChanged();
  }

  /** The init exited or was let go: unmap it, record it as stopped, tell listeners. */
  private async release(instance: Instance, why: 'exited' | 'unregistered'): Promise<void> {
    if (this.closed || !instance.claimRelease()) return;
    const container = instance.container;
    await this.forget(instance);
    this.emitLifecycle(container, 'stopped');
    this.options.logger.info(why === 'exited' ? 'container stopped' : 'container unregistered', {
      container: container.name,
      pid: instance.pid,
    });
  }

  /** Unmaps an instance the caller has claimed, closes its descriptors, records it as stopped. */
  private async forget(instance: Instance): Promise<void> {
    const container = instance.container;
    this.unmap(instance);
    this.options.watcher.unwatch(instance.pidfd);
    closeFd(instance.pidfd);
    closeFd(instance.pinFd);
    try {
      if (this.containers.get(container.name) === container && container.record.init?.pid === instance.pid) {
        await this.update(container, (r) => ({ ...withGuestState(r, 'Started'), init: null }));
      }
    } catch (error) {
      this.options.logger.error('cannot record that a container stopped', { container: container.name, error: String(error) });
    } finally {
      instance.settle();
    }
  }

  private async terminate(instance: Instance, force: boolean, timeoutMs: number): Promise<void> {
    if (!force) {
      signalPidfd(instance.pidfd, 'SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([
        instance.ended.then(() => false),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), timeoutMs))),
      ]);
      clearTimeout(timer);
      if (!timedOut) return;
      this.options.logger.warn('container did not stop in time; killing it', { container: instance.container.name });
    }
    signalPidfd(instance.pidfd, 'SIGKILL');
    await instance.ended;
  }

  /**
   * Applies `change` to the record, durably, one update at a time per container. Returns
   * false when `change` returns undefined (nothing to do). The record in memory changes
   * only once the disk has it.
   */
  private update(container: Container, change: (record: ContainerRecord) => ContainerRecord | undefined): Promise<boolean> {
    return container.serialize(async () => {
      const next = change(container.record);
      if (next === undefined) return false;
      await this.options.store.save(next);
      container.record = next;
      container.notifyChanged();
      return true;
    });
  }

  /** Checks keys and values; returns the changes with "" normalised to null (unset). */
  private validatedConfig(changes: Readonly<Record<string, string | null>>): Record<string, string | null> {
    const out = keyMap<string | null>();
    for (const [key, value] of Object.entries(changes)) {
      assertConfigKey(key);
      if (value === null || value === '') {
        out[key] = null;
        continue;
      }
      if (typeof value !== 'string') throw new ApolloError('bad-request', `the value of ${key} must be a string`);
      assertSettableKey(key);
      const size = Buffer.byteLength(value, 'utf8');
      if (size > this.options.maxValueBytes) {
        throw new ApolloError(
          'payload-too-large',
          `the value of ${key} is ${size} bytes, more than the limit of ${this.options.maxValueBytes}`,
        );
      }
      if (booleanKeys.has(key) && value !== 'true' && value !== 'false') {
        throw new ApolloError('bad-request', `${key} must be "true" or "false", not ${JSON.stringify(value)}`);
      }
      if (key === instanceIdKey) assertInstanceId(value);
      out[key] = value;
    }
    return out;
  }

  private emitLifecycle(container: Container, action: string): void {
    this.emitEvent(container, 'lifecycle', { action, name: container.name });
  }

  private emitEvent(container: Container, type: 'config' | 'lifecycle', metadata: Record<string, unknown>): void {
    this.emit('event', { type, container: container.name, timestamp: new Date().toISOString(), metadata }, container);
  }
}

/** A new container's record: no config yet, nothing running, every revision at 0. */
export function newRecord(
  name: string,
  origin: ContainerRecord['origin'],
  privileged: boolean,
  command: readonly string[] | null,
): ContainerRecord {
  return {
    schema: stateSchemaVersion,
    name,
    uuid: randomUUID(),
    instance_uuid: randomUUID(),
    created_at: new Date().toISOString(),
    origin,
    privileged,
    command,
    config: keyMap(),
    revision: 0,
    key_revisions: keyMap(),
    list_revision: 0,
    state_revision: 0,
    guest_state: 'Started',
    init: null,
    idmap: null,
  };
}

function privilegedIsolated(name: string): ApolloError {
  return new ApolloError(
    'bad-request',
    `container ${name}: ${isolatedKey}=true needs an unprivileged container (a privileged one keeps host root and maps no ids)`,
  );
}

/**
 * The record with `changes` applied (null unsets), or undefined when nothing changes.
 * Each changed key gets the new revision, and so does the key list when a readable key
 * comes or goes: their ETags change exactly when what they answer does. A `change` (not
 * the values a container is created with) to cloud-init's data also gives it a new
 * instance-id, in this same record.
 */
function withConfig(
  record: ContainerRecord,
  changes: Readonly<Record<string, string | null>>,
  when: 'creation' | 'change',
): ContainerRecord | undefined {
  const config = mergeConfig(record.config, when === 'change' ? withNewInstanceId(record.config, changes) : changes);
  if (sameConfig(config, record.config)) return undefined;
  const revision = record.revision + 1;
  const keyRevisions = keyMap(Object.entries(record.key_revisions));
  let listChanged = false;
  for (const key of new Set([...Object.keys(record.config), ...Object.keys(config)])) {
    if (record.config[key] === config[key]) continue;
    keyRevisions[key] = revision;
    if (isGuestReadableKey(key) && (record.config[key] === undefined) !== (config[key] === undefined)) listChanged = true;
  }
  return {
    ...record,
    config,
    revision,
    key_revisions: keyRevisions,
    list_revision: listChanged ? revision : record.list_revision,
  };
}

/** The record with the guest's state set; /1.0's ETag changes only if the state does. */
function withGuestState(record: ContainerRecord, state: GuestState): ContainerRecord {
  if (record.guest_state === state) return record;
  const revision = record.revision + 1;
  return { ...record, guest_state: state, revision, state_revision: revision };
}

function mergeConfig(
  current: Readonly<Record<string, string>>,
  changes: Readonly<Record<string, string | null>>,
): Record<string, string> {
  const next = keyMap(Object.entries(current));
  for (const [key, value] of Object.entries(changes)) {
    if (value === null) delete next[key];
    else next[key] = value;
  }
  return keyMap(Object.entries(next).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function sameConfig(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  const ak = Object.keys(a);
  if (ak.length !== Object.keys(b).length) return false;
  return ak.every((k) => a[k] === b[k]);
}
