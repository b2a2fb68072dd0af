/**
 * The daemon's log: one line per event worth knowing, on stderr. Never config values
 * (they often carry secrets).
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFormat = 'text' | 'json';

const levels: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type LogFields = Record<string, string | number | boolean | undefined>;

export class Logger {
  constructor(
    private readonly level: LogLevel = 'info',
    private readonly format: LogFormat = 'text',
    private readonly write: (line: string) => void = (line) => process.stderr.write(line),
  ) {}

  debug(message: string, fields: LogFields = {}): void {
    this.log('debug', message, fields);
  }
  info(message: string, fields: LogFields = {}): void {
    this.log('info', message, fields);
  }
  warn(message: string, fields: LogFields = {}): void {
    this.log('warn', message, fields);
  }
  error(message: string, fields: LogFields = {}): void {
    this.log('error', message, fields);
  }

  enabled(level: LogLevel): boolean {
    return levels[level] >= levels[this.level];
  }

  private log(level: LogLevel, message: string, fields: LogFields): void {
    if (!this.enabled(level)) return;
    const time = new Date().toISOString();
    if (this.format === 'json') {
      this.write(`${JSON.stringify({ ...fields, time, level, msg: message })}\n`);
      return;
    }
    const extra = Object.entries(fields)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}=${formatValue(v)}`)
      .join(' ');
    this.write(`${time} ${level.toUpperCase().padEnd(5)} ${message}${extra ? ` ${extra}` : ''}\n`);
  }
}

function formatValue(value: string | number | boolean | undefined): string {
  const s = String(value);
  return /^[\w./:@-]+$/.test(s) ? s : JSON.stringify(s);
}

/**
 * Lets through at most `burst` lines per `windowMs`, then counts what it swallowed and
 * reports the count with the next line it lets through. A hostile container must not be
 * able to flood the host's log by connecting in a loop.
 */
export class RateLimitedLog {
  private windowStart = 0;
  private used = 0;
  private suppressed = 0;

  constructor(
    private readonly burst = 10,
    private readonly windowMs = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Calls `emit` (with the number of lines swallowed before it) or swallows this one. */
  attempt(emit: (suppressedBefore: number) => void): void {
    const suppressed = this.take();
    if (suppressed >= 0) emit(suppressed);
  }

  /**
   * The same without a callback, for paths that must not allocate (a refusal under a
   * flood): the number of lines swallowed before this one if it may be written, else -1
   * (and this one is swallowed).
   */
  take(): number {
    const now = this.now();
    if (now - this.windowStart >= this.windowMs) {
      this.windowStart = now;
      this.used = 0;
    }
    if (this.used >= this.burst) {
      this.suppressed++;
      return -1;
    }
    this.used++;
    const suppressed = this.suppressed;
    this.suppressed = 0;
    return suppressed;
  }
}
