import { ApolloError } from './errors.js';

/** Container names: a letter, then letters, digits and `-`, at most 63 characters. */
const containerNamePattern = /^[A-Za-z][A-Za-z0-9-]{0,62}$/;
/** Config keys: a letter or digit, then letters, digits, `.`, `_`, `-`, at most 256. */
const configKeyPattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,255}$/;

export function isContainerName(name: string): boolean {
  return containerNamePattern.test(name);
}

export function isConfigKey(key: string): boolean {
  return configKeyPattern.test(key);
}

export function assertContainerName(name: string): void {
  if (!isContainerName(name)) {
    throw new ApolloError(
      'bad-request',
      `invalid container name ${JSON.stringify(name)}: use a letter, then letters, digits and "-", at most 63 characters`,
    );
  }
}

export function assertConfigKey(key: string): void {
  if (!isConfigKey(key)) {
    throw new ApolloError(
      'bad-request',
      `invalid config key ${JSON.stringify(key)}: use a letter or digit, then letters, digits, ".", "_" and "-", at most 256 characters`,
    );
  }
}

/** The key namespaces a guest may read; everything else (security.*, volatile.*) stays on the host. */
export function isGuestReadableKey(key: string): boolean {
  return key.startsWith('user.') || key.startsWith('cloud-init.') || key.startsWith(guestKeyPrefix);
}

/** The one namespace a guest may write, on its own container (PROTOCOL.md section 3a). */
export const guestKeyPrefix = 'guest.';

/** Whether a guest may write `key`: `guest.` and at least one character more. */
export function isGuestWritableKey(key: string): boolean {
  return key.length > guestKeyPrefix.length && key.startsWith(guestKeyPrefix);
}
