/** Figures of a scenario: named values printed as an aligned two-column table, plus small statistics helpers. */

export type Figure = [name: string, value: string | number | boolean];

export interface ScenarioReport {
  title: string;
  figures: Figure[];
  /** Threshold checks: what must hold, and whether it did. */
  checks: { name: string; ok: boolean }[];
}

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;
}

/** `{ a: 3, b: 1 }` as "a 3, b 1" (largest first); "none" when empty. */
export function countsText(counts: ReadonlyMap<string, number>): string {
  const parts = [...counts].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`);
  return parts.length ? parts.join(', ') : 'none';
}

export function countBy<T>(items: Iterable<T>, key: (item: T) => string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const item of items) {
    const k = key(item);
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  return counts;
}

export const ms = (n: number | undefined) => (n === undefined || Number.isNaN(n) ? 'n/a' : `${Math.round(n)} ms`);
export const pct = (ok: number, total: number) => (total === 0 ? 'n/a (0 calls)' : `${((100 * ok) / total).toFixed(1)}% (${ok}/${total})`);

/** The report as lines: title, aligned figures, then each check as PASS/FAIL. */
export function formatReport(report: ScenarioReport): string {
  const width = Math.max(...report.figures.map(([name]) => name.length));
  const lines = [`== ${report.title}`];
  for (const [name, value] of report.figures) lines.push(`  ${name.padEnd(width)}  ${String(value)}`);
  for (const c of report.checks) lines.push(`  ${c.ok ? 'PASS' : 'FAIL'}  ${c.name}`);
  return lines.join('\n');
}

/** Prints a report (stdout, so it shows under vitest and in the standalone runner alike). */
export function printReport(report: ScenarioReport): void {
  process.stdout.write(`\n${formatReport(report)}\n`);
}

/**
 * Throws when a check failed, with the failed checks first and then the whole report: a CI log keeps only
 * its tail (and the failure summary the first lines of the message), so the figures must be in the error.
 */
export function assertChecksPass(report: ScenarioReport): void {
  const failed = report.checks.filter((c) => !c.ok).map((c) => c.name);
  if (failed.length) throw new Error(`${failed.map((name) => `FAIL ${name}`).join('\n')}\n${formatReport(report)}`);
}
