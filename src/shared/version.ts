import { createRequire } from 'node:module';

// Set by the guest bundle (scripts/bundle-guest.js), which has no package.json beside it.
declare const __APOLLO_VERSION__: string | undefined;

/** This package's version. */
export const packageVersion: string =
  typeof __APOLLO_VERSION__ === 'string'
    ? __APOLLO_VERSION__
    : (createRequire(import.meta.url)('../../package.json') as { version: string }).version;
