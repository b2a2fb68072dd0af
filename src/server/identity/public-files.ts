/**
 * DIR/public/: what a web server publishes at the issuer URL so that any OpenID Connect
 * relying party can check devapollo's tokens with no access to the host (PROTOCOL.md
 * section 3b): `jwks.json`, the JWK Set, and `openid-configuration`, the discovery
 * document (for ISSUER/.well-known/openid-configuration). Both 0644 in a 0755 directory,
 * each replaced atomically, so a web server never serves half a file.
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { JSONWebKeySet } from 'jose';
import { writeFileDurably } from '../state/durable-file.js';
import { signingAlgorithm } from './key-store.js';

export const jwksFileName = 'jwks.json';
export const discoveryFileName = 'openid-configuration';

/**
 * The discovery document: what OpenID Connect Discovery requires of an issuer that only
 * signs tokens (as Kubernetes' service account issuer serves it): no endpoints but the keys.
 */
export function discoveryDocument(issuer: string): Record<string, unknown> {
  return {
    issuer,
    jwks_uri: `${issuer}/${jwksFileName}`,
    response_types_supported: ['id_token'],
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: [signingAlgorithm],
  };
}

/** Writes both files (the JWK Set first: the discovery document points at it). */
export async function publishIdentity(directory: string, issuer: string, jwks: JSONWebKeySet): Promise<void> {
  await fsp.mkdir(directory, { recursive: true, mode: 0o755 });
  await fsp.chmod(directory, 0o755);
  await writeFileDurably(path.join(directory, jwksFileName), `${JSON.stringify(jwks, null, 2)}\n`, 0o644);
  await writeFileDurably(path.join(directory, discoveryFileName), `${JSON.stringify(discoveryDocument(issuer), null, 2)}\n`, 0o644);
}
