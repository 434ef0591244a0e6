/** The bench's figures of many runs: one home for the median and the spread. */

/** The middle value, or the mean of the two middle ones; what is not a finite number is left out. */
export function median(values: readonly number[]): number {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);
  const n = sorted.length;
  if (n === 0) return NaN;
  const mid = Math.floor(n / 2);
  return n % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** The lowest and highest of a cell's repetitions, and their distance relative to the median. */
export function spread(values: readonly number[]): { min: number; max: number; relative: number } {
  const finite = values.filter(Number.isFinite);
  if (finite.length === 0) return { min: NaN, max: NaN, relative: NaN };
  const min = Math.min(...finite);
  const max = Math.max(...finite);
  return { min, max, relative: (max - min) / median(finite) };
}
