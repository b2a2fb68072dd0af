/**
 * security.idmap.isolated: each such container's own 65,536 host uids and gids, from
 * root's ranges in /etc/subuid and /etc/subgid, allocated at its first start with the key
 * set and kept until it is deleted. Kept here from the moment one is allocated (before its
 * record is on disk), so two starts at once can never be given the same range.
 */
import { ApolloError } from '../../shared/errors.js';
import type { Logger } from '../log.js';
import type { IdmapRecord } from '../state/container-store.js';
import type { Container } from './container.js';
import { allocateRange, containerIdCount, describeIdmap, type IdRange, idmapClash, type ReadFile, rootRanges } from './idmap.js';
import { isolatedKey } from './record-rules.js';

/** The host ranges a container is started with. */
export interface IdRanges {
  readonly uids: IdRange;
  readonly gids: IdRange;
}

export class IsolatedRanges {
  /** Every container's own id range, by container name. */
  private readonly idmaps = new Map<string, IdmapRecord>();

  constructor(
    /** The shared ranges every unprivileged container maps to by default. */
    private readonly shared: IdRanges,
    private readonly logger: Logger,
    private readonly readIdFile?: ReadFile,
  ) {}

  /** Containers with a range of their own (status `internals`). */
  get size(): number {
    return this.idmaps.size;
  }

  /** A range a loaded record holds. */
  remember(name: string, idmap: IdmapRecord | null): void {
    if (idmap !== null) this.idmaps.set(name, idmap);
  }

  /** The container is gone: its range may be given again. */
  forget(name: string): void {
    this.idmaps.delete(name);
  }

  /**
   * The host ranges the container is started with: its own with security.idmap.isolated
   * (allocated and recorded with `save` at its first such start), else the shared ones. A
   * range it no longer uses stays reserved: files its root wrote under it must not become
   * another container's.
   */
  async rangesFor(container: Container, save: (idmap: IdmapRecord) => Promise<unknown>): Promise<IdRanges> {
    const { record } = container;
    if (record.privileged || record.config[isolatedKey] !== 'true') return this.shared;
    let idmap = this.idmaps.get(record.name) ?? record.idmap;
    if (idmap !== null) this.assertOwnRange(record.name, idmap);
    if (idmap === null) {
      const own = this.allocate(record.name);
      this.idmaps.set(record.name, own);
      try {
        await save(own);
      } catch (error) {
        this.idmaps.delete(record.name);
        throw error;
      }
      this.logger.info('container given its own id range', { container: record.name, uid_base: own.uid_base, gid_base: own.gid_base });
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
    const clash = idmapClash(name, idmap, this.idmaps, this.shared.uids, this.shared.gids);
    if (clash === undefined) return;
    throw new ApolloError(
      'conflict',
      `container ${name} cannot start: its own id range (${describeIdmap(idmap)}) overlaps ${clash}; ` +
        'two containers must never share ids (was a state file copied by hand?): delete one of them with devapollo delete NAME, and the other starts',
    );
  }

  /** Says in the daemon's log which records' own ranges overlap (found at start-up); those containers are refused at start. */
  reportClashes(): void {
    for (const [name, idmap] of this.idmaps) {
      const clash = idmapClash(name, idmap, this.idmaps, this.shared.uids, this.shared.gids);
      if (clash !== undefined) {
        this.logger.warn("a container's own id range overlaps another's: it is refused at start until one of them is deleted", {
          container: name,
          range: describeIdmap(idmap),
          overlaps: clash,
        });
      }
    }
  }

  /** A uid and a gid range that no container holds and that are not the shared ones. */
  private allocate(name: string): IdmapRecord {
    const pick = (file: '/etc/subuid' | '/etc/subgid', shared: IdRange, base: (m: IdmapRecord) => number): number => {
      const reserved: IdRange[] = [shared];
      for (const idmap of this.idmaps.values()) reserved.push({ base: base(idmap), count: idmap.count });
      const ranges = rootRanges(file, this.readIdFile);
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
      uid_base: pick('/etc/subuid', this.shared.uids, (m) => m.uid_base),
      gid_base: pick('/etc/subgid', this.shared.gids, (m) => m.gid_base),
      count: containerIdCount,
    };
  }
}
