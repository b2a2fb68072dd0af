/**
 * A container the daemon manages, and the running instance of it (one per start).
 */
import type { ContainerRecord } from '../state/container-store.js';
import { pidfdIsAlive } from '../kernel/pidfd.js';

/**
 * One run of a container's init. Connections are bound to an instance, not to a name:
 * after a stop or a restart their requests no longer reach the container.
 */
export class Instance {
  /** False from the moment the init is known to have exited or was unregistered. */
  private live = true;
  private resolveEnded!: () => void;
  /** Settles once the instance has ended and the state on disk says so. */
  readonly ended = new Promise<void>((resolve) => (this.resolveEnded = resolve));

  constructor(
    readonly container: Container,
    readonly pid: number,
    readonly pidfd: number,
    readonly startTime: string,
    readonly namespaceKey: bigint,
    /** The host uid of the container's root: 0 for privileged, else the first mapped uid. */
    readonly rootUid: number,
    /** A descriptor that keeps the namespace alive while mapped (only where ids are inodes). */
    readonly pinFd: number,
  ) {}

  /**
   * Whether requests may still reach this instance. Checks the pidfd too, so an init that
   * died a moment ago is refused even before the exit watcher has reported it.
   */
  get running(): boolean {
    return this.live && this.container.instance === this && pidfdIsAlive(this.pidfd);
  }

  markEnded(): void {
    this.live = false;
  }

  private released = false;

  /** True the first time only: the caller then owns closing the descriptors, once. */
  claimRelease(): boolean {
    if (this.released) return false;
    this.released = true;
    return true;
  }

  settle(): void {
    this.resolveEnded();
  }
}

export class Container {
  instance: Instance | undefined;
  /** Set while a start, stop or delete is under way: a second one gets 409. */
  busy: string | undefined;
  private tail: Promise<unknown> = Promise.resolve();

  constructor(public record: ContainerRecord) {}

  get name(): string {
    return this.record.name;
  }

  get state(): 'Running' | 'Stopped' {
    return this.instance?.running ? 'Running' : 'Stopped';
  }

  /** The ETag of everything a guest can read: a stored revision, never a hash. */
  get etag(): string {
    return `"${this.record.uuid.slice(0, 8)}.${this.record.revision}"`;
  }

  /** Runs record updates one at a time, so that no update is lost to a concurrent one. */
  serialize<T>(task: () => Promise<T>): Promise<T> {
    const run = this.tail.then(task, task);
    this.tail = run.catch(() => undefined);
    return run;
  }
}
