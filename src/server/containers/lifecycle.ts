/**
 * The lifecycle commands: create, launch, start, stop, delete, and the binding of runs
 * another runtime started (register, unregister), with the re-adoption of running inits
 * after a daemon restart. Each command holds its container busy (`whileBusy`) while it
 * runs; the record rules decide what the record becomes, the book makes it durable and
 * tells listeners, the registry maps and lets go of instances.
 */
import { randomUUID } from 'node:crypto';
import { ApolloError } from '../../shared/errors.js';
import { keyMap } from '../../shared/key-map.js';
import { assertContainerName } from '../../shared/names.js';
import { closeFd, openPidfd, pidfdIsAlive, reapedExitStatus, signalPidfd } from '../kernel/pidfd.js';
import { currentBootId, isNamespaceInit, processStartTime, shellExitStatus, zombieExitStatus } from '../kernel/proc.js';
import type { Logger } from '../log.js';
import type { DaemonPaths } from '../paths.js';
import type { ContainerRecord, ContainerStore } from '../state/container-store.js';
import { Container, type Instance, whileBusy } from './container.js';
import type { InstanceRegistry } from './instance-registry.js';
import type { IsolatedRanges } from './isolated-ranges.js';
import { LaunchHandshake } from './launcher.js';
import { annotationConfig, claimKey, knownAnnotationKeys, newClaim, type OciStartFacts, ociBindRefusal } from './oci-binding.js';
import {
  type ConfigChanges,
  isolatedKey,
  newRecord,
  privilegedIsolated,
  validatedConfig,
  withConfig,
  withGuestState,
} from './record-rules.js';

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

/** What the lifecycle needs of the manager: the containers, made durable and announced. */
export interface ContainerBook {
  readonly containers: Map<string, Container>;
  get(name: string): Container;
  /** Applies `change` to the record durably, one update at a time; false when nothing changed. */
  update(container: Container, change: (record: ContainerRecord) => ContainerRecord | undefined): Promise<boolean>;
  emitLifecycle(container: Container, action: string): void;
  announceConfigChanges(container: Container, before: Readonly<Record<string, string>>): void;
  logFile(name: string): string;
  removeLogs(name: string): Promise<void>;
}

export interface LifecycleOptions {
  readonly paths: DaemonPaths;
  readonly store: ContainerStore;
  readonly logger: Logger;
  readonly maxValueBytes: number;
  readonly stopTimeoutMs: number;
  readonly maxLogBytes: number;
}

/** A stop under way: a second stop joins it, one with force kills at once. */
interface StopInProgress {
  readonly done: Promise<void>;
  kill(): void;
}

export class Lifecycle {
  private readonly stops = new WeakMap<Instance, StopInProgress>();

  constructor(
    private readonly book: ContainerBook,
    private readonly registry: InstanceRegistry,
    private readonly ranges: IsolatedRanges,
    private readonly options: LifecycleOptions,
  ) {}

  /** Loads the records and re-adopts every init that still runs (same pid, start time, boot). */
  async restore(records: readonly ContainerRecord[]): Promise<void> {
    const bootId = currentBootId();
    for (const record of records) {
      const container = new Container(record);
      this.book.containers.set(record.name, container);
      this.ranges.remember(record.name, record.idmap);
      if (record.origin !== 'launch' && record.config[claimKey] === undefined) await this.giveClaim(container);
      const init = record.init;
      if (init === null) continue;
      const adopted = init.boot_id === bootId ? this.tryAdopt(container, init.pid, init.start_time) : undefined;
      if (adopted === undefined) {
        this.options.logger.info('container is no longer running', { container: record.name, pid: init.pid });
        await this.book.update(container, (r) => ({ ...withGuestState(r, 'Started'), init: null }));
      }
    }
    this.ranges.reportClashes();
  }

  /**
   * A container a runtime's hook may bind to that has no claim (made by a devapollo from
   * before claims, or unset by hand) gets one at start-up; if it cannot be written, the
   * container stays bindable only by its own runs, as it was.
   */
  private async giveClaim(container: Container): Promise<void> {
    try {
      await this.book.update(container, (r) => withConfig(r, keyMap([[claimKey, newClaim()]]), 'creation'));
    } catch (error) {
      this.options.logger.warn('cannot give a container its claim', { container: container.name, error: String(error) });
    }
  }

  /** Defines a container without starting it (origin `create`). */
  async create(request: LaunchRequest): Promise<Container> {
    const container = this.newContainer(request, true);
    await this.add(container);
    return container;
  }

