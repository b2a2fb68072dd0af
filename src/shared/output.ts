/**
 * Everything both CLIs print, in one place: tables, --format, colour, the error line.
 * Colour only on a terminal, never with NO_COLOR. stdout holds only results; messages go
 * to stderr.
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
    head: head.every((h) => h === '') ? [] : head.map((h) => chalk.bold(h)),
    style: { head: [], border: [] },
    chars: { mid: '', 'left-mid': '', 'mid-mid': '', 'right-mid': '' },
  });
  for (const row of rows) table.push([...row]);
  return `${table.toString()}\n`;
}

export function renderJson(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

export async function renderYaml(value: unknown): Promise<string> {
  const { stringify } = await import('yaml');
  return stringify(value);
}

/** RFC 4180 CSV: fields with commas, quotes or line breaks are quoted. */
export function renderCsv(head: readonly string[], rows: readonly (readonly string[])[]): string {
  const field = (v: string) => (/[",\r\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v);
  return [head, ...rows].map((row) => row.map(field).join(',')).join('\r\n') + '\r\n';
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
    const text = JSON.stringify(String(value ?? ''));
    return text.length > 80 ? `${text.slice(0, 77)}..."` : text;
  };
  const m = event.metadata;
  const what =
    event.type === 'config'
      ? `${chalk.bold(String(m['key']))}: ${shown(m['old_value'])} -> ${shown(m['value'])}`
      : [m['action'], m['state']].filter((part) => part !== undefined).join(' ');
  const container = event.container === undefined ? '' : `${chalk.cyan(event.container)}  `;
  return `${chalk.dim(event.timestamp)}  ${container}${event.type.padEnd(9)}  ${what}\n`;
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
 * The one top-level handler of both CLIs: runs a command, turns a thrown error into one
 * `Error: ` line on stderr and its exit code. Commands never call process.exit.
 */
export async function runCli(main: () => Promise<void>): Promise<void> {
  try {
    await main();
  } catch (error) {
    const apollo = error instanceof ApolloError ? error : undefined;
    const message = apollo?.message ?? (error instanceof Error ? error.message : String(error));
    const usage = error instanceof Error ? (error as { usage?: string }).usage : undefined;
    process.stderr.write(`Error: ${message.split('\n')[0]}\n${usage ? `\n${usage}\n` : ''}`);
    process.exitCode = apollo?.exitCode ?? 1;
  }
}
