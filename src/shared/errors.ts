/**
 * One error type for the whole toolkit. Each stable code has two faces: the HTTP status
 * the daemon answers with, and the exit code a CLI ends with. The client rebuilds an
 * ApolloError from the status on the wire, so a guest exits with the code that matches
 * the server's answer (docs/api.md, "Exit codes").
 */
export const errorFaces = {
  'bad-request': { http: 400, exit: 2 },
  unauthorized: { http: 401, exit: 4 },
  forbidden: { http: 403, exit: 4 },
  'not-found': { http: 404, exit: 3 },
  'method-not-allowed': { http: 405, exit: 1 },
  'request-timeout': { http: 408, exit: 1 },
  conflict: { http: 409, exit: 1 },
  'payload-too-large': { http: 413, exit: 2 },
  'uri-too-long': { http: 414, exit: 2 },
  'too-many-requests': { http: 429, exit: 1 },
  'header-too-large': { http: 431, exit: 2 },
  internal: { http: 500, exit: 1 },
  unavailable: { http: 503, exit: 69 },
  // Local faces only: never sent by the daemon.
  usage: { http: 400, exit: 2 },
  'no-daemon': { http: 503, exit: 69 },
  'wait-timeout': { http: 504, exit: 75 },
} as const;

export type ErrorCode = keyof typeof errorFaces;

/** The error every layer throws; `code` is stable, `message` is one line for people. */
export class ApolloError extends Error {
  override readonly name = 'ApolloError';
  readonly code: ErrorCode;
  /** Extra response headers (Allow, Retry-After) for the HTTP face. */
  readonly headers: Readonly<Record<string, string>>;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; headers?: Record<string, string> } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.headers = options.headers ?? {};
  }

  get status(): number {
    return errorFaces[this.code].http;
  }

  get exitCode(): number {
    return errorFaces[this.code].exit;
  }
}

const localCodes: ReadonlySet<ErrorCode> = new Set(['usage', 'no-daemon', 'wait-timeout']);

/** Statuses the daemon sends, mapped back to the code that produced them. */
const codeByStatus = new Map<number, ErrorCode>();
for (const [code, face] of Object.entries(errorFaces) as [ErrorCode, { http: number }][]) {
  if (!localCodes.has(code)) codeByStatus.set(face.http, code);
}

/** Rebuilds the error a daemon answered with, from its status and envelope. */
export function errorFromResponse(status: number, body: string): ApolloError {
  let message = `the daemon answered with status ${status}`;
  try {
    const parsed = JSON.parse(body) as { type?: unknown; error?: unknown };
    if (parsed.type === 'error' && typeof parsed.error === 'string') message = parsed.error;
  } catch {
    // Not an envelope: keep the generic message.
  }
  const code = codeByStatus.get(status) ?? (status >= 500 ? 'internal' : 'bad-request');
  return new ApolloError(code, message);
}

/** The JSON error envelope (docs/api.md, "Conventions"). */
export function errorEnvelope(status: number, message: string): string {
  return JSON.stringify({ type: 'error', error: message, error_code: status });
}
