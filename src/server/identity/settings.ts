/**
 * Who signs identity tokens, as `serve --identity-issuer` and `--trust-domain` say
 * (PROTOCOL.md section 3b), checked once at start so that a daemon never signs a token
 * a relying party would refuse for its `iss` or `sub`.
 */
import os from 'node:os';
import { ApolloError } from '../../shared/errors.js';

export interface IdentitySettings {
  /** The `iss` claim; the JWK Set is published at ISSUER/jwks.json. */
  readonly issuer: string;
  /** The SPIFFE trust domain of `sub`: spiffe://TRUST_DOMAIN/devapollo/HOST/NAME. */
  readonly trustDomain: string;
  /** This host's name, in `sub` and in the `devapollo` claim. */
  readonly host: string;
}

/** A SPIFFE trust domain: lowercase letters, digits, ".", "-", "_" (SPIFFE ID spec, 2.1). */
const trustDomainPattern = /^[a-z0-9._-]{1,255}$/;
/** A segment of a SPIFFE ID's path: letters, digits, ".", "-", "_", and not "." or "..". */
const pathSegmentPattern = /^[A-Za-z0-9._-]+$/;

/** The settings, with the defaults (`https://HOSTNAME`, HOSTNAME), or a usage error naming the bad value. */
export function identitySettings(
  options: { issuer?: string | undefined; trustDomain?: string | undefined },
  host: string = os.hostname(),
): IdentitySettings {
  if (!pathSegmentPattern.test(host) || host === '.' || host === '..') {
    throw new ApolloError(
      'usage',
      `this host's name ${JSON.stringify(host)} cannot be part of a SPIFFE ID (letters, digits, ".", "-", "_")`,
    );
  }
  // Host names are case-insensitive; a URL and a trust domain have them in lowercase.
  const issuer = options.issuer ?? `https://${host.toLowerCase()}`;
  checkIssuer(issuer, options.issuer === undefined);
  const trustDomain = options.trustDomain ?? host.toLowerCase();
  if (!trustDomainPattern.test(trustDomain)) {
    throw new ApolloError(
      'usage',
      `--trust-domain ${JSON.stringify(trustDomain)} is not a SPIFFE trust domain: use lowercase letters, digits, ".", "-" and "_", at most 255 characters${options.trustDomain === undefined ? " (the default is this host's name: give --trust-domain)" : ''}`,
    );
  }
  return { issuer, trustDomain, host };
}

/**
 * OpenID Connect Discovery 1.0, section 3: an https URL with no query or fragment.
 * Without a trailing slash, so that ISSUER/jwks.json is one URL and `iss` matches
 * exactly what relying parties are told.
 */
function checkIssuer(issuer: string, isDefault: boolean): void {
  function bad(why: string): never {
    throw new ApolloError(
      'usage',
      `--identity-issuer ${JSON.stringify(issuer)} ${why}${isDefault ? " (the default is https:// and this host's name: give --identity-issuer)" : ''}`,
    );
  }
  let url: URL;
  try {
    url = new URL(issuer);
  } catch {
    bad('is not a URL: use https://HOST[/PATH]');
  }
  if (url.protocol !== 'https:') bad('must be an https:// URL (OpenID Connect relying parties refuse others)');
  if (url.search !== '' || url.hash !== '' || issuer.includes('?') || issuer.includes('#')) bad('must have no query or fragment');
  if (url.username !== '' || url.password !== '') bad('must not carry a user name or password');
  if (issuer.endsWith('/')) bad(`must not end with "/" (use ${JSON.stringify(issuer.replace(/\/+$/, ''))})`);
  if (url.href !== issuer && url.href !== `${issuer}/`) bad(`is not in its normal form (${JSON.stringify(url.href.replace(/\/$/, ''))})`);
}

/** The SPIFFE ID of a container: the `sub` of its tokens. */
export function spiffeId(settings: IdentitySettings, container: string): string {
  return `spiffe://${settings.trustDomain}/devapollo/${settings.host}/${container}`;
}
