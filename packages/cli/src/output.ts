import type { Readable, Writable } from 'node:stream';

/** The streams and environment of one run; tests and `bin.ts` pass the process's own. */
export interface CliIo {
  stdout: Writable;
  stderr: Writable;
  stdin: Readable & { isTTY?: boolean };
  env: NodeJS.ProcessEnv;
}

/** Writes one line. */
export function writeLine(stream: Writable, line: string): void {
  stream.write(`${line}\n`);
}

/** Writes a value as one line of JSON. */
export function writeJson(stream: Writable, value: unknown): void {
  stream.write(`${JSON.stringify(value)}\n`);
}

/**
 * Formats a duration for people: `850ms`, `42s`, `59m 58s`, `6h 59m`, `6d 23h`. Rounds down, so
 * a token never looks longer-lived than it is.
 */
export function formatDuration(ms: number): string {
  if (ms < 1_000) {
    return `${Math.max(0, Math.floor(ms))}ms`;
  }
  const seconds = Math.floor(ms / 1_000);
  if (seconds < 60) {
    return `${seconds}s`;
  }
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) {
    return `${minutes}m ${seconds % 60}s`;
  }
  const hours = Math.floor(minutes / 60);
  if (hours < 24) {
    return `${hours}h ${minutes % 60}m`;
  }
  return `${Math.floor(hours / 24)}d ${hours % 24}h`;
}

/** Formats rows as a table with a header row; columns are padded with spaces to align. */
export function formatTable(header: string[], rows: string[][]): string {
  return formatRows([header, ...rows]);
}

/** Formats rows as aligned columns, two spaces apart, one line per row. */
export function formatRows(rows: string[][]): string {
  const columns = Math.max(...rows.map((row) => row.length));
  const widths = Array.from({ length: columns }, (_, column) =>
    Math.max(...rows.map((row) => (row[column] ?? '').length)),
  );
  const formatRow = (row: string[]) =>
    row
      .map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column] ?? 0)))
      .join('  ');
  return `${rows.map(formatRow).join('\n')}\n`;
}
