/**
 * The identity signing keys, in DIR/identity/ (0700): one P-256 key per file, `KID.json`
 * (0600), KID the key's RFC 7638 thumbprint. The newest key signs; each older one signed
 * until the next was made, and is kept (published in the JWK Set) until every token it
 * can have signed has expired, then deleted.
 *
 * Written with writeFileDurably (temporary file, fsync, rename, fsync of the directory):
 * a rotation is one new file, so a crash leaves either the old key set or the new one. A
 * key file that is not exactly what this store writes (unreadable, not JSON, not a P-256
 * private key, a name that is not its thumbprint, a symbolic link, owned by another user,
 * open to group or others) stops the daemon with the file's name and the reason; it is
 * never overwritten, and no new key is made in its place. As ssh does with an
 * unprotected private key: a key others may have read is refused, not repaired.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { type CryptoKey, calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type JWK } from 'jose';
import { ApolloError } from '../../shared/errors.js';
import { syncDirectory, tempPrefix, writeFileDurably } from '../state/durable-file.js';

/** The only algorithm devapollo signs with: ECDSA on P-256 with SHA-256. */
export const signingAlgorithm = 'ES256';

/** The format of a key file; a newer one is refused, never misread. */
const keyFileSchema = 1;

/** A key file is a few hundred bytes; anything much larger is not one of ours. */
const maxKeyFileBytes = 64 * 1024;

/** One signing key: its private half for signing, its public JWK for the JWK Set. */
export interface SigningKey {
  readonly kid: string;
  readonly createdAt: Date;
  readonly privateKey: CryptoKey;
  /** kty, crv, x, y, plus kid, use and alg: what relying parties fetch. */
  readonly publicJwk: Readonly<JWK>;
  readonly file: string;
}

/** What a key file holds. */
interface KeyFile {
  readonly schema: number;
  readonly kid: string;
  readonly created_at: string;
  readonly alg: string;
  readonly private_jwk: JWK;
}

export class KeyStore {
  /** Oldest first; the last one signs. Never empty once opened. */
  private keys: SigningKey[] = [];
  /** Rotations and retirements, one at a time. */
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly directory: string,
    /** A key stops being published this long after it stopped signing. */
    private readonly retainMs: number,
  ) {}

  /**
   * Opens DIR/identity (made 0700 if missing; refused if another user owns it), loads
   * every key, and makes the first key if there is none.
   */
  static async open(directory: string, options: { retainMs: number }): Promise<{ store: KeyStore; created: SigningKey | undefined }> {
    const store = new KeyStore(directory, options.retainMs);
    await fsp.mkdir(directory, { recursive: true, mode: 0o700 });
    const stat = await fsp.lstat(directory);
    if (!stat.isDirectory()) throw keyDirError(directory, 'is not a directory');
    if (stat.uid !== process.geteuid?.()) throw keyDirError(directory, `is owned by uid ${stat.uid}, not the daemon's user`);
    await fsp.chmod(directory, 0o700);
    for (const entry of (await fsp.readdir(directory)).sort()) {
      const file = path.join(directory, entry);
      if (entry.startsWith(tempPrefix)) {
        // An unfinished write from a crash: never used, so nothing is lost.
        await fsp.rm(file, { force: true });
        continue;
      }
      if (!entry.endsWith('.json')) continue;
      store.keys.push(await readKeyFile(file));
    }
    store.keys.sort(byAge);
    let created: SigningKey | undefined;
    if (store.keys.length === 0) {
      created = await store.makeKey();
      store.keys.push(created);
    }
    return { store, created };
  }

  /** The key that signs now. */
  get current(): SigningKey {
    return this.keys[this.keys.length - 1] as SigningKey;
  }

  /** Every key a token that has not expired can carry: the current one and those not yet retired. */
  get published(): readonly SigningKey[] {
    return this.keys;
  }

  /** Makes a new key that signs from now on; the old ones stay published until retired. */
  rotate(): Promise<{ key: SigningKey; previous: SigningKey }> {
    return this.serialize(async () => {
      const previous = this.current;
      const key = await this.makeKey();
      this.keys.push(key);
      this.keys.sort(byAge);
      return { key, previous };
    });
  }

  /**
   * When the next key is due to be retired (a key retires `retainMs` after the key made
   * after it began to sign), or undefined when only the current key is left.
   */
  nextRetirement(): Date | undefined {
    const successor = this.keys[1];
    return successor === undefined ? undefined : new Date(successor.createdAt.getTime() + this.retainMs);
  }

  /** Deletes the keys whose last token has expired by `now`; returns them. */
  retire(now: Date = new Date()): Promise<SigningKey[]> {
    return this.serialize(async () => {
      const retired: SigningKey[] = [];
      while (this.keys.length > 1) {
        const [oldest, successor] = this.keys as [SigningKey, SigningKey];
        if (successor.createdAt.getTime() + this.retainMs > now.getTime()) break;
        await fsp.rm(oldest.file, { force: true });
        this.keys.shift();
        retired.push(oldest);
      }
      if (retired.length > 0) await syncDirectory(this.directory);
      return retired;
    });
  }

  private serialize<T>(work: () => Promise<T>): Promise<T> {
    const next = this.queue.then(work);
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** A new P-256 key, written durably as KID.json before it is used. */
  private async makeKey(): Promise<SigningKey> {
    const { privateKey } = await generateKeyPair(signingAlgorithm, { extractable: true });
    const privateJwk = await exportJWK(privateKey);
    const kid = await calculateJwkThumbprint(publicPart(privateJwk));
    // Never before the newest key's time, even if the clock went back: the newest signs.
    const newest = this.keys[this.keys.length - 1];
    const createdAt = new Date(Math.max(Date.now(), (newest?.createdAt.getTime() ?? 0) + 1));
    const content: KeyFile = {
      schema: keyFileSchema,
      kid,
      created_at: createdAt.toISOString(),
      alg: signingAlgorithm,
      private_jwk: privateJwk,
    };
    const file = path.join(this.directory, `${kid}.json`);
    await writeFileDurably(file, `${JSON.stringify(content, null, 2)}\n`, 0o600);
    return await keyFromFile(file, content);
  }
}

