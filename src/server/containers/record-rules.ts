/**
 * The rules of a container's record, as plain functions from a record to the next one:
 * what a new record holds, which config values are accepted, how a change moves the
 * revisions (and so the ETags), when cloud-init's instance-id rotates. Nothing here
 * touches the disk, a process or the clock beyond a timestamp: the manager decides when a
 * rule applies and makes the result durable.
 */
import { randomUUID } from 'node:crypto';
import { assertSettableKey, booleanKeys } from '../../shared/config-keys.js';
import { ApolloError } from '../../shared/errors.js';
import { keyMap } from '../../shared/key-map.js';
import { assertConfigKey, isGuestReadableKey } from '../../shared/names.js';
import { type ContainerRecord, type GuestState, stateSchemaVersion } from '../state/container-store.js';
import { metaDataKeys } from './change-waiters.js';
import { assertInstanceId, instanceIdKey, withNewInstanceId } from './instance-id.js';

/** A container's own uid/gid range instead of the shared one; read at each start. */
export const isolatedKey = 'security.idmap.isolated';

/** Config changes as the API takes them: a value, or null to unset. */
export type ConfigChanges = Readonly<Record<string, string | null>>;

/** A new container's record: no config yet, nothing running, every revision at 0. */
export function newRecord(
  name: string,
  origin: ContainerRecord['origin'],
  privileged: boolean,
  command: readonly string[] | null,
): ContainerRecord {
  return {
    schema: stateSchemaVersion,
    name,
    uuid: randomUUID(),
    instance_uuid: randomUUID(),
    created_at: new Date().toISOString(),
    origin,
    privileged,
    command,
    config: keyMap(),
    revision: 0,
    key_revisions: keyMap(),
    list_revision: 0,
    state_revision: 0,
    guest_state: 'Started',
    init: null,
    idmap: null,
  };
}

/**
 * Checks keys and values against the rules every config change obeys (a known key
 * syntax, a string, at most `maxValueBytes`, booleans where the daemon reads one, a
 * well-formed instance-id); returns the changes with "" normalised to null (unset).
 */
export function validatedConfig(changes: ConfigChanges, maxValueBytes: number): Record<string, string | null> {
  const out = keyMap<string | null>();
  for (const [key, value] of Object.entries(changes)) {
    assertConfigKey(key);
    if (value === null || value === '') {
      out[key] = null;
      continue;
    }
    if (typeof value !== 'string') throw new ApolloError('bad-request', `the value of ${key} must be a string`);
    assertSettableKey(key);
    const size = Buffer.byteLength(value, 'utf8');
    if (size > maxValueBytes) {
      throw new ApolloError('payload-too-large', `the value of ${key} is ${size} bytes, more than the limit of ${maxValueBytes}`);
    }
    if (booleanKeys.has(key) && value !== 'true' && value !== 'false') {
      throw new ApolloError('bad-request', `${key} must be "true" or "false", not ${JSON.stringify(value)}`);
    }
    if (key === instanceIdKey) assertInstanceId(value);
    out[key] = value;
  }
  return out;
}

/** The refusal for security.idmap.isolated on a privileged container. */
export function privilegedIsolated(name: string): ApolloError {
  return new ApolloError(
    'bad-request',
    `container ${name}: ${isolatedKey}=true needs an unprivileged container (a privileged one keeps host root and maps no ids)`,
  );
}

/**
 * The record with `changes` applied (null unsets), or undefined when nothing changes.
 * Each changed key gets the new revision, and so does the key list when a readable key
 * comes or goes: their ETags change exactly when what they answer does. A `change` (not
 * the values a container is created with) to cloud-init's data also gives it a new
 * instance-id, in this same record.
 */
export function withConfig(record: ContainerRecord, changes: ConfigChanges, when: 'creation' | 'change'): ContainerRecord | undefined {
  const config = mergeConfig(record.config, when === 'change' ? withNewInstanceId(record.config, changes) : changes);
  if (sameConfig(config, record.config)) return undefined;
  const revision = record.revision + 1;
  const keyRevisions = keyMap(Object.entries(record.key_revisions));
  let listChanged = false;
  for (const key of new Set([...Object.keys(record.config), ...Object.keys(config)])) {
    if (record.config[key] === config[key]) continue;
    keyRevisions[key] = revision;
    if (isGuestReadableKey(key) && (record.config[key] === undefined) !== (config[key] === undefined)) listChanged = true;
  }
  return {
    ...record,
    config,
    revision,
    key_revisions: keyRevisions,
    list_revision: listChanged ? revision : record.list_revision,
  };
}

/** The record with the guest's state set; /1.0's ETag changes only if the state does. */
export function withGuestState(record: ContainerRecord, state: GuestState): ContainerRecord {
  if (record.guest_state === state) return record;
  const revision = record.revision + 1;
  return { ...record, guest_state: state, revision, state_revision: revision };
}

/** One key whose value differs between two configs ("" for absent), for config events. */
export interface ConfigDifference {
  readonly key: string;
  readonly oldValue: string;
  readonly value: string;
}

/** The keys whose values differ between `before` and `after`, in a stable order. */
export function configDifferences(before: Readonly<Record<string, string>>, after: Readonly<Record<string, string>>): ConfigDifference[] {
  const value = (config: Readonly<Record<string, string>>, key: string) => (Object.hasOwn(config, key) ? config[key] : undefined);
  const out: ConfigDifference[] = [];
  for (const key of new Set([...Object.keys(before), ...Object.keys(after)])) {
    if (value(before, key) === value(after, key)) continue;
    out.push({ key, oldValue: value(before, key) ?? '', value: value(after, key) ?? '' });
  }
  return out;
}

/**
 * An ETag from a stored revision, never a hash of the content: a value that goes
 * A->B->A gets a new one. The first 8 characters of the uuid tell apart two containers
 * of the same name.
 */
export function etagOf(record: Pick<ContainerRecord, 'uuid'>, revision: number): string {
  return `${etagPrefix(record)}${revision}"`;
}

/** What every ETag of a container starts with (`etagOf`); it never changes for the container. */
export function etagPrefix(record: Pick<ContainerRecord, 'uuid'>): string {
  return `"${record.uuid.slice(0, 8)}-`;
}

/** The revision behind /1.0/config/KEY's ETag: it changes exactly when KEY is set, changed or unset. */
export function keyRevision(record: ContainerRecord, key: string): number {
  return record.key_revisions[key] ?? 0;
}

/** The revision behind /1.0/meta-data's ETag: the latest of the keys it is built from. */
export function metaDataRevision(record: ContainerRecord): number {
  let revision = 0;
  for (const key of metaDataKeys) revision = Math.max(revision, record.key_revisions[key] ?? 0);
  return revision;
}

function mergeConfig(current: Readonly<Record<string, string>>, changes: ConfigChanges): Record<string, string> {
  const next = keyMap(Object.entries(current));
  for (const [key, value] of Object.entries(changes)) {
    if (value === null) delete next[key];
    else next[key] = value;
  }
  return keyMap(Object.entries(next).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function sameConfig(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  const ak = Object.keys(a);
  if (ak.length !== Object.keys(b).length) return false;
  return ak.every((k) => a[k] === b[k]);
}
