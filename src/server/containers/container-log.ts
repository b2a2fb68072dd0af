/**
 * Reading a container's output log (DIR/logs/NAME.log, rotated by its monitor to
 * NAME.log.1 at the size cap) for `devapollo logs`: the last lines of both, then, when
 * following, whatever is appended, across rotations, until the reader hangs up or the
 * container is deleted. The bytes are the container's, untrusted: they are passed on
 * exactly as written, never parsed beyond counting newlines. A follower that falls two
 * rotations behind (more than the cap written within one poll) misses the middle one.
 */
import fsp from 'node:fs/promises';
import type { Writable } from 'node:stream';

/** How often a follower looks for new output (the monitor writes without telling anyone). */
const followPollMs = 200;
const chunkBytes = 64 * 1024;

/** The last `lines` lines of `text` (all of it when undefined); a last line without "\n" counts. */
export function lastLines(text: Buffer, lines: number | undefined): Buffer {
  if (lines === undefined) return text;
  if (lines === 0) return Buffer.alloc(0);
  let end = text.length;
  // A final newline ends the last line; it does not start an empty one.
  if (end > 0 && text[end - 1] === 0x0a) end--;
  let seen = 0;
  for (let i = end - 1; i >= 0; i--) {
    if (text[i] === 0x0a && ++seen === lines) return text.subarray(i + 1);
  }
  return text;
}

async function readIfThere(file: string): Promise<Buffer> {
  try {
    return await fsp.readFile(file);
  } catch {
    return Buffer.alloc(0);
  }
}

/**
 * Writes the last `lines` lines of the log (NAME.log.1 then NAME.log) to `out`; with
 * `follow`, goes on with what is appended until `signal` aborts or `exists()` turns false
 * (the container was deleted, its logs with it). Honours back-pressure: while `out` is
 * full nothing more is read, so a reader that stops reading holds one chunk, no more.
 */
export async function streamLog(
  file: string,
  out: Writable,
  options: { lines: number | undefined; follow: boolean; signal: AbortSignal; exists: () => boolean },
): Promise<void> {
  // Opened first: what is read from it afterwards continues exactly where the tail stopped.
  let current = await fsp.open(file, 'r').catch(() => undefined);
  let offset = current === undefined ? 0 : (await current.stat()).size;
  const head = current === undefined ? Buffer.alloc(0) : await readRange(current, 0, offset);
  const tail = lastLines(Buffer.concat([await readIfThere(`${file}.1`), head]), options.lines);
  if (tail.length > 0 && !(await write(out, tail, options.signal))) return closeQuietly(current);
  if (!options.follow) return closeQuietly(current);
  try {
    while (!options.signal.aborted) {
      if (current !== undefined) {
        const chunk = await readRange(current, offset, offset + chunkBytes);
        if (chunk.length > 0) {
          offset += chunk.length;
          if (!(await write(out, chunk, options.signal))) return;
          continue;
        }
      }
      // Drained: has the monitor rotated (a new file at the path) or has the log gone?
      const atPath = await fsp.stat(file).catch(() => undefined);
      const ours = current === undefined ? undefined : await current.stat();
      if (atPath !== undefined && (ours === undefined || atPath.ino !== ours.ino || atPath.dev !== ours.dev)) {
        // Rotated: what the monitor wrote to the old file between the read above and the
        // rename is still in it (it writes there no more), so it is drained first.
        if (current !== undefined && !(await drain(current, offset, out, options.signal))) return;
        await closeQuietly(current);
        current = await fsp.open(file, 'r').catch(() => undefined);
        offset = 0;
        continue;
      }
      if (!options.exists()) return;
      await sleep(followPollMs, options.signal);
    }
  } finally {
    await closeQuietly(current);
  }
}

/** Writes whatever `handle` holds from `offset` on; false once the reader has gone. */
async function drain(handle: fsp.FileHandle, offset: number, out: Writable, signal: AbortSignal): Promise<boolean> {
  for (;;) {
    const chunk = await readRange(handle, offset, offset + chunkBytes);
    if (chunk.length === 0) return true;
    offset += chunk.length;
    if (!(await write(out, chunk, signal))) return false;
  }
}

async function readRange(handle: fsp.FileHandle, from: number, to: number): Promise<Buffer> {
  const buffer = Buffer.alloc(Math.max(0, to - from));
  const { bytesRead } = await handle.read(buffer, 0, buffer.length, from);
  return buffer.subarray(0, bytesRead);
}

/** Writes and waits for room; false once the reader has gone. */
async function write(out: Writable, chunk: Buffer, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted || out.destroyed) return false;
  if (out.write(chunk)) return true;
  await new Promise<void>((resolve) => {
    const done = () => {
      out.off('drain', done);
      out.off('close', done);
      signal.removeEventListener('abort', done);
      resolve();
    };
    out.on('drain', done);
    out.on('close', done);
    signal.addEventListener('abort', done);
  });
  return !signal.aborted && !out.destroyed;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done);
  });
}

async function closeQuietly(handle: fsp.FileHandle | undefined): Promise<void> {
  await handle?.close().catch(() => undefined);
}
