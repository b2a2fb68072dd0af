/**
 * cloud-init's instance-id, as LXD keeps it (docs/api.md, "Guest API"). cloud-init runs its
 * per-instance modules (user-data, write_files, runcmd...) only on the first boot of an
 * instance, and knows an instance by its instance-id: had it stayed NAME, new user-data
 * would never be applied to a container that had booted once. So a change to cloud-init's
 * data after creation gives the container a new random instance-id, in the same durable
 * update as the change.
 */
import { randomUUID } from 'node:crypto';
import { ApolloError } from '../../shared/errors.js';
import type { ContainerRecord } from '../state/container-store.js';

/** Where the daemon keeps the instance-id; unset means NAME. The host may set it by hand. */
export const instanceIdKey = 'volatile.cloud-init.instance-id';

/** The keys whose change makes a new instance (LXD's list). */
const cloudInitDataKeys: readonly string[] = [
  'cloud-init.user-data',
  'cloud-init.vendor-data',
  'cloud-init.network-config',
  'user.user-data',
  'user.vendor-data',
  'user.network-config',
];

/**
 * A hand-set instance-id: one plain YAML scalar (it is written unquoted into meta-data),
 * as UUIDs, names and cloud ids (`i-0abc`) are.
 */
const instanceIdPattern = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,254}$/;

export function assertInstanceId(value: string): void {
  if (!instanceIdPattern.test(value)) {
    throw new ApolloError(
      'bad-request',
      `invalid ${instanceIdKey} ${JSON.stringify(value)}: use a letter or digit, then letters, digits, ".", "_", ":" and "-", at most 255 characters`,
    );
  }
}

/**
 * `changes` (null unsets) with a new instance-id added when they change one of cloud-init's
 * data keys of `config`, unless they set the instance-id themselves (the host's hand wins).
 */
export function withNewInstanceId(
  config: Readonly<Record<string, string>>,
  changes: Readonly<Record<string, string | null>>,
): Readonly<Record<string, string | null>> {
  if (Object.hasOwn(changes, instanceIdKey)) return changes;
  const current = (key: string) => (Object.hasOwn(config, key) ? config[key] : undefined);
  const changed = cloudInitDataKeys.some((key) => Object.hasOwn(changes, key) && (changes[key] ?? undefined) !== current(key));
  return changed ? { ...changes, [instanceIdKey]: randomUUID() } : changes;
}

/** The instance-id meta-data serves: the volatile key when set, else the name. */
export function instanceIdOf(record: ContainerRecord): string {
  return (Object.hasOwn(record.config, instanceIdKey) ? record.config[instanceIdKey] : undefined) ?? record.name;
}

/** The revision at which the instance-id last changed (0: never), for meta-data's ETag. */
export function instanceIdRevision(record: ContainerRecord): number {
  return (Object.hasOwn(record.key_revisions, instanceIdKey) ? record.key_revisions[instanceIdKey] : undefined) ?? 0;
}
