/**
 * Writing a file so that a crash or a power cut leaves either the old file or the new one,
 * never a torn one, and an acknowledged write is never lost: a temporary file beside it
 * (`.tmp-` prefix, which loaders remove as an unfinished write), fsynced, renamed over the
 * target, and the directory fsynced.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';

/** The prefix of a write that has not finished: never acknowledged, safe to remove. */
export const tempPrefix = '.tmp-';

/**
 * Replaces `file` with `data`, mode `mode` exactly (whatever the umask), durably. The old
 * file stays intact when this throws; the temporary file is removed.
 */
export async function writeFileDurably(file: string, data: string | Buffer, mode: number): Promise<void> {
  const directory = path.dirname(file);
  const temp = path.join(directory, `${tempPrefix}${path.basename(file)}-${randomBytes(6).toString('hex')}`);
  let handle: fsp.FileHandle | undefined;
  try {
    handle = await fsp.open(temp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, mode);
    await handle.chmod(mode);
    await handle.writeFile(data);
    await handle.sync();
    await handle.close();
    handle = undefined;
    await fsp.rename(temp, file);
    await syncDirectory(directory);
  } catch (error) {
    await handle?.close().catch(() => undefined);
    await fsp.rm(temp, { force: true }).catch(() => undefined);
    throw error;
  }
}

/** Makes a directory's entries (a rename, an unlink) durable. */
export async function syncDirectory(directory: string): Promise<void> {
  const dir = await fsp.open(directory, 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}
