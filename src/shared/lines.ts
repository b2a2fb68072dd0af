import type { Readable } from 'node:stream';

/** The lines of a stream (without their newline); a last line without one is dropped. */
export async function* readLines(stream: Readable): AsyncGenerator<string> {
  let buffered = '';
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    buffered += chunk.toString('utf8');
    let newline: number;
    while ((newline = buffered.indexOf('\n')) !== -1) {
      yield buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
    }
  }
}
