/**
 * Everything both CLIs print, in one place: tables, --format, colour, the error line.
 * Colour only on a terminal, never with NO_COLOR. stdout holds only results; messages go
 * to stderr.
 *
 * Text from elsewhere (values, key names, a server's error messages: a guest's socket
 * may answer anything) is shown with its control characters escaped in tables, event
 * lines and messages, so that nothing it holds drives the terminal (escape sequences
 * that retitle it, clear it, or answer back). A value `get` prints is its exact bytes,
 * as `cat` prints a file; JSON stays JSON, with the same characters escaped.
 */
import { ApolloError } from './errors.js';

export type OutputFormat = 'table' | 'json' | 'yaml' | 'csv';

export function useColor(stream: NodeJS.WriteStream): boolean {
  const noColor = process.env['NO_COLOR'];
  if (noColor !== undefined && noColor !== '') return false;
  return stream.isTTY === true;
}

/**
 * A table for people; the heavy modules load only when one is printed. A head of empty
 * strings (a table of names and values) prints no header row at all.
 */
export async function renderTable(head: readonly string[], rows: readonly (readonly string[])[]): Promise<string> {
  const [{ default: Table }, { Chalk }] = await Promise.all([import('cli-table3'), import('chalk')]);
  const chalk = new Chalk({ level: useColor(process.stdout) ? 1 : 0 });
  const table = new Table({
    head: head.every((h) => h === '') ? [] : head.map((h) => chalk.bold(visible(h))),
    style: { head: [], border: [] },
    chars: { mid: '', 'left-mid': '', 'mid-mid': '', 'right-mid': '' },
  });
  for (const row of rows) table.push(row.map(visible));
  return `${table.toString()}\n`;
}

/**
 * C0 and C1 control characters and DEL (ESC and CSI among them), line and paragraph
 * separators, and the bidirectional controls that make text read other than it is.
 */
const controlCharacters = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/g;
const namedEscapes: Readonly<Record<string, string>> = { '\t': '\\t', '\n': '\\n', '\r': '\\r' };

/** `text` with every control character escaped visibly: \t, \n, \r, \x1b, \u202e. */
export function visible(text: string): string {
  return text.replace(controlCharacters, (c) => {
    const code = c.charCodeAt(0);
    return namedEscapes[c] ?? (code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`);
  });
}

/** The characters JSON.stringify leaves raw that a terminal may still act on; escaped, the JSON means the same. */
const rawInJson = /[\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/g;

/** JSON text (one line without `indent`) in which no character can drive a terminal. */
export function safeJson(value: unknown, indent?: number): string {
  return JSON.stringify(value, null, indent).replace(rawInJson, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

export function renderJson(value: unknown): string {
  return `${safeJson(value, 2)}\n`;
}

export async function renderYaml(value: unknown): Promise<string> {
  const { stringify } = await import('yaml');
  return stringify(value);
}

/** RFC 4180 CSV: fields with commas, quotes or line breaks are quoted. */
export function renderCsv(head: readonly string[], rows: readonly (readonly string[])[]): string {
  const field = (v: string) => (/[",\r\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v);
  return `${[head, ...rows].map((row) => row.map(field).join(',')).join('\r\n')}\r\n`;
}

/** Renders data in the chosen format; `table` gives the head and rows for table and csv. */
export async function render(
  format: OutputFormat,
  data: unknown,
  table: () => { head: readonly string[]; rows: readonly (readonly string[])[] },
): Promise<string> {
  switch (format) {
    case 'json':
      return renderJson(data);
    case 'yaml':
      return renderYaml(data);
    case 'csv': {
      const { head, rows } = table();
      return renderCsv(head, rows);
    }
    case 'table': {
      const { head, rows } = table();
      return renderTable(head, rows);
    }
  }
}

/** An event of either API, as both CLIs' `watch`/`monitor` show it. */
export interface EventForDisplay {
  readonly type: string;
  readonly timestamp: string;
  readonly container?: string;
  readonly metadata: Readonly<Record<string, unknown>>;
}

/** One line per event for people; `--format json` prints the event itself instead. */
export async function renderEventLine(event: EventForDisplay): Promise<string> {
  const { Chalk } = await import('chalk');
  const chalk = new Chalk({ level: useColor(process.stdout) ? 1 : 0 });
  const shown = (value: unknown) => {
    const text = visible(JSON.stringify(String(value ?? '')));
    return text.length > 80 ? `${text.slice(0, 77)}..."` : text;
  };
  const m = event.metadata;
  const what =
    event.type === 'config'
      ? `${chalk.bold(visible(String(m['key'])))}: ${shown(m['old_value'])} -> ${shown(m['value'])}`
      : visible([m['action'], m['state']].filter((part) => part !== undefined).join(' '));
  const container = event.container === undefined ? '' : `${chalk.cyan(visible(String(event.container)))}  `;
  return `${chalk.dim(visible(String(event.timestamp)))}  ${container}${visible(String(event.type)).padEnd(9)}  ${what}\n`;
}

/** Writes to stdout and resolves once it is flushed (so exit codes never cut output). */
export function writeOut(data: string | Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    process.stdout.write(data, (error) => (error ? reject(error) : resolve()));
  });
}

/** Writes a value byte for byte; on a terminal a missing final newline is added for the prompt's sake. */
export async function writeValue(value: Buffer): Promise<void> {
  await writeOut(value);
  if (process.stdout.isTTY && value.length > 0 && value[value.length - 1] !== 0x0a) await writeOut('\n');
}

/**
 * The one top-level handler of both CLIs, and the only code that sets the exit code: runs
 * a command, which returns its exit code (or nothing for 0) or throws; a thrown error
 * becomes one `Error: ` line on stderr and the exit code of its ErrorCode (errorFaces,
 * docs/api.md, "Exit codes"). Commands never call process.exit.
 */
export async function runCli(main: () => Promise<number | void>): Promise<void> {
  try {
    const code = await main();
    if (typeof code === 'number') process.exitCode = code;
  } catch (error) {
    const apollo = error instanceof ApolloError ? error : undefined;
    const message = apollo?.message ?? (error instanceof Error ? error.message : String(error));
    const usage = error instanceof Error ? (error as { usage?: string }).usage : undefined;
    // Its first line, escaped: a server's message is shown, never obeyed by the terminal.
    process.stderr.write(`Error: ${visible(message.split('\n')[0] ?? '')}\n${usage ? `\n${usage}\n` : ''}`);
    process.exitCode = apollo?.exitCode ?? 1;
  }
}
