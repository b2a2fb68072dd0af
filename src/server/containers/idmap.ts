/**
 * Host uid and gid ranges for unprivileged containers, from root's subordinate ranges in
 * /etc/subuid and /etc/subgid, as LXD does. By default every container maps its root to
 * the first 65,536 ids of root's first range (the shared range); a container with
 * `security.idmap.isolated=true` gets a range of its own, which no other container
 * shares, so that its root's files in host paths and its processes' uids are its alone.
 * The files only keep ranges apart by convention: host root may map any range.
 */
import fs from 'node:fs';

/** The range of host ids a container's root and users map to. */
export interface IdRange {
  readonly base: number;
  readonly count: number;
}

/** Ids a container maps: 0 to 65535 inside, as in LXD. */
export const containerIdCount = 65536;

export type SubordinateFile = '/etc/subuid' | '/etc/subgid';

export type ReadFile = (file: string) => string;

const readText: ReadFile = (file) => fs.readFileSync(file, 'utf8');

/** Every range of `root` (or uid 0) in the file, in file order; none when it is missing. */
export function rootRanges(file: SubordinateFile, read: ReadFile = readText): IdRange[] {
  let text = '';
  try {
    text = read(file);
  } catch {
    // No file: no ranges.
  }
  const ranges: IdRange[] = [];
  for (const line of text.split('\n')) {
    const [owner, start, count] = line.trim().split(':');
    if (owner !== 'root' && owner !== '0') continue;
    const base = Number(start);
    const size = Number(count);
    if (Number.isSafeInteger(base) && base > 0 && Number.isSafeInteger(size) && size > 0) ranges.push({ base, count: size });
  }
  return ranges;
}

/**
 * The shared range: the first 65,536 ids of root's first range that has that many;
 * 1000000:65536 when the file has none (root may map any range).
 */
export function subordinateRange(file: SubordinateFile, read: ReadFile = readText): IdRange {
  const first = rootRanges(file, read).find((range) => range.count >= containerIdCount);
  return { base: first?.base ?? 1_000_000, count: containerIdCount };
}

/**
 * The lowest block of `count` ids inside one of `ranges` that overlaps none of
 * `reserved` (the shared range and every other container's own), or undefined when
 * root's ranges are exhausted.
 */
export function allocateRange(ranges: readonly IdRange[], reserved: readonly IdRange[], count = containerIdCount): IdRange | undefined {
  for (const range of ranges) {
    const end = range.base + range.count;
    let base = range.base;
    while (base + count <= end) {
      const start = base;
      const clash = reserved.find((r) => overlaps(r, { base: start, count }));
      if (clash === undefined) return { base, count };
      base = clash.base + clash.count;
    }
  }
  return undefined;
}

/** A container's own range as its record keeps it. */
export interface OwnRange {
  readonly uid_base: number;
  readonly gid_base: number;
  readonly count: number;
}

function overlaps(a: IdRange, b: IdRange): boolean {
  return a.base < b.base + b.count && b.base < a.base + a.count;
}

/** `uids 1065536-1131071, gids 1065536-1131071`, for messages. */
export function describeIdmap(own: OwnRange): string {
  const span = (base: number) => `${base}-${base + own.count - 1}`;
  return `uids ${span(own.uid_base)}, gids ${span(own.gid_base)}`;
}

/**
 * What `name`'s own range overlaps, in words (`container OTHER's own range`, `the shared
 * range ...`), or undefined when it overlaps nothing: every other entry of `owned` (name →
 * range) and the shared uid and gid ranges are checked.
 */
export function idmapClash(
  name: string,
  own: OwnRange,
  owned: ReadonlyMap<string, OwnRange>,
  sharedUids: IdRange,
  sharedGids: IdRange,
): string | undefined {
  const uids = { base: own.uid_base, count: own.count };
  const gids = { base: own.gid_base, count: own.count };
  if (overlaps(uids, sharedUids) || overlaps(gids, sharedGids)) {
    return `the shared range every container without security.idmap.isolated uses (uids ${sharedUids.base}-${sharedUids.base + sharedUids.count - 1})`;
  }
  for (const [other, range] of owned) {
    if (other === name) continue;
    if (overlaps(uids, { base: range.uid_base, count: range.count }) || overlaps(gids, { base: range.gid_base, count: range.count })) {
      return `container ${other}'s (${describeIdmap(range)})`;
    }
  }
  return undefined;
}
