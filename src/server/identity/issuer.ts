/**
 * Workload identity tokens (PROTOCOL.md section 3b): short-lived JWTs, signed with the
 * host's key, that let a container prove who it is to any third party that fetches the
 * JWK Set. The container's identity is the one the guest server proved from the kernel's
 * peer credentials; nothing the guest sends goes into a token but the audience and ttl.
 */
import { randomUUID } from 'node:crypto';
import { createLocalJWKSet, type JSONWebKeySet, errors as joseErrors, jwtVerify, SignJWT } from 'jose';
import { ApolloError } from '../../shared/errors.js';
import type { Container } from '../containers/container.js';
import { ContainerBuckets, type RateLimit, retryAfterSeconds } from '../guest/limits.js';
import type { Logger } from '../log.js';
import { KeyStore, type SigningKey, signingAlgorithm } from './key-store.js';
import { publishIdentity } from './public-files.js';
import { type IdentitySettings, spiffeId } from './settings.js';

/** The longest lifetime a token may be given, in seconds. */
export const maxTokenSeconds = 3600;
/** The lifetime of a token when the guest does not say. */
export const defaultTokenSeconds = 300;
/**
 * How long a retired key stays published past the last moment a token it signed can be
 * valid: relying parties whose clocks run a little behind still find it.
 */
export const retirementGraceSeconds = 60;
/**
 * Tokens a container may be issued, per second and at once. A token costs the daemon
 * about eight times what a config GET does (docs/RELIABILITY.md), and a workload needs
 * a token per login, not a stream of them: without this, one container within its
 * request rate could take all the signing the host can do.
 */
export const defaultTokenRate: RateLimit = { perSecond: 16, burst: 64 };

/** The `devapollo` claim: which container, which instance of it, on which host. */
export interface DevapolloClaim {
  readonly container: string;
  readonly instance: string;
  readonly host: string;
  readonly privileged: boolean;
}

/** Every claim of a devapollo token. */
export interface TokenClaims {
  readonly iss: string;
  readonly sub: string;
  readonly aud: string;
  readonly iat: number;
  readonly nbf: number;
  readonly exp: number;
  readonly jti: string;
  readonly devapollo: DevapolloClaim;
}

/** One container's side of the issuer: tokens that name it, and the keys (what a guest handler gets). */
export interface ContainerIdentity {
  /**
   * A token for the container as its record says now. Over its token rate it throws a
   * 429 at once, synchronously, before anything is signed.
   */
  issue(audience: string, ttlSeconds: number): Promise<{ token: string; claims: TokenClaims }>;
  jwks(): JSONWebKeySet;
  jwksEtag(): string;
}

/** What a token is issued for: the container as its record says now. */
export interface TokenSubject {
  readonly name: string;
  readonly instance: string;
  readonly privileged: boolean;
}

export class IdentityIssuer {
  private retirementTimer: NodeJS.Timeout | undefined;
  /** Each container's token bucket, made at its first request (a re-created container starts afresh). */
  /** The refusals over the token rate, one per Retry-After, made once (a flood builds none). */
  private readonly refusals = new Map<number, ApolloError>();
  private jwksCache: JSONWebKeySet | undefined;
  private closed = false;
  /**
   * What opening did, told by `logStarted` once the daemon has said it started: nothing is
   * logged before a start that may still fail (a start refused for its arguments says only why).
   */
  private opened: { created: SigningKey | undefined; retired: SigningKey[] } = { created: undefined, retired: [] };

  private constructor(
    private readonly store: KeyStore,
    readonly settings: IdentitySettings,
    private readonly publicDir: string,
    private readonly logger: Logger,
    private readonly tokenRate: RateLimit,
  ) {
    this.buckets = new ContainerBuckets(tokenRate);
  }

  /** Each container's token rate. */
  private readonly buckets: ContainerBuckets;

  /**
   * Loads the keys from `identityDir` (making the first one at first start), retires those
   * whose last token has expired, and publishes the JWK Set and discovery document.
   */
  static async open(options: {
    identityDir: string;
    publicDir: string;
    settings: IdentitySettings;
    logger: Logger;
    tokenRate?: RateLimit | undefined;
  }): Promise<IdentityIssuer> {
    const { store, created } = await KeyStore.open(options.identityDir, { retainMs: (maxTokenSeconds + retirementGraceSeconds) * 1000 });
    const issuer = new IdentityIssuer(store, options.settings, options.publicDir, options.logger, options.tokenRate ?? defaultTokenRate);
    issuer.opened = { created, retired: await issuer.retireExpired(false) };
    await issuer.publish();
    issuer.scheduleRetirement();
    return issuer;
  }

