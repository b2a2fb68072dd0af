/**
 * A list of objects with constant-time add and delete: an array, each item keeping its
 * index in its own `slot` field (-1 when not in the list), deleted by moving the last
 * item into its place.
 *
 * The guest server keeps its open connections in one for the idle sweep. A Set did the
 * same, but with a socket added and deleted per connection the daemon promoted 1.75 KiB a
 * connection to V8's old generation instead of 0.7 KiB, and its collector took about 6 µs
 * more a connection (main thread and helper threads; --trace-gc-nvp under the
 * new-connection benchmark).
 */
export interface Slotted {
  slot: number;
}

export class SlotList<T extends Slotted> {
  private readonly items: T[] = [];

  get size(): number {
    return this.items.length;
  }

  /** Adds `item`; adding one that is already in the list changes nothing. */
  add(item: T): void {
    if (item.slot >= 0) return;
    item.slot = this.items.length;
    this.items.push(item);
  }

  /** Deletes `item`; deleting one that is not in the list changes nothing. */
  delete(item: T): void {
    const index = item.slot;
    if (index < 0) return;
    item.slot = -1;
    const last = this.items.pop() as T;
    if (last !== item) {
      this.items[index] = last;
      last.slot = index;
    }
  }

  /** Visits every item, last added first; `visit` may delete the item it is given. */
  forEach(visit: (item: T) => void): void {
    for (let i = this.items.length - 1; i >= 0; i--) {
      const item = this.items[i];
      if (item !== undefined) visit(item);
    }
  }
}
