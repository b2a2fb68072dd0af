/** Request bodies: read up to a limit (413 beyond it), and parsed as JSON (400 when not JSON). */
import type { IncomingMessage } from 'node:http';
import { ApolloError } from '../../shared/errors.js';

/** The body of every GET: never read, never written to. */
export const noBody = Buffer.alloc(0);

/** Reads a request body up to `limit` bytes; 413 beyond it. */
export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) throw new ApolloError('payload-too-large', `the request body is larger than ${limit} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new ApolloError('payload-too-large', `the request body is larger than ${limit} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
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
