/** Parsing of the CLI's values (durations, id ranges) and formatting of what it prints. */
import { UsageError } from './config';

/** "2s", "500ms", "1.5s", "1m"; a bare number is milliseconds. */
export function parseDuration(text: string, name: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  if (!m) throw new UsageError(`${name} must be a duration like 500ms, 2s or 1m (got ${JSON.stringify(text)})`);
  const value = Number(m[1]) * ({ ms: 1, s: 1000, m: 60_000 }[m[2] ?? 'ms'] ?? 1);
  if (!Number.isFinite(value) || value <= 0) throw new UsageError(`${name} must be more than 0 (got ${JSON.stringify(text)})`);
  return Math.round(value);
}

export function parseInteger(text: string, name: string, min: number, max: number): number {
  if (!/^\d+$/.test(text.trim())) throw new UsageError(`${name} must be a whole number (got ${JSON.stringify(text)})`);
  const value = Number(text);
  if (value < min || value > max) throw new UsageError(`${name} must be between ${min} and ${max} (got ${value})`);
  return value;
}

/** Most ids one run takes: a run is held in memory, id by id. */
export const MAX_IDS = 1_000_000;

/** "1-1000", "5", "1,3,10-20": ids in the order given (duplicates kept: each is a call). */
export function parseIds(text: string): number[] {
  const ids: number[] = [];
  for (const part of text.split(',')) {
    const m = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(part);
    if (!m) throw new UsageError(`--ids must be ids and ranges like 1-1000 or 1,5,10-20 (got ${JSON.stringify(text)})`);
    const from = Number(m[1]);
    const to = m[2] === undefined ? from : Number(m[2]);
    if (from < 1 || to < from) throw new UsageError(`--ids: ${part.trim()} is not a range of ids from 1 up`);
    if (ids.length + (to - from + 1) > MAX_IDS) throw new UsageError(`--ids names more than ${MAX_IDS} ids`);
    for (let id = from; id <= to; id++) ids.push(id);
  }
  return ids;
}

/** Nearest-rank percentile of sorted values. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))] ?? Number.NaN;
}

export function ms(value: number): string {
  if (!Number.isFinite(value)) return '-';
  return value < 10 ? `${value.toFixed(2)} ms` : value < 1000 ? `${value.toFixed(1)} ms` : `${(value / 1000).toFixed(2)} s`;
}

/** A plain-text table: a header, a rule, and columns padded to their widest cell (numbers to the right). */
export function table(columns: readonly string[], rows: readonly (readonly (string | number)[])[]): string {
  const cells = rows.map((row) => row.map((cell) => String(cell).replace(/[\r\n\t]/g, ' ')));
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((row) => (row[i] ?? '').length)));
  const numeric = columns.map((_, i) => cells.length > 0 && rows.every((row) => typeof row[i] === 'number'));
  const line = (row: readonly string[]) =>
    row.map((cell, i) => (numeric[i] ? cell.padStart(widths[i] ?? 0) : cell.padEnd(widths[i] ?? 0))).join('  ').trimEnd();
  return [line(columns), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)].join('\n');
}
