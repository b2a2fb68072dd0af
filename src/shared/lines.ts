import type { Readable } from 'node:stream';
import { ApolloError } from './errors.js';

/**
 * The lines of a stream (without their newline); a last line without one is dropped. A
 * line longer than `maxLineBytes` throws (exit 1) rather than grow without bound: the
 * other end may be hostile or broken. Each chunk is searched once, not the whole line.
 */
export async function* readLines(stream: Readable, maxLineBytes = Infinity): AsyncGenerator<string> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    let start = 0;
    for (let newline = chunk.indexOf(0x0a, start); newline !== -1; newline = chunk.indexOf(0x0a, start)) {
      const tail = chunk.subarray(start, newline);
      if (pendingBytes + tail.length > maxLineBytes) throw lineTooLong(maxLineBytes);
      yield (pending.length === 0 ? tail : Buffer.concat([...pending, tail])).toString('utf8');
      pending = [];
      pendingBytes = 0;
      start = newline + 1;
    }
    if (start < chunk.length) {
      pendingBytes += chunk.length - start;
      if (pendingBytes > maxLineBytes) throw lineTooLong(maxLineBytes);
      pending.push(chunk.subarray(start));
    }
  }
}

function lineTooLong(limit: number): ApolloError {
  return new ApolloError('internal', `a line of the stream is longer than ${limit} bytes; refusing it`);
}
