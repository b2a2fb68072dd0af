// The guest server's list of open connections for the idle sweep: constant-time add and
// delete, and a visit that may delete what it is given.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SlotList } from '../../../dist/server/guest/slot-list.js';

const items = (n: number) => Array.from({ length: n }, (_, id) => ({ id, slot: -1 }));
type Item = { id: number; slot: number };
const ids = (list: SlotList<Item>) => {
  const seen: number[] = [];
  list.forEach((item) => {
    seen.push(item.id);
  });
  return seen.sort((a, b) => a - b);
};

describe('SlotList', () => {
  test('add and delete in any order; each item is visited once', () => {
    const list = new SlotList<Item>();
    const all = items(6);
    for (const item of all) list.add(item);
    list.add(all[2]!);
    assert.equal(list.size, 6);
    list.delete(all[2]!);
    list.delete(all[0]!);
    list.delete(all[5]!);
    list.delete(all[2]!);
    assert.equal(list.size, 3);
    assert.deepEqual(ids(list), [1, 3, 4]);
    list.add(all[2]!);
    assert.deepEqual(ids(list), [1, 2, 3, 4]);
    for (const item of all) list.delete(item);
    assert.equal(list.size, 0);
    assert.deepEqual(ids(list), []);
  });

  test('a visit that deletes the item it is given still visits every other item once', () => {
    const list = new SlotList<Item>();
    for (const item of items(10)) list.add(item);
    const visited: number[] = [];
    list.forEach((item) => {
      visited.push(item.id);
      if (item.id % 3 !== 1) list.delete(item);
    });
    assert.deepEqual(
      visited.sort((a, b) => a - b),
      [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    );
    assert.deepEqual(ids(list), [1, 4, 7]);
  });
});