  /** The public keys that verify tokens: the current one first, then those not yet retired. */
  jwks(): JSONWebKeySet {
    this.jwksCache ??= { keys: [...this.store.published].reverse().map((key) => ({ ...key.publicJwk })) };
    return this.jwksCache;
  }

  /** Changes whenever the JWK Set does (keys are only ever added and removed, never reused). */
  jwksEtag(): string {
    return `"jwks-${this.store.published.map((key) => key.kid.slice(0, 8)).join('-')}"`;
  }

  /** The issuer as one container sees it: it can ask only for tokens that name itself. */
  forContainer(container: Container): ContainerIdentity {
    return {
      issue: (audience, ttlSeconds) => {
        this.admit(container);
        const { record } = container;
        return this.issue({ name: record.name, instance: record.instance_uuid, privileged: record.privileged }, audience, ttlSeconds);
      },
      jwks: () => this.jwks(),
      jwksEtag: () => this.jwksEtag(),
    };
  }

  /**
   * Takes one of `container`'s tokens; over its token rate, a 429 with Retry-After (its
   * requests also count against its guest request rate, before they get here).
   */
  private admit(container: Container): void {
    const waitMs = this.buckets.of(container).take();
    if (waitMs === 0) return;
    const seconds = retryAfterSeconds(waitMs);
    let refusal = this.refusals.get(seconds);
    if (refusal === undefined) {
      refusal = new ApolloError(
        'too-many-requests',
        `too many identity tokens for this container (at most ${this.tokenRate.perSecond} a second, ${this.tokenRate.burst} at once)`,
        { headers: { 'Retry-After': String(seconds) } },
      );
      if (seconds < 3600) this.refusals.set(seconds, refusal);
    }
    throw refusal;
  }

  /** A signed token for `subject`, and its claims. Logged without the token. */
  async issue(subject: TokenSubject, audience: string, ttlSeconds: number): Promise<{ token: string; claims: TokenClaims }> {
    const key = this.store.current;
    const now = Math.floor(Date.now() / 1000);
    const claims: TokenClaims = {
      iss: this.settings.issuer,
      sub: spiffeId(this.settings, subject.name),
      aud: audience,
      iat: now,
      nbf: now,
      exp: now + ttlSeconds,
      jti: randomUUID(),
      devapollo: { container: subject.name, instance: subject.instance, host: this.settings.host, privileged: subject.privileged },
    };
    const token = await new SignJWT({ ...claims })
      .setProtectedHeader({ alg: signingAlgorithm, kid: key.kid, typ: 'JWT' })
      .sign(key.privateKey);
    this.logger.info('identity token issued', {
      container: subject.name,
      audience,
      jti: claims.jti,
      exp: new Date(claims.exp * 1000).toISOString(),
      kid: key.kid,
    });
    return { token, claims };
  }

  /** A new key signs from now on; the previous one stays published until its tokens have expired. */
  async rotate(): Promise<{ kid: string; previous: string; previous_retires_at: string }> {
    const { key, previous } = await this.store.rotate();
    this.jwksCache = undefined;
    await this.publish();
    this.scheduleRetirement();
    const retiresAt = new Date(key.createdAt.getTime() + (maxTokenSeconds + retirementGraceSeconds) * 1000).toISOString();
    this.logger.info('identity key rotated', { kid: key.kid, previous: previous.kid, previous_retires_at: retiresAt });
    return { kid: key.kid, previous: previous.kid, previous_retires_at: retiresAt };
  }

