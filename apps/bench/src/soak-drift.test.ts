import { describe, expect, it } from 'vitest';
import { fittedDrift, t975 } from './soak-drift';

/** A seeded generator (mulberry32) with normal deviates (Box–Muller): the same series on every run. */
function normals(seed: number): () => number {
  let a = seed >>> 0;
  const uniform = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
}

describe('fittedDrift', () => {
  it('reads a straight line exactly, with no margin', () => {
    const { drift, margin95 } = fittedDrift([100, 101, 102, 103, 104, 105, 106, 107, 108, 109]);
    expect(drift).toBeCloseTo(0.09, 10);
    expect(margin95).toBeCloseTo(0, 10);
  });

  it('calls a flat series with one outlier flat, and the outlier widens the margin', () => {
    const quiet = fittedDrift([100, 100, 100, 100, 100, 100, 100, 100, 100, 100]);
    expect(quiet.drift).toBe(0);
    const bump = fittedDrift([100, 100, 100, 100, 130, 100, 100, 100, 100, 100]);
    expect(Math.abs(bump.drift)).toBeLessThan(0.02); // a 30 % window moves the line by under 2 %
    expect(bump.margin95).toBeGreaterThan(0.05);
  });

  it('reports a fall as a negative drift', () => {
    expect(fittedDrift([120, 118, 116, 114, 112, 110, 108, 106, 104, 102]).drift).toBeCloseTo(-0.15, 10);
  });

  it('has no figure from fewer than two windows, and no margin from fewer than three', () => {
    expect(fittedDrift([100]).drift).toBeNaN();
    expect(fittedDrift([100, 110]).drift).toBeCloseTo(0.1, 10);
    expect(fittedDrift([100, 110]).margin95).toBeNaN();
  });

  it("covers the true drift about 95 % of the time for 10 windows with 8 % noise", () => {
    const next = normals(12);
    const trials = 4000;
    let covered = 0;
    for (let trial = 0; trial < trials; trial++) {
      const trueDrift = 0.1 * ((trial % 5) - 2); // −20 % … +20 %
      const series = Array.from({ length: 10 }, (_, x) => 100 * (1 + (trueDrift * x) / 9) + 8 * next());
      const { drift, margin95 } = fittedDrift(series);
      if (Math.abs(drift - trueDrift) <= margin95) covered++;
    }
    expect(covered / trials).toBeGreaterThan(0.93);
    expect(covered / trials).toBeLessThan(0.97);
  });

  it('uses Student’s t for small samples and the normal beyond 30 degrees of freedom', () => {
    expect(t975(8)).toBe(2.306);
    expect(t975(200)).toBe(1.96);
  });
});