  /** Creates a container and starts it; returns once it runs and is served. */
  async launch(request: LaunchRequest): Promise<Container> {
    const container = this.newContainer(request, false);
    // Busy before its name is taken: nothing can start, stop or delete it half-made.
    return whileBusy(container, 'starting', async () => {
      await this.add(container);
      try {
        await this.startInstance(container);
      } catch (error) {
        // A launch that cannot start leaves nothing behind, so it can simply be retried.
        this.book.containers.delete(container.name);
        this.ranges.forget(container.name);
        await container
          .serialize(async () => {
            container.removed = true;
            await this.options.store.remove(container.name);
          })
          .catch(() => undefined);
        await this.book.removeLogs(container.name);
        throw error;
      }
      return container;
    });
  }

  async start(name: string): Promise<Container> {
    const container = this.book.get(name);
    return whileBusy(container, 'starting', async () => {
      if (container.instance?.running) throw new ApolloError('conflict', `container ${name} is already running`);
      if (container.record.origin === 'register') {
        throw new ApolloError('conflict', `container ${name} was started by another runtime: start it there`);
      }
      await this.startInstance(container);
      return container;
    });
  }

  /**
   * SIGTERM to the init, SIGKILL after the timeout (or at once with force). The stop is
   * the daemon's once asked: it goes on if the caller hangs up (Ctrl-C in `devapollo
   * stop`). A second stop while one is under way waits for the same end instead of a 409;
   * with force it kills the init at once, so the container is not held busy for the rest
   * of the first one's timeout.
   */
  async stop(name: string, options: { force?: boolean; timeoutMs?: number } = {}): Promise<Container> {
    const container = this.book.get(name);
    const underWay = container.instance === undefined ? undefined : this.stops.get(container.instance);
    if (underWay !== undefined) {
      if (options.force === true) underWay.kill();
      await underWay.done;
      return container;
    }
    return whileBusy(container, 'stopping', async () => {
      const instance = container.instance;
      if (instance === undefined || !instance.running) {
        throw new ApolloError('conflict', `container ${name} is not running`);
      }
      if (container.record.origin === 'register') {
        throw new ApolloError('conflict', `container ${name} was started by another runtime: stop it there`);
      }
      await this.terminate(instance, options.force === true, options.timeoutMs ?? this.options.stopTimeoutMs);
      return container;
    });
  }

  /**
   * Stops the container as `stop` does (if it runs) and starts it again, busy throughout,
   * so no other command slips in between. A stopped one is simply started, as `docker
   * restart` does. Another runtime's containers are restarted there.
   */
  async restart(name: string, options: { force?: boolean; timeoutMs?: number } = {}): Promise<Container> {
    const container = this.book.get(name);
    return whileBusy(container, 'restarting', async () => {
      if (container.record.origin === 'register') {
        throw new ApolloError('conflict', `container ${name} was started by another runtime: restart it there`);
      }
      const instance = container.instance;
      if (instance?.running) await this.terminate(instance, options.force === true, options.timeoutMs ?? this.options.stopTimeoutMs);
      await this.startInstance(container);
      return container;
    });
  }

