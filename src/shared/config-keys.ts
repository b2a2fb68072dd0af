/**
 * Which config keys may be set, as LXD refuses a key it does not know: a misspelt
 * `security.devapollo` would otherwise be stored, do nothing, and leave the socket on.
 * `user.*` is the free namespace (any key of the valid form), and `guest.*` (what a guest
 * reports, which the host may set too) is open the same way; every other key must be
 * one the daemon or cloud-init reads. The daemon checks each key a request sets (admin
 * API, CLI, hooks alike); unsetting is never refused, so a key stored before this rule
 * can still be removed.
 */
import { ApolloError } from './errors.js';

/** The namespaces whose keys are the user's own, whatever their name. */
export const freeNamespaces: readonly string[] = ['user.'];

/** What a guest reports on its own container (PROTOCOL.md section 3a); the host may set them too. */
const guestNamespace = 'guest.';

/** Keys the daemon reads whose values must be "true" or "false" (docs/api.md, "Config keys"). */
export const booleanKeys: ReadonlySet<string> = new Set([
  'security.devapollo',
  'security.devapollo.users',
  'security.devapollo.lxd-compat',
  'security.devapollo.identity',
  'security.devapollo.guest-writes',
  'security.idmap.isolated',
]);

/** Every key outside the free namespaces that may be set, sorted. */
export const knownKeys: readonly string[] = [
  'cloud-init.network-config',
  'cloud-init.user-data',
  'cloud-init.vendor-data',
  ...booleanKeys,
  // cloud-init's instance-id (docs/api.md, "Guest API"): the daemon's, which the host may set by hand.
  'volatile.cloud-init.instance-id',
].sort();

const known = new Set(knownKeys);

/** True when `key` may be set: in a free namespace, or a known key. */
export function isSettableKey(key: string): boolean {
  return (
    known.has(key) || [...freeNamespaces, guestNamespace].some((namespace) => key.startsWith(namespace) && key.length > namespace.length)
  );
}

/** Refuses a key that may not be set, naming the keys that may (400, exit 2). */
export function assertSettableKey(key: string): void {
  if (isSettableKey(key)) return;
  throw new ApolloError(
    'bad-request',
    `unknown config key ${JSON.stringify(key)}: use ${freeNamespaces.map((n) => `${n}*`).join(', ')} for your own keys, ${guestNamespace}* for what a guest reports, or one of ${knownKeys.join(', ')}`,
  );
}
