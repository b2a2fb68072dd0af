/**
 * OCI runtime hooks (crun, runc, podman): the runtime writes the container's state JSON
 * on the hook's stdin (runtime-spec "State": ociVersion, id, status, pid, bundle,
 * annotations) but not the stage, so the stage is the hook's own argument:
 *
 *     "hooks": {
 *       "createRuntime": [{ "path": "/usr/local/bin/devapollo", "args": ["devapollo", "hook", "oci", "createRuntime"] }],
 *       "poststop":      [{ "path": "/usr/local/bin/devapollo", "args": ["devapollo", "hook", "oci", "poststop"] }]
 *     }
 *
 * createRuntime runs once the container's namespaces exist and before its process runs
 * the user's program, so the container is served from its first instruction. A failing
 * createRuntime hook makes the runtime tear the container down (runtime-spec), which is
 * what keeps a container from running with a socket that knows nothing about it.
 */
import { ApolloError } from '../../../shared/errors.js';
import { ownValue } from '../../../shared/key-map.js';
import { isConfigKey, isContainerName } from '../../../shared/names.js';
import { claimAnnotation } from '../../containers/oci-binding.js';
import type { HookRequest } from './hook-request.js';

/** The fields of the runtime-spec state this hook reads. */
export interface OciState {
  readonly id: string;
  /** The container process on the host; 0 once it has stopped (poststop). */
  readonly pid: number;
  readonly status: string;
  readonly bundle: string;
  readonly annotations: Readonly<Record<string, string>>;
}

/** Stages that register the container, and the one that lets it go. */
export const ociStages = {
  createRuntime: 'register',
  // Deprecated by runtime-spec 1.0.2 for createRuntime; older runtimes only have this one.
  prestart: 'register',
  poststop: 'unregister',
} as const;

export type OciStage = keyof typeof ociStages;

export function isOciStage(stage: string): stage is OciStage {
  return Object.hasOwn(ociStages, stage);
}

/**
 * podman puts `io.container.manager=libpod` in every container's annotations, whatever
 * its image says: such a container's annotations may be an image's, not the admin's.
 */
const managerAnnotation = 'io.container.manager';

/**
 * Annotations under this prefix set config keys: `apollo.user.foo=bar` sets `user.foo`,
 * on a container the hook makes (never on one that exists, never `volatile.*`).
 */
export const configAnnotationPrefix = 'apollo.';

/**
 * The annotation that names the container when its OCI id is not a devapollo name
 * (podman's ids are 64 hex digits, longer than a name may be).
 */
export const nameAnnotation = 'devapollo.name';

const invalidState = (why: string) => new ApolloError('bad-request', `the OCI state on stdin ${why}`);

/** Parses and checks the state document a runtime writes on a hook's stdin. */
export function parseOciState(text: string): OciState {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw invalidState('is not JSON (run this as an OCI hook: the runtime writes the state on stdin)');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw invalidState('is not a JSON object');
  const state = parsed as Record<string, unknown>;
  const { id, pid = 0, status = '', bundle = '', annotations = {} } = state;
  if (typeof id !== 'string' || id === '') throw invalidState('has no "id"');
  if (typeof pid !== 'number' || !Number.isSafeInteger(pid) || pid < 0) throw invalidState('has an invalid "pid"');
  if (typeof status !== 'string') throw invalidState('has an invalid "status"');
  if (typeof bundle !== 'string') throw invalidState('has an invalid "bundle"');
  if (typeof annotations !== 'object' || annotations === null || Array.isArray(annotations)) {
    throw invalidState('has invalid "annotations"');
  }
  for (const [key, value] of Object.entries(annotations)) {
    if (typeof value !== 'string') throw invalidState(`has a non-string annotation ${key}`);
  }
  return { id, pid, status, bundle, annotations: annotations as Record<string, string> };
}

/** The devapollo name of an OCI container: the `devapollo.name` annotation, else its id. */
export function ociContainerName(state: OciState): string {
  const named = ownValue(state.annotations, nameAnnotation);
  const name = named ?? state.id;
  if (isContainerName(name)) return name;
  const rule = 'a letter, then letters, digits and "-", at most 63 characters';
  throw new ApolloError(
    'bad-request',
    named === undefined
      ? `the OCI container id ${JSON.stringify(name)} is not a valid devapollo container name (${rule}): ` +
          `give the container such an id, or the annotation ${nameAnnotation}=NAME`
      : `the annotation ${nameAnnotation}=${JSON.stringify(name)} is not a valid devapollo container name (${rule})`,
  );
}

/** Config keys from `apollo.`-prefixed annotations; other annotations are the runtime's. */
export function configFromAnnotations(annotations: Readonly<Record<string, string>>): Record<string, string> {
  const config: Record<string, string> = {};
  for (const [annotation, value] of Object.entries(annotations)) {
    if (!annotation.startsWith(configAnnotationPrefix)) continue;
    const key = annotation.slice(configAnnotationPrefix.length);
    if (!isConfigKey(key)) {
      throw new ApolloError(
        'bad-request',
        `the annotation ${annotation} names no valid config key (after "${configAnnotationPrefix}": a letter or digit, ` +
          'then letters, digits, ".", "_" and "-", at most 256 characters)',
      );
    }
    config[key] = value;
  }
  return config;
}

/**
 * What names one run of an OCI container, from the state every hook of that run gets:
 * its id (unique among a runtime's live containers; podman's are 64 hex digits) and its
 * bundle (two containers of one id under different runtime roots have different ones).
 * Two runs of one devapollo.name differ in it, so the poststop of a deleted old run, which
 * has no pid, cannot let go of the newer one.
 */
export function ociRuntimeId(state: OciState): string {
  return JSON.stringify(['oci', state.id, state.bundle]);
}

/** What an OCI hook at `stage` asks, given the state the runtime wrote on its stdin. */
export function ociHookRequest(stage: OciStage, stateText: string): HookRequest {
  const state = parseOciState(stateText);
  const name = ociContainerName(state);
  const runtimeId = ociRuntimeId(state);
  if (ociStages[stage] === 'unregister') return { action: 'unregister', runtime: 'OCI', name, pid: undefined, runtimeId };
  if (state.pid <= 0) {
    throw new ApolloError(
      'bad-request',
      `the OCI state of ${state.id} has no pid (status ${JSON.stringify(state.status)}): ` +
        `use "devapollo hook oci ${stage}" as a ${stage} hook, when the container's process exists`,
    );
  }
  return {
    action: 'register',
    runtime: 'OCI',
    name,
    pid: state.pid,
    config: configFromAnnotations(state.annotations),
    runtimeId,
    oci: { claim: ownValue(state.annotations, claimAnnotation), podman: ownValue(state.annotations, managerAnnotation) === 'libpod' },
  };
}