function byAge(a: SigningKey, b: SigningKey): number {
  return a.createdAt.getTime() - b.createdAt.getTime() || (a.kid < b.kid ? -1 : a.kid > b.kid ? 1 : 0);
}

/** The public members of an EC JWK, in the form the thumbprint and the JWK Set use. */
function publicPart(jwk: JWK): JWK {
  return { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y } as JWK;
}

function keyDirError(directory: string, reason: string): ApolloError {
  return new ApolloError('internal', `the identity key directory ${directory} ${reason}; fix or move it away, devapollo will not use it`);
}

function keyFileError(file: string, reason: string): ApolloError {
  return new ApolloError('internal', `identity key file ${file} ${reason}; fix or move it away, devapollo will not overwrite it`);
}

/**
 * Reads one key file, checking it from the descriptor it was opened as (O_NOFOLLOW: a
 * symbolic link planted in the directory is refused, never followed).
 */
async function readKeyFile(file: string): Promise<SigningKey> {
  let handle: fsp.FileHandle;
  try {
    handle = await fsp.open(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw keyFileError(file, code === 'ELOOP' ? 'is a symbolic link' : `cannot be read (${code ?? String(error)})`);
  }
  let text: string;
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw keyFileError(file, 'is not a regular file');
    if (stat.uid !== process.geteuid?.()) throw keyFileError(file, `is owned by uid ${stat.uid}, not the daemon's user`);
    if ((stat.mode & 0o077) !== 0) {
      const mode = (stat.mode & 0o777).toString(8).padStart(4, '0');
      throw keyFileError(file, `has mode ${mode}: a private key must be 0600 (if others may have read it, rotate once it is fixed)`);
    }
    if (stat.size > maxKeyFileBytes) throw keyFileError(file, `is ${stat.size} bytes, not a key file`);
    text = await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
  let content: unknown;
  try {
    content = JSON.parse(text);
  } catch (error) {
    throw keyFileError(file, `is not valid JSON (${(error as Error).message})`);
  }
  const bad = (what: string): never => {
    throw keyFileError(file, `is invalid: ${what}`);
  };
  if (typeof content !== 'object' || content === null || Array.isArray(content)) bad('not an object');
  const k = content as Record<string, unknown>;
  if (typeof k['schema'] !== 'number' || !Number.isSafeInteger(k['schema']) || k['schema'] < 1) bad('no valid schema version');
  if ((k['schema'] as number) > keyFileSchema)
    throw keyFileError(file, `has schema ${String(k['schema'])}, newer than this devapollo (${keyFileSchema})`);
  if (k['alg'] !== signingAlgorithm) bad(`alg is ${JSON.stringify(k['alg'])}, not ${signingAlgorithm}`);
  if (typeof k['created_at'] !== 'string' || Number.isNaN(Date.parse(k['created_at']))) bad('created_at');
  const jwk = k['private_jwk'] as Record<string, unknown> | undefined;
  if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk)) bad('private_jwk');
  const j = jwk as Record<string, unknown>;
  if (j['kty'] !== 'EC' || j['crv'] !== 'P-256') bad('private_jwk is not a P-256 key');
  for (const member of ['x', 'y', 'd']) if (typeof j[member] !== 'string') bad(`private_jwk has no ${member}`);
  const kid = await calculateJwkThumbprint(publicPart(j as JWK));
  if (k['kid'] !== kid) bad(`kid ${JSON.stringify(k['kid'])} is not the key's thumbprint ${kid}`);
  if (path.basename(file) !== `${kid}.json`) bad(`its name is not the key's thumbprint (${kid}.json)`);
  try {
    return await keyFromFile(file, content as KeyFile);
  } catch (error) {
    if (error instanceof ApolloError) throw error;
    return bad(`private_jwk is not a usable key (${(error as Error).message})`);
  }
}

async function keyFromFile(file: string, content: KeyFile): Promise<SigningKey> {
  const privateJwk = { ...content.private_jwk };
  delete privateJwk.ext;
  delete privateJwk.key_ops;
  const privateKey = await importJWK(privateJwk, signingAlgorithm);
  if (privateKey instanceof Uint8Array || privateKey.type !== 'private') throw new Error('not a private key');
  return {
    kid: content.kid,
    createdAt: new Date(content.created_at),
    privateKey,
    publicJwk: { ...publicPart(content.private_jwk), kid: content.kid, use: 'sig', alg: signingAlgorithm },
    file,
  };
}
