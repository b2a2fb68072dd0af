/** Request bodies: read up to a limit (413 beyond it), and parsed as JSON (400 when not JSON). */
import type { IncomingMessage } from 'node:http';
import { ApolloError } from '../../shared/errors.js';

/** The body of every GET: never read, never written to. */
export const noBody = Buffer.alloc(0);

/**
 * Reads a request body up to `limit` bytes; 413 beyond it. A body declared larger is
 * refused before a byte of it is read, and one that grows larger is not read on: the 413
 * closes the connection once it is sent, so that the rest of the body is never read
 * (node:http would otherwise read it to its end to find the next request). The request
 * stream is left as it is, not destroyed: its socket is still the connection's.
 */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) return Promise.reject(tooLarge(limit));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size <= limit) {
        chunks.push(chunk);
        return;
      }
      done();
      req.pause();
      chunks.length = 0;
      reject(tooLarge(limit));
    };
    const onEnd = (): void => {
      done();
      resolve(Buffer.concat(chunks));
    };
    // The only error a request stream has: its client went away before the body's end
    // (aborted, reset). A refusal like any other, not the daemon's fault: an internal
    // error would log a line at ERROR for every such request, a log any container could
    // fill at its request rate.
    const onError = (error: Error): void => {
      done();
      reject(
        new ApolloError('bad-request', 'the connection closed before the request body ended', {
          cause: error,
          headers: { Connection: 'close' },
        }),
      );
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}

/** The 413 of a body over `limit`; it ends its connection (see readBody). */
function tooLarge(limit: number): ApolloError {
  return new ApolloError('payload-too-large', `the request body is larger than ${limit} bytes`, { headers: { Connection: 'close' } });
}

/** Parses a JSON request body; 400 with the reason when it is not JSON. */
export function parseJsonBody(body: Buffer): unknown {
  if (body.length === 0) throw new ApolloError('bad-request', 'a JSON request body is required');
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (error) {
    throw new ApolloError('bad-request', `the request body is not valid JSON: ${(error as Error).message}`);
  }
}
