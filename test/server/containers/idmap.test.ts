// Id ranges from /etc/subuid and /etc/subgid: root's ranges, the shared range, and the
// allocation of a container's own range (security.idmap.isolated), exhaustion included.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { allocateRange, describeIdmap, idmapClash, rootRanges, subordinateRange } from '../../../dist/server/containers/idmap.js';

const file = (text: string) => () => text;

describe('subordinate id ranges', () => {
  test("root's ranges, in file order; other owners and bad lines are ignored", () => {
    const text = 'alice:100000:65536\nroot:1000000:1000000000\n0:5000000000:131072\nroot:x:1\nroot:10:0\n\n';
    assert.deepEqual(rootRanges('/etc/subuid', file(text)), [
      { base: 1_000_000, count: 1_000_000_000 },
      { base: 5_000_000_000, count: 131072 },
    ]);
    assert.deepEqual(
      rootRanges('/etc/subuid', () => {
        throw new Error('ENOENT');
      }),
      [],
    );
  });

  test('the shared range is the first 65,536 ids of the first range big enough, else 1000000', () => {
    assert.deepEqual(subordinateRange('/etc/subuid', file('root:200000:1000\nroot:300000:70000\n')), { base: 300000, count: 65536 });
    assert.deepEqual(subordinateRange('/etc/subuid', file('')), { base: 1_000_000, count: 65536 });
  });

  test('a container gets the lowest free block, next to nothing reserved', () => {
    const ranges = [{ base: 1_000_000, count: 65536 * 4 }];
    const shared = { base: 1_000_000, count: 65536 };
    assert.deepEqual(allocateRange(ranges, [shared]), { base: 1_065_536, count: 65536 });
    const a = { base: 1_065_536, count: 65536 };
    const b = { base: 1_131_072, count: 65536 };
    assert.deepEqual(allocateRange(ranges, [shared, b, a]), { base: 1_196_608, count: 65536 });
    // A freed range (its container deleted) is given out again.
    assert.deepEqual(allocateRange(ranges, [shared, b]), a);
    // A reservation that is not aligned (the file changed) is stepped over, not overlapped.
    assert.deepEqual(allocateRange(ranges, [shared, { base: 1_070_000, count: 10 }]), { base: 1_070_010, count: 65536 });
  });

  test("root's ranges exhausted: nothing; a later range of root is used first", () => {
    const ranges = [{ base: 1_000_000, count: 65536 * 2 }];
    const shared = { base: 1_000_000, count: 65536 };
    assert.equal(allocateRange(ranges, [shared, { base: 1_065_536, count: 65536 }]), undefined);
    assert.equal(allocateRange([{ base: 1_000_000, count: 65535 }], []), undefined);
    assert.deepEqual(allocateRange([...ranges, { base: 9_000_000, count: 65536 }], [shared, { base: 1_065_536, count: 65536 }]), {
      base: 9_000_000,
      count: 65536,
    });
  });
});

describe('own ranges that records share (a state file copied by hand)', () => {
  const shared = { base: 1_000_000, count: 65536 };
  const own = (uid: number, gid = uid) => ({ uid_base: uid, gid_base: gid, count: 65536 });

  test('an overlap of uids or of gids with another record, or with the shared range, is named; apart is nothing', () => {
    const owned = new Map([
      ['first', own(1_065_536)],
      ['second', own(1_131_072)],
    ]);
    assert.equal(idmapClash('first', own(1_065_536), owned, shared, shared), undefined, 'its own entry is not a clash');
    assert.equal(
      idmapClash('clone', own(1_065_536), owned, shared, shared),
      "container first's (uids 1065536-1131071, gids 1065536-1131071)",
    );
    assert.equal(
      idmapClash('clone', own(1_200_000, 1_140_000), owned, shared, shared),
      "container second's (uids 1131072-1196607, gids 1131072-1196607)",
    );
    assert.match(
      idmapClash('odd', own(1_065_535), new Map(), shared, shared) ?? '',
      /^the shared range every container without security\.idmap\.isolated uses/,
    );
    assert.equal(idmapClash('apart', own(1_196_608), owned, shared, shared), undefined);
    assert.equal(describeIdmap(own(1_065_536, 2_000_000)), 'uids 1065536-1131071, gids 2000000-2065535');
  });
});
