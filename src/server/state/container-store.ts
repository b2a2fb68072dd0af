/**
 * Durable state: one JSON file per container under DIR/containers.
 *
 * Every change is written to a temporary file, fsynced, renamed over the old file and
 * the directory fsynced, before the daemon acknowledges it: after kill -9 or a power cut
 * a file holds either the old or the new record, never a torn one, and an acknowledged
 * change is never lost. One file per container keeps each write small however many
 * containers there are. A file the daemon cannot read stops it with the file's name; it
 * is never overwritten or reset.
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import { ApolloError } from '../../shared/errors.js';
import { isConfigKey, isContainerName } from '../../shared/names.js';
import { syncDirectory, tempPrefix, writeFileDurably } from './durable-file.js';

/**
 * Schema 2 added the origin `create` and `idmap`. Files of schema 1 still load (a schema 2
 * record that cannot be `create`, with `idmap: null`) and are written as schema 2 at their
 * next change. A newer schema is refused, never misread: a daemon that only knows schema 1
 * refuses schema 2 files rather than drop a container's id range.
 */
export const stateSchemaVersion = 2;

export type GuestState = 'Started' | 'Ready';

export type ContainerOrigin = 'create' | 'launch' | 'register';

/** Where a container's init ran; only meaningful under the same boot id. */
export interface InitRecord {
  readonly pid: number;
  readonly start_time: string;
  readonly boot_id: string;
  /**
   * What the runtime that started this run calls it, as its hooks give it (OCI: the
   * container id and bundle; an OCI poststop state has no pid): a stop hook for another
   * run of the same name leaves this one alone. Absent for devapollo's own and LXC runs.
   */
  readonly runtime_id?: string;
}

/**
 * A container's own host id range (`security.idmap.isolated`): allocated at its first
 * start with the key set, kept until the container is deleted, never shared.
 */
export interface IdmapRecord {
  readonly uid_base: number;
  readonly gid_base: number;
  readonly count: number;
}

export interface ContainerRecord {
  readonly schema: number;
  readonly name: string;
  /** Distinguishes this container from an earlier one of the same name (ETags). */
  readonly uuid: string;
  /**
   * The container instance that identity tokens name (`devapollo.instance`): new when the
   * container is created or launched and at every register (each run another runtime
   * binds), so that `identity verify` refuses the tokens of a container that was deleted
   * or re-created. A file without it (written before it existed) takes `uuid`, which is
   * stable across loads, and is written with it at its next change.
   */
  readonly instance_uuid: string;
  readonly created_at: string;
  /**
   * Who runs the container:
   * - `create`: nobody yet (`devapollo create`). The first start decides: `devapollo
   *   start` makes it `launch`, a runtime's start hook (register) makes it `register`.
   * - `launch`: devapollo's launcher. start, stop and delete are devapollo's, and no
   *   hook or `register` may take the name.
   * - `register`: another runtime (LXC, OCI). Its hooks bind and let go of each run;
   *   devapollo's start and stop refuse (start and stop it there).
   * Once decided it never changes: to move a container, delete it and create it again.
   */
  readonly origin: ContainerOrigin;
  readonly privileged: boolean;
  readonly command: readonly string[] | null;
  readonly config: Readonly<Record<string, string>>;
  /** Bumped by every change; the per-resource revisions below take their values from it. */
  readonly revision: number;
  /**
   * The revision at which each key last changed, kept after it is unset, so that the
   * ETag of /1.0/config/KEY changes exactly when KEY does (A->B->A included).
   */
  readonly key_revisions: Readonly<Record<string, number>>;
  /** The revision at which the set of guest-readable keys last changed (/1.0/config). */
  readonly list_revision: number;
  /** The revision at which guest_state last changed (/1.0). */
  readonly state_revision: number;
  readonly guest_state: GuestState;
  readonly init: InitRecord | null;
  /**
   * The `runtime_id` of the last run a start hook registered, kept after it stops: an OCI
   * start hook of that same container restarting binds to the record again by it
   * (containers/oci-binding.ts).
   */
  readonly last_runtime_id?: string;
  readonly idmap: IdmapRecord | null;
  /**
   * How the last run's init ended, as a shell reports it (its command's exit code, or
   * 128+N for signal N); null or absent while it runs, before it first ran, or when the
   * run was let go (a registered run's stop hook) or its end could not be read.
   */
  readonly exit_code?: number | null;
}

/** A state file that cannot be used; the daemon refuses to start on it. */
export class StateFileError extends Error {
  override readonly name = 'StateFileError';
  constructor(
    readonly file: string,
    reason: string,
  ) {
    super(`state file ${file} ${reason}; fix or move it away, devapollo will not overwrite it`);
  }
}

export class ContainerStore {
  constructor(readonly directory: string) {}

  /** Reads every record; throws StateFileError naming the first unusable file. */
  async load(): Promise<ContainerRecord[]> {
    await fsp.mkdir(this.directory, { recursive: true, mode: 0o700 });
    const records: ContainerRecord[] = [];
    for (const entry of (await fsp.readdir(this.directory)).sort()) {
      const file = path.join(this.directory, entry);
      if (entry.startsWith(tempPrefix)) {
        // An unfinished write from a crash: never acknowledged, so nothing is lost.
        await fsp.rm(file, { force: true });
        continue;
      }
      if (!entry.endsWith('.json')) continue;
      let text: string;
      try {
        text = await fsp.readFile(file, 'utf8');
      } catch (error) {
        throw new StateFileError(file, `cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)})`);
      }
      const record = parseRecord(file, text);
      if (`${record.name}.json` !== entry) {
        throw new StateFileError(file, `holds container ${JSON.stringify(record.name)}, not ${entry.slice(0, -5)}`);
      }
      records.push(record);
    }
    return records;
  }