  /**
   * The claims of a token this daemon signed, if its signature, `iss`, `exp`, `nbf` and
   * (when given) `aud` hold and the container instance it names still exists
   * (`instanceOf` answers a container's current instance); else a 403 with the reason.
   */
  async verify(token: string, audience: string | undefined, instanceOf: (container: string) => string | undefined): Promise<TokenClaims> {
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(token.trim(), createLocalJWKSet(this.jwks()), {
        algorithms: [signingAlgorithm],
        issuer: this.settings.issuer,
        typ: 'JWT',
        requiredClaims: ['sub', 'aud', 'iat', 'nbf', 'exp', 'jti'],
        ...(audience === undefined ? {} : { audience }),
      }));
    } catch (error) {
      const reason = verificationFailure(error, token, { audience, issuer: this.settings.issuer });
      throw new ApolloError('forbidden', `the token is not valid: ${reason}`, { cause: error });
    }
    const claim = payload['devapollo'] as Partial<DevapolloClaim> | undefined;
    if (typeof claim !== 'object' || claim === null || typeof claim.container !== 'string' || typeof claim.instance !== 'string') {
      throw new ApolloError('forbidden', 'the token is not valid: it has no devapollo claim naming a container instance');
    }
    const current = instanceOf(claim.container);
    if (current === undefined) {
      throw new ApolloError(
        'forbidden',
        `the token is not valid: container ${claim.container} no longer exists (instance ${claim.instance})`,
      );
    }
    if (current !== claim.instance) {
      throw new ApolloError(
        'forbidden',
        `the token is not valid: instance ${claim.instance} of container ${claim.container} is gone (the container was re-created or re-registered; now ${current})`,
      );
    }
    return payload as unknown as TokenClaims;
  }

  /** Logs the key made or retired at start, and the key that signs. */
  logStarted(): void {
    const { created, retired } = this.opened;
    if (created !== undefined) this.logger.info('identity key created', { kid: created.kid, file: created.file });
    for (const key of retired) this.logger.info('identity key retired', { kid: key.kid });
    this.logger.info('identity tokens signed', {
      issuer: this.settings.issuer,
      trust_domain: this.settings.trustDomain,
      kid: this.store.current.kid,
    });
  }

  /** Stops the retirement timer (daemon shutdown). */
  close(): void {
    this.closed = true;
    clearTimeout(this.retirementTimer);
  }

  /** Retires the keys whose last token has expired; logs them unless told not to (at open). */
  private async retireExpired(log = true): Promise<SigningKey[]> {
    const retired = await this.store.retire();
    if (retired.length > 0) this.jwksCache = undefined;
    if (log) for (const key of retired) this.logger.info('identity key retired', { kid: key.kid });
    return retired;
  }

  private async publish(): Promise<void> {
    await publishIdentity(this.publicDir, this.settings.issuer, this.jwks());
  }

  /** At the next retirement: retire, publish, and schedule the one after (a failure is retried). */
  private scheduleRetirement(): void {
    clearTimeout(this.retirementTimer);
    const next = this.store.nextRetirement();
    if (next === undefined || this.closed) return;
    // setTimeout takes at most 2^31-1 ms; a key retires within about an hour anyway.
    const delay = Math.min(Math.max(next.getTime() - Date.now(), 0) + 50, 2 ** 31 - 1);
    this.retirementTimer = setTimeout(() => {
      void (async () => {
        try {
          await this.retireExpired();
          await this.publish();
          this.scheduleRetirement();
        } catch (error) {
          this.logger.error('cannot retire identity keys; trying again in a minute', { error: String(error) });
          if (!this.closed) this.retirementTimer = setTimeout(() => this.scheduleRetirement(), 60_000).unref();
        }
      })();
    }, delay);
    this.retirementTimer.unref();
  }
}

/** One line saying why jose refused a token, in the terms of the token. */
function verificationFailure(error: unknown, token: string, expected: { audience: string | undefined; issuer: string }): string {
  if (error instanceof joseErrors.JWTExpired) {
    const exp = error.payload['exp'];
    return `it expired${typeof exp === 'number' ? ` at ${new Date(exp * 1000).toISOString()}` : ''}`;
  }
  if (error instanceof joseErrors.JWTClaimValidationFailed) {
    const value = error.payload[error.claim];
    switch (error.claim) {
      case 'aud':
        return `its audience is ${JSON.stringify(value)}, not ${JSON.stringify(expected.audience)}`;
      case 'iss':
        return `it was issued by ${JSON.stringify(value)}, not by this daemon (${expected.issuer})`;
      case 'nbf':
        return `it is not valid before ${typeof value === 'number' ? new Date(value * 1000).toISOString() : JSON.stringify(value)}`;
      default:
        return `its ${error.claim} claim is wrong (${error.message})`;
    }
  }
  if (error instanceof joseErrors.JWKSNoMatchingKey)
    return `it was signed by a key this daemon does not have (kid ${JSON.stringify(kidOf(token))})`;
  if (error instanceof joseErrors.JWSSignatureVerificationFailed)
    return 'its signature does not verify (it was altered, or signed by another key)';
  if (error instanceof joseErrors.JOSEAlgNotAllowed) return `it is not signed with ${signingAlgorithm}`;
  if (error instanceof joseErrors.JOSEError) return `it is not a signed JWT (${error.message})`;
  return String(error);
}

/** The kid in a token's header, read without trusting it (for the message only). */
function kidOf(token: string): unknown {
  try {
    return (JSON.parse(Buffer.from(token.split('.')[0] ?? '', 'base64url').toString('utf8')) as { kid?: unknown }).kid;
  } catch {
    return undefined;
  }
}
