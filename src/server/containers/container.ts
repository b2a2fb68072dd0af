/**
 * A container the daemon manages, and the running instance of it (one per start).
 */
import { ApolloError } from '../../shared/errors.js';
import { asKeyMap } from '../../shared/key-map.js';
import { pidfdIsAlive } from '../kernel/pidfd.js';
import type { ContainerRecord } from '../state/container-store.js';
import { type ChangeTopic, ChangeWaiters, changeTopics, metaDataKeys } from './change-waiters.js';
import { etagPrefix, keyRevision, metaDataRevision } from './record-rules.js';

let turn = 0;
let turnEnding = false;
function endTurn(): void {
  turn++;
  turnEnding = false;
}

/**
 * A number for the current turn of the event loop, counted only while something asks:
 * the first call in a turn schedules one setImmediate, which runs once the turn's I/O
 * callbacks are done and ends the turn. (Asked from a setImmediate callback, the turn
 * ends with the next loop iteration's immediates.)
 */
export function currentTurn(): number {
  if (!turnEnding) {
    turnEnding = true;
    setImmediate(endTurn);
  }
  return turn;
}

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

  /** The event-loop turn in which the init's pidfd was last polled and found alive. */
  private aliveInTurn = -1;

  /**
   * Whether requests may still reach this instance. Checks the pidfd too (a poll, about
   * 0.7 µs), so an init that died a moment ago is refused even before the exit watcher
   * has reported it, however busy the daemon's thread pool is. Once a turn of the event
   * loop: the requests a turn answers were all read from one batch of ready sockets, and
   * under load one poll then serves several of them.
   */
  get running(): boolean {
    if (!this.live || this.container.instance !== this) return false;
    const turn = currentTurn();
    if (this.aliveInTurn === turn) return true;
    if (!pidfdIsAlive(this.pidfd)) return false;
    this.aliveInTurn = turn;
    return true;
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

/**
 * Runs `task` with the container marked busy with `what` (starting, stopping...): a
 * second command meanwhile is refused with 409 instead of racing it. Freed when the task
 * ends, however it ends.
 */
export async function whileBusy<T>(container: Container, what: string, task: () => Promise<T>): Promise<T> {
  if (container.busy !== undefined) {
    throw new ApolloError('conflict', `container ${container.name} is busy (${container.busy})`);
  }
  container.busy = what;
  try {
    return await task();
  } finally {
    container.busy = undefined;
  }
}

export class Container {
  instance: Instance | undefined;
  /** Set while a start, stop or delete is under way (`whileBusy`): a second one gets 409. */
  busy: string | undefined;
  /**
   * Set, in its update queue, once its record is removed (deleted, or a launch that could not
   * start): an update still queued or still to come (a request whose body arrived after the
   * delete) must not save the record again over the file of a container re-created under
   * the same name.
   */
  removed = false;
  private tail: Promise<unknown> = Promise.resolve();

  private current!: ContainerRecord;

  constructor(record: ContainerRecord) {
    this.record = record;
    this.notifiedRecord = this.record;
  }

  /**
   * The container's record. Its `config` and `key_revisions` have no prototype, however
   * the record was made (loaded, built by the record rules, by a test): every lookup by
   * a key a user typed (`config[key]`) answers only what is set (src/shared/key-map.ts).
   */
  get record(): ContainerRecord {
    return this.current;
  }

  set record(next: ContainerRecord) {
    const config = asKeyMap(next.config);
    const keyRevisions = asKeyMap(next.key_revisions);
    this.current = config === next.config && keyRevisions === next.key_revisions ? next : { ...next, config, key_revisions: keyRevisions };
  }

  /** The ETag of `revision` (record-rules `etagOf`), its prefix kept: it is asked on every request. */
  etag(revision: number): string {
    this.etagPrefix ??= etagPrefix(this.record);
    return `${this.etagPrefix}${revision}"`;
  }

  private etagPrefix: string | undefined;

  /** The ETag of /1.0/config/KEY: changes exactly when KEY is set, changed or unset. */
  keyEtag(key: string): string {
    return this.etag(keyRevision(this.record, key));
  }

  /**
   * Resolves true at the next change of `topic` on this container (or of anything that
   * may end the right to ask), false when `timeoutMs` passes or `signal` aborts first.
   */
  nextChange(topic: ChangeTopic, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    return this.waiters.wait(topic, timeoutMs, signal);
  }

  /** Change-waits pending on this container. */
  get pendingWaits(): number {
    return this.waiters.size;
  }

  /**
   * Wakes the waits on what changed since the last call: the record (and the instance)
   * are compared with what they were then. Called after every change of either.
   */
  notifyChanged(): void {
    const before = this.notifiedRecord;
    const after = this.record;
    const instanceBefore = this.notifiedInstance;
    this.notifiedRecord = after;
    this.notifiedInstance = this.instance;
    if (instanceBefore !== this.instance || (instanceBefore !== undefined && !instanceBefore.running)) {
      this.waiters.wakeAll();
      return;
    }
    if (before === after) return;
    if (before.state_revision !== after.state_revision) this.waiters.wake(changeTopics.state);
    if (before.list_revision !== after.list_revision) this.waiters.wake(changeTopics.keyList);
    if (before.key_revisions === after.key_revisions) return;
    let metaData = false;
    const changed = (key: string): boolean => {
      // Who may ask, and what they may read, is in security.* keys: everyone re-checks.
      if (key.startsWith('security.')) {
        this.waiters.wakeAll();
        return true;
      }
      this.waiters.wake(changeTopics.key(key));
      if (metaDataKeys.includes(key)) metaData = true;
      return false;
    };
    for (const key of Object.keys(after.key_revisions)) {
      if (before.key_revisions[key] !== after.key_revisions[key] && changed(key)) return;
    }
    for (const key of Object.keys(before.key_revisions)) {
      if (after.key_revisions[key] === undefined && changed(key)) return;
    }
    if (metaData) this.waiters.wake(changeTopics.metaData);
  }

  /** The ETag of /1.0/meta-data: changes exactly when one of the keys it is built from does. */
  metaDataEtag(): string {
    return this.etag(metaDataRevision(this.record));
  }

  private readonly waiters = new ChangeWaiters();
  /** The record and instance as the waits last heard of them. */
  private notifiedRecord: ContainerRecord;
  private notifiedInstance: Instance | undefined;

  get name(): string {
    return this.record.name;
  }

  get state(): 'Running' | 'Stopped' {
    return this.instance?.running ? 'Running' : 'Stopped';
  }

  /** Runs record updates one at a time, so that no update is lost to a concurrent one. */
  serialize<T>(task: () => Promise<T>): Promise<T> {
    const run = this.tail.then(task, task);
    this.tail = run.catch(() => undefined);
    return run;
  }
}