  fileOf(name: string): string {
    // Names are checked before they get here; a path outside the directory is a bug.
    if (!isContainerName(name)) throw new ApolloError('bad-request', `invalid container name ${JSON.stringify(name)}`);
    return path.join(this.directory, `${name}.json`);
  }

  /** Writes a record durably; the old file stays intact when this throws. */
  async save(record: ContainerRecord): Promise<void> {
    const target = this.fileOf(record.name);
    try {
      await writeFileDurably(target, `${JSON.stringify(record, null, 2)}\n`, 0o600);
    } catch (error) {
      throw storageError(target, error);
    }
  }

  async remove(name: string): Promise<void> {
    const target = this.fileOf(name);
    try {
      await fsp.rm(target, { force: true });
      await syncDirectory(this.directory);
    } catch (error) {
      throw storageError(target, error);
    }
  }
}

function storageError(file: string, error: unknown): ApolloError {
  const code = (error as NodeJS.ErrnoException).code;
  const reason =
    code === 'ENOSPC'
      ? 'no space left on the device'
      : code === 'EDQUOT'
        ? 'disk quota exceeded'
        : String((error as Error).message ?? error);
  return new ApolloError('internal', `cannot save ${file}: ${reason}; nothing was changed`, { cause: error });
}

function parseRecord(file: string, text: string): ContainerRecord {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new StateFileError(file, `is not valid JSON (${(error as Error).message})`);
  }
  const bad = (what: string): never => {
    throw new StateFileError(file, `is invalid: ${what}`);
  };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) bad('not an object');
  const r = value as Record<string, unknown>;
  if (typeof r['schema'] !== 'number' || !Number.isSafeInteger(r['schema']) || r['schema'] < 1) bad('no valid schema version');
  if ((r['schema'] as number) > stateSchemaVersion) {
    throw new StateFileError(file, `has schema ${String(r['schema'])}, newer than this devapollo (${stateSchemaVersion})`);
  }
  if (typeof r['name'] !== 'string' || !isContainerName(r['name'])) bad('name');
  if (typeof r['uuid'] !== 'string') bad('uuid');
  const instanceUuid = r['instance_uuid'] ?? r['uuid'];
  if (typeof instanceUuid !== 'string' || instanceUuid === '') bad('instance_uuid');
  if (typeof r['created_at'] !== 'string') bad('created_at');
  const origins: readonly unknown[] = r['schema'] === 1 ? ['launch', 'register'] : ['create', 'launch', 'register'];
  if (!origins.includes(r['origin'])) bad('origin');
  if (typeof r['privileged'] !== 'boolean') bad('privileged');
  const command = r['command'];
  if (command !== null && !(Array.isArray(command) && command.every((c) => typeof c === 'string'))) bad('command');
  const config = r['config'];
  if (typeof config !== 'object' || config === null || Array.isArray(config)) bad('config');
  for (const [key, val] of Object.entries(config as object)) {
    if (!isConfigKey(key) || typeof val !== 'string') bad(`config key ${JSON.stringify(key)}`);
  }
  const isRevision = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
  for (const field of ['revision', 'list_revision', 'state_revision']) if (!isRevision(r[field])) bad(field);
  const keyRevisions = r['key_revisions'];
  if (typeof keyRevisions !== 'object' || keyRevisions === null || Array.isArray(keyRevisions)) bad('key_revisions');
  for (const [key, rev] of Object.entries(keyRevisions as object)) {
    if (!isConfigKey(key) || !isRevision(rev)) bad(`key_revisions ${JSON.stringify(key)}`);
  }
  if (r['guest_state'] !== 'Started' && r['guest_state'] !== 'Ready') bad('guest_state');
  const init = r['init'];
  if (init !== null) {
    const i = init as Record<string, unknown>;
    if (typeof i !== 'object' || typeof i['pid'] !== 'number' || typeof i['start_time'] !== 'string' || typeof i['boot_id'] !== 'string') {
      bad('init');
    }
    if (i['runtime_id'] !== undefined && typeof i['runtime_id'] !== 'string') bad('init.runtime_id');
  }
  if (r['last_runtime_id'] !== undefined && typeof r['last_runtime_id'] !== 'string') bad('last_runtime_id');
  const idmap = r['idmap'] ?? null;
  if (idmap !== null) {
    const m = idmap as Record<string, unknown>;
    const isId = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v > 0;
    if (typeof m !== 'object' || Array.isArray(m) || !isId(m['uid_base']) || !isId(m['gid_base']) || !isId(m['count'])) bad('idmap');
  }
  const exitCode = r['exit_code'] ?? null;
  if (exitCode !== null && !(typeof exitCode === 'number' && Number.isSafeInteger(exitCode) && exitCode >= 0 && exitCode <= 255))
    bad('exit_code');
  // A schema 1 record is a schema 2 record that cannot be `create` and has no id range of
  // its own: upgraded in memory, written as the current schema by the next save.
  return {
    ...(value as ContainerRecord),
    schema: stateSchemaVersion,
    instance_uuid: instanceUuid as string,
    idmap: idmap as IdmapRecord | null,
  };
}
