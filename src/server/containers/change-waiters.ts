/**
 * The change-waits of one container (`?wait=true`, docs/api.md, "Conventions"), indexed by
 * what each waits on: a change wakes only the waits on what it changed, so its cost is
 * in proportion to those waits, not to all of the container's. A change that may end
 * the right to ask (the instance ended, a `security.*` key) wakes every one of them.
 *
 * A woken wait re-reads its answer and waits again if its ETag is unchanged; a topic is
 * only ever woken too often, never too seldom, so no change between two waits is missed.
 */

/** What a wait waits on; see `changeTopics`. */
export type ChangeTopic = string;

/** The topics of the guest API's waitable answers and the record fields behind their ETags. */
export const changeTopics = {
  /** `/1.0`: the guest state (`state_revision`). */
  state: 'state',
  /** `/1.0/config`: the list of readable keys (`list_revision`). */
  keyList: 'key-list',
  /** `/1.0/meta-data`: the revisions of `metaDataKeys`. */
  metaData: 'meta-data',
  /** `/1.0/config/KEY`: that key's revision. */
  key: (key: string): ChangeTopic => `key:${key}`,
} as const;

/**
 * The keys meta-data is built from: `user.meta-data`, and the instance-id the daemon keeps
 * in `volatile.cloud-init.instance-id` (docs/api.md, "Guest API"). Its ETag and its waits
 * follow exactly these keys: a key that starts to shape meta-data belongs here.
 */
export const metaDataKeys: readonly string[] = ['user.meta-data', 'volatile.cloud-init.instance-id'];

interface Waiter {
  readonly topic: ChangeTopic;
  readonly resolve: (changed: boolean) => void;
  readonly timer: NodeJS.Timeout;
  readonly signal: AbortSignal | undefined;
  readonly onAbort: () => void;
}

export class ChangeWaiters {
  private readonly byTopic = new Map<ChangeTopic, Set<Waiter>>();
  private count = 0;

  /** Waits registered right now. */
  get size(): number {
    return this.count;
  }

  /**
   * Resolves true at the next wake of `topic` (or of everything), false when `timeoutMs`
   * passes or `signal` aborts first. Registered before it returns: a wake right after the
   * call is seen.
   */
  wait(topic: ChangeTopic, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    return new Promise((resolve) => {
      if (signal?.aborted === true) {
        resolve(false);
        return;
      }
      const waiter: Waiter = {
        topic,
        resolve,
        timer: setTimeout(() => this.settle(waiter, false), timeoutMs),
        signal,
        onAbort: () => this.settle(waiter, false),
      };
      signal?.addEventListener('abort', waiter.onAbort, { once: true });
      let set = this.byTopic.get(topic);
      if (set === undefined) {
        set = new Set();
        this.byTopic.set(topic, set);
      }
      set.add(waiter);
      this.count++;
    });
  }

  /** Wakes the waits on `topic`. */
  wake(topic: ChangeTopic): void {
    const set = this.byTopic.get(topic);
    if (set === undefined) return;
    for (const waiter of [...set]) this.settle(waiter, true);
  }

  /** Wakes every wait (a change that may end the right to ask). */
  wakeAll(): void {
    for (const set of [...this.byTopic.values()]) for (const waiter of [...set]) this.settle(waiter, true);
  }

  private settle(waiter: Waiter, changed: boolean): void {
    const set = this.byTopic.get(waiter.topic);
    if (set === undefined || !set.delete(waiter)) return;
    if (set.size === 0) this.byTopic.delete(waiter.topic);
    this.count--;
    clearTimeout(waiter.timer);
    waiter.signal?.removeEventListener('abort', waiter.onAbort);
    waiter.resolve(changed);
  }
}
