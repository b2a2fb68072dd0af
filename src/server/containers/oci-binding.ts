/**
 * When an OCI start hook may bind to a container that already exists, and what of its
 * annotations it may apply.
 *
 * An OCI state's annotations are not always the admin's: podman copies an image's
 * manifest annotations into every container made from it, so an image pulled from
 * anywhere can say `devapollo.name=victim` and `apollo.cloud-init.user-data=...`. The
 * name is taken as it is (it only says where to look); what the name may reach is
 * decided here:
 *
 * - a new container (no record of that name): the hook makes it, with the annotations'
 *   keys (never `volatile.*`: those are the daemon's);
 * - an existing one, only when the state is the same OCI container restarting (its id and
 *   bundle are the ones the record's last run had), or when it carries the annotation
 *   `devapollo.claim` equal to the record's `volatile.devapollo.claim` (a random token only
 *   host root can read), or, for a container podman does not manage (its annotations are
 *   the admin's own config.json), when the record was `create`d and never started;
 * - never with the annotations' keys: an existing container's keys are set with
 *   `devapollo config set`. What was ignored is said in a warning.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { isSettableKey } from '../../shared/config-keys.js';
import { keyMap } from '../../shared/key-map.js';
import type { ContainerRecord } from '../state/container-store.js';

/** The daemon-made token an OCI start hook shows (annotation `devapollo.claim`) to bind to an existing container. */
export const claimKey = 'volatile.devapollo.claim';

/** The annotation that carries the claim. */
export const claimAnnotation = 'devapollo.claim';

/** What an OCI start hook says of its container, besides its name, pid and run. */
export interface OciStartFacts {
  /** The annotation devapollo.claim, when given. */
  readonly claim: string | undefined;
  /** podman manages the container (io.container.manager=libpod): its annotations may be an image's. */
  readonly podman: boolean;
}

/** A new claim: 256 random bits, hex. */
export function newClaim(): string {
  return randomBytes(32).toString('hex');
}

/**
 * Whether `given` is the record's claim. Both are hashed first, so the comparison takes
 * the same time whatever the lengths and wherever they differ; an unset claim matches nothing.
 */
export function claimMatches(record: ContainerRecord, given: string | undefined): boolean {
  const claim = record.config[claimKey];
  if (claim === undefined || claim === '' || given === undefined || given === '') return false;
  const digest = (text: string) => createHash('sha256').update(text, 'utf8').digest();
  return timingSafeEqual(digest(claim), digest(given));
}

/**
 * Why an OCI start hook may not bind to the existing (stopped, bindable) `record`, or
 * undefined when it may. The message says how to bind it on purpose.
 */
export function ociBindRefusal(record: ContainerRecord, runtimeId: string | undefined, facts: OciStartFacts): string | undefined {
  const sameRun = runtimeId !== undefined && record.last_runtime_id === runtimeId;
  if (sameRun || claimMatches(record, facts.claim)) return undefined;
  if (!facts.podman && record.origin === 'create') return undefined;
  const name = record.name;
  const how = facts.podman ? '--annotation ' : 'the annotation ';
  const fix = `to bind this container to it, run it with ${how}${claimAnnotation}=$(devapollo config get ${name} ${claimKey}); or give it another devapollo.name`;
  if (facts.claim !== undefined && facts.claim !== '') {
    return `the annotation ${claimAnnotation} is not the claim of container ${name}: ${fix}`;
  }
  const why = facts.podman
    ? `container ${name} already exists, and a podman container's annotations may come from its image, so the name alone binds nothing`
    : `container ${name} already exists and ran as another OCI container (not this id and bundle)`;
  return `${why}: ${fix}`;
}

/**
 * The keys an OCI start hook's annotations may set, and the warnings for those left out:
 * all of them on a container the hook makes (`isNew`) but `volatile.*`, none on an
 * existing one (a warning only for keys whose value they would have changed: a container
 * restarting carries the same annotations every time).
 */
export function annotationConfig(
  changes: Readonly<Record<string, string | null>>,
  record: ContainerRecord | undefined,
): { config: Record<string, string | null>; ignored: string[] } {
  const config = keyMap<string | null>();
  const volatile: string[] = [];
  const kept: string[] = [];
  for (const [key, value] of Object.entries(changes)) {
    if (key.startsWith('volatile.')) volatile.push(key);
    else if (record === undefined) config[key] = value;
    else if ((record.config[key] ?? null) !== value) kept.push(key);
  }
  const ignored: string[] = [];
  if (volatile.length > 0) {
    ignored.push(`annotations never set volatile.* keys (the daemon's own): ignored ${volatile.map((k) => `apollo.${k}`).join(', ')}`);
  }
  if (kept.length > 0 && record !== undefined) {
    ignored.push(
      `annotations set keys only on a container the hook makes, and ${record.name} exists: ignored ${kept.map((k) => `apollo.${k}`).join(', ')} ` +
        `(set them with devapollo config set ${record.name} KEY=VALUE)`,
    );
  }
  return { config, ignored };
}

/**
 * The annotations' keys an OCI start hook may set at all: any `user.*` and the keys
 * devapollo or cloud-init reads, never `volatile.*` (the daemon's own: an image must not
 * choose a container's instance-id or claim). The others are left out with a warning
 * rather than refused: an image may carry annotations meant for another tool, and must
 * not fail its container's start.
 */
export function knownAnnotationKeys(changes: Readonly<Record<string, string>>): { config: Record<string, string>; ignored: string[] } {
  const config = keyMap<string>();
  const volatile: string[] = [];
  const unknown: string[] = [];
  for (const [key, value] of Object.entries(changes)) {
    if (key.startsWith('volatile.')) volatile.push(key);
    else if (isSettableKey(key)) config[key] = value;
    else unknown.push(key);
  }
  const named = (keys: string[]) => keys.map((k) => `apollo.${k}`).join(', ');
  const ignored: string[] = [];
  if (volatile.length > 0) ignored.push(`annotations never set volatile.* keys (the daemon's own): ignored ${named(volatile)}`);
  if (unknown.length > 0) ignored.push(`annotations name keys devapollo does not know: ignored ${named(unknown)}`);
  return { config, ignored };
}
