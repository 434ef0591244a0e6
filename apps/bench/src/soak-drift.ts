/**
 * Soak drift: the least-squares line through the windows' CPU per call, its change from the first window to
 * the last relative to its value at the first, and how sure the windows make us of it. One noisy window
 * (other work on the machine) moves the line far less than it moves a plain last/first ratio. The goal is on
 * growth (what a leak or a queue that keeps growing does); a fall is reported, not failed.
 */
export interface Drift {
  /** Growth of the fitted line from the first window to the last, relative to the first (0.05 = +5 %). */
  drift: number;
  /**
   * Half-width of the drift's 95 % confidence interval, from the windows' scatter around the line (delta
   * method on slope / intercept, Student's t with n − 2 degrees of freedom). NaN with fewer than 3 windows.
   */
  margin95: number;
}

// Student's t at 0.975 for 1…30 degrees of freedom, then the normal's 1.96: a constant table, not a
// statistics library for one quantile.
const T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131, 2.12, 2.11, 2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042];

export function t975(degreesOfFreedom: number): number {
  return T975[degreesOfFreedom - 1] ?? 1.96;
}

export function fittedDrift(values: readonly number[]): Drift {
  const n = values.length;
  if (n < 2) return { drift: NaN, margin95: NaN };
  const meanX = (n - 1) / 2;
  const meanY = values.reduce((a, b) => a + b, 0) / n;
  let sxy = 0;
  let sxx = 0;
  values.forEach((y, x) => {
    sxy += (x - meanX) * (y - meanY);
    sxx += (x - meanX) ** 2;
  });
  const slope = sxy / sxx;
  const first = meanY - slope * meanX;
  const span = n - 1;
  const drift = (slope * span) / first;
  if (n < 3) return { drift, margin95: NaN };
  let residuals = 0;
  values.forEach((y, x) => {
    residuals += (y - (first + slope * x)) ** 2;
  });
  const s2 = residuals / (n - 2);
  // drift = span · b / a, with b the slope and a the line at the first window; its variance to first order.
  const varB = s2 / sxx;
  const varA = s2 * (1 / n + meanX ** 2 / sxx);
  const covAB = (-meanX * s2) / sxx;
  const ratio = slope / first;
  const variance = (span / first) ** 2 * (varB + ratio ** 2 * varA - 2 * ratio * covAB);
  return { drift, margin95: t975(n - 2) * Math.sqrt(Math.max(0, variance)) };
}