  /** Deletes a stopped container; with force a running one is killed first (a registered one is only let go). */
  async delete(name: string, options: { force?: boolean } = {}): Promise<void> {
    const container = this.book.get(name);
    await whileBusy(container, 'deleting', async () => {
      const instance = container.instance;
      if (instance?.running) {
        if (options.force !== true) {
          throw new ApolloError('conflict', `container ${name} is running: stop it first or use --force`);
        }
        if (container.record.origin === 'register') await this.release(instance, 'unregistered');
        else await this.terminate(instance, true, 0);
      }
      await container.serialize(async () => {
        await this.options.store.remove(name);
        container.removed = true;
      });
      this.book.containers.delete(name);
      this.ranges.forget(name);
      await this.book.removeLogs(name);
      this.book.emitLifecycle(container, 'deleted');
      this.options.logger.info('container deleted', { container: name });
    });
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
    const requested = validatedConfig(unknown.config, this.options.maxValueBytes);
    const runtimeId = options.runtimeId;
    const existing = this.book.containers.get(name);
    if (existing !== undefined) {
      if (existing.record.origin === 'launch') {
        throw new ApolloError('conflict', `container ${name} was launched by devapollo; choose another name`);
      }
      if (existing.record.origin === 'create' && existing.record.command !== null) {
        throw new ApolloError(
          'conflict',
          `container ${name} was created with a command for devapollo to run: start it with devapollo start`,
        );
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
    try {
      // Checked after the pidfd pins the process: the answer is about this very process.
      if (!isNamespaceInit(pid)) {
        throw new ApolloError('bad-request', `pid ${pid} is not the init (pid 1) of its own pid namespace`);
      }
      const startTime = processStartTime(pid);
      if (startTime === undefined || !pidfdIsAlive(pidfd)) throw new ApolloError('bad-request', `no process with pid ${pid}`);
      const bound = existing ?? new Container(newRecord(name, 'register', false, null));
      container = bound;
      const registered = await whileBusy(bound, 'registering', () =>
        this.bindRun(bound, existing !== undefined, pid, pidfd, startTime, changes, runtimeId),
      );
      return { container: registered, warnings };
    } catch (error) {
      if (container?.instance === undefined) closeFd(pidfd);
      throw error;
    }
  }

  /** The busy part of `register`: map the run, record it, announce it. */
  private async bindRun(
    container: Container,
    existed: boolean,
    pid: number,
    pidfd: number,
    startTime: string,
    changes: ConfigChanges,
    runtimeId: string | undefined,
  ): Promise<Container> {
    const instance = this.registry.adopt(container, pid, pidfd, startTime);
    // A hook's -c at every start sets the same values again: those are no change.
    const when = existed ? 'change' : 'creation';
    let before = container.record.config;
    try {
      await this.book.update(container, (r) => {
        before = r.config;
        const { last_runtime_id: _lastRun, ...rest } = withGuestState(withConfig(r, changes, when) ?? r, 'Started');
        return {
          ...rest,
          origin: 'register',
          // Each run another runtime binds is a new instance (identity tokens name it).
          instance_uuid: randomUUID(),
          exit_code: null,
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
      this.registry.unmap(instance);
      throw error;
    }
    this.book.containers.set(container.name, container);
    this.watch(instance);
    if (existed) this.book.announceConfigChanges(container, before);
    this.book.emitLifecycle(container, 'started');
    this.options.logger.info('container registered', { container: container.name, pid });
    return container;
  }

  /**
   * Lets go of a registered container's init without stopping it (another runtime's stop
   * hook): its namespace no longer maps, its record and config stay for the next start.
   * A created container that never ran has nothing to let go of. A stop hook runs late,
   * after the name may run again: with `run`, only that run is let go, any other is left
   * alone (the answer then shows it still Running).
   */
  async unregister(name: string, run: RunOfContainer = {}): Promise<Container> {
    const container = this.book.get(name);
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

  /**
   * A new container (origin `create`) from a request, checked; not yet in the book. One
   * that is only created (`bindable`: not started at once) gets a claim: the token an OCI
   * runtime's start hook shows to bind to it (oci-binding.ts).
   */
  private newContainer(request: LaunchRequest, bindable: boolean): Container {
    assertContainerName(request.name);
    const config = validatedConfig(request.config, this.options.maxValueBytes);
    if (bindable && config[claimKey] === undefined) config[claimKey] = newClaim();
    if (request.command !== null && request.command.length === 0) {
      throw new ApolloError('bad-request', 'the command is empty');
    }
    if (request.privileged && config[isolatedKey] === 'true') throw privilegedIsolated(request.name);
    this.assertNameFree(request.name);
    const record = newRecord(request.name, 'create', request.privileged, request.command);
    return new Container(withConfig(record, config, 'creation') ?? record);
  }

  /** Takes the container's name and saves its record. */
  private async add(container: Container): Promise<void> {
    // Checked again in the same turn as the name is taken: two creates at once never both win.
    this.assertNameFree(container.name);
    this.book.containers.set(container.name, container);
    try {
      await this.options.store.save(container.record);
    } catch (error) {
      this.book.containers.delete(container.name);
      throw error;
    }
    this.book.emitLifecycle(container, 'created');
    this.options.logger.info('container created', { container: container.name });
  }

  private assertNameFree(name: string): void {
    if (this.book.containers.has(name)) throw new ApolloError('conflict', `container ${JSON.stringify(name)} already exists`);
  }

  /** Runs the launcher's hand-shake: the init is registered and served before it runs its command. */
  private async startInstance(container: Container): Promise<void> {
    const ids = await this.ranges.rangesFor(container, (idmap) => this.book.update(container, (r) => ({ ...r, idmap })));
    const { record } = container;
    const launch = LaunchHandshake.start({
      name: record.name,
      privileged: record.privileged,
      command: record.command,
      guestDir: record.config['security.devapollo'] === 'false' ? null : this.options.paths.guestDir,
      lxdCompat: record.config['security.devapollo.lxd-compat'] === 'true',
      stageDir: this.options.paths.stageDir,
      logFile: this.book.logFile(record.name),
      maxLogBytes: this.options.maxLogBytes,
      uids: ids.uids,
      gids: ids.gids,
    });
    let instance: Instance | undefined;
    try {
      const pid = await launch.ready;
      instance = this.adoptLaunched(container, pid);
      const { startTime } = instance;
      // devapollo runs it from now on: no hook may bind to it, so its claim has no use.
      await this.book.update(container, (r) => ({
        ...withGuestState(withConfig(r, keyMap([[claimKey, null]]), 'creation') ?? r, 'Started'),
        origin: 'launch',
        init: { pid, start_time: startTime, boot_id: currentBootId() },
        exit_code: null,
      }));
      await launch.go();
    } catch (error) {
      launch.abort();
      // Registered, and then the command could not be executed, the init died or the
      // state could not be written: the init is killed and the registration undone.
      if (instance !== undefined) {
        signalPidfd(instance.pidfd, 'SIGKILL');
        if (this.registry.release(instance)) await this.recordStopped(instance);
      }
      throw error;
    }
    this.watch(instance);
    this.book.emitLifecycle(container, 'started');
    this.options.logger.info('container started', { container: record.name, pid: instance.pid });
  }

  /** Pins the launched init (the launcher keeps it unreaped until "go") and maps it. */
  private adoptLaunched(container: Container, pid: number): Instance {
    const name = container.name;
    const { fd: pidfd, errno } = openPidfd(pid);
    if (pidfd < 0) throw new ApolloError('internal', `cannot open the init of ${name} (errno ${errno})`);
    try {
      const startTime = processStartTime(pid);
      if (startTime === undefined) throw new ApolloError('internal', `the init of ${name} exited during start-up`);
      return this.registry.adopt(container, pid, pidfd, startTime);
    } catch (error) {
      closeFd(pidfd);
      throw error;
    }
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
      const instance = this.registry.adopt(container, pid, pidfd, startTime);
      this.watch(instance);
      this.options.logger.info('container re-adopted', { container: container.name, pid });
      return instance;
    } catch (error) {
      closeFd(pidfd);
      this.options.logger.warn('cannot re-adopt container', { container: container.name, error: String(error) });
      return undefined;
    }
  }

  private watch(instance: Instance): void {
    this.registry.watch(instance, () => {
      void this.release(instance, 'exited');
    });
  }

  /** The init exited or was let go: unmap it, record it as stopped, tell listeners. */
  private async release(instance: Instance, why: 'exited' | 'unregistered'): Promise<void> {
    // Read while the pidfd is still open: a zombie's /proc entry, or the kernel's record of a reaped one.
    const exitCode = why === 'exited' ? exitStatusOf(instance) : undefined;
    if (!this.registry.release(instance)) return;
    const container = instance.container;
    await this.recordStopped(instance, exitCode);
    this.book.emitLifecycle(container, 'stopped');
    this.options.logger.info(why === 'exited' ? 'container stopped' : 'container unregistered', {
      container: container.name,
      pid: instance.pid,
    });
  }

  /** Records a released instance as stopped (if its record still names it), then settles it. */
  private async recordStopped(instance: Instance, exitCode?: number): Promise<void> {
    const container = instance.container;
    try {
      if (this.book.containers.get(container.name) === container && container.record.init?.pid === instance.pid) {
        await this.book.update(container, (r) => ({ ...withGuestState(r, 'Started'), init: null, exit_code: exitCode ?? null }));
      }
    } catch (error) {
      this.options.logger.error('cannot record that a container stopped', { container: container.name, error: String(error) });
    } finally {
      instance.settle();
    }
  }

  /** SIGTERM, then SIGKILL after `timeoutMs` or when a second stop asks for force. */
  private async terminate(instance: Instance, force: boolean, timeoutMs: number): Promise<void> {
    if (force) {
      signalPidfd(instance.pidfd, 'SIGKILL');
      await instance.ended;
      return;
    }
    let killNow!: () => void;
    const forced = new Promise<'forced'>((resolve) => (killNow = () => resolve('forced')));
    const done = instance.ended;
    this.stops.set(instance, { done, kill: killNow });
    try {
      signalPidfd(instance.pidfd, 'SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const outcome = await Promise.race([
        done.then(() => 'stopped' as const),
        forced,
        new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs))),
      ]);
      clearTimeout(timer);
      if (outcome === 'stopped') return;
      if (outcome === 'timeout')
        this.options.logger.warn('container did not stop in time; killing it', { container: instance.container.name });
      signalPidfd(instance.pidfd, 'SIGKILL');
      await done;
    } finally {
      this.stops.delete(instance);
    }
  }
}

/**
 * How the init ended, as a shell reports it: from /proc while it is a zombie (its start
 * time proves it is the same process), else from the kernel's record once its parent (the
 * monitor) has reaped it (Linux 6.15+); undefined when neither can tell.
 */
function exitStatusOf(instance: Instance): number | undefined {
  const fromZombie = zombieExitStatus(instance.pid, instance.startTime);
  if (fromZombie !== undefined) return fromZombie;
  const reaped = reapedExitStatus(instance.pidfd);
  return reaped === undefined ? undefined : shellExitStatus(reaped);
}
