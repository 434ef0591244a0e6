import { describe, expect, it } from 'vitest';
import { NOTABLE_SHIFT, sectionShifts } from './steadiness';
import { median, spread } from './stats';

const windows = (...values: number[]) => values.map((cpuUsPerCall) => ({ cpuUsPerCall }));

describe('sectionShifts', () => {
  it('compares each target\'s soak with its own runs (medians), whatever the order', () => {
    const shifts = sectionShifts(
      [
        { target: 'patched', serverCpuUsPerCall: 84 },
        { target: 'server', serverCpuUsPerCall: 190 },
      ],
      [
        { target: 'server', windows: windows(393, 304, 298, 309, 309, 304, 315, 316, 331, 319) },
        { target: 'patched', windows: windows(84, 85, 83, 84, 86, 84, 83, 84, 85, 84) },
      ],
    );
    expect(shifts.map((s) => s.target)).toEqual(['server', 'patched']);
    const [server, patched] = shifts;
    expect(server?.soakUsPerCall).toBe(312); // (309 + 315) / 2: one slow first window does not move it
    expect(server?.shift).toBeCloseTo(312 / 190 - 1, 10);
    expect(Math.abs(server?.shift ?? 0)).toBeGreaterThan(NOTABLE_SHIFT);
    expect(patched?.shift).toBeCloseTo(0, 10);
  });

  it('leaves out a target without runs, and one whose figures are missing', () => {
    const shifts = sectionShifts(
      [{ target: 'server', serverCpuUsPerCall: NaN }],
      [
        { target: 'server', windows: windows(100, 100) },
        { target: 'shipped', windows: windows(100, 100) },
      ],
    );
    expect(shifts).toEqual([]);
  });
});

describe('median and spread', () => {
  it('take the middle, or the mean of the two middles, ignoring what is not a number', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([NaN, 5])).toBe(5);
    expect(median([])).toBeNaN();
  });

  it('gives the range of the repetitions relative to their median', () => {
    expect(spread([5894, 6173, 5136])).toEqual({ min: 5136, max: 6173, relative: (6173 - 5136) / 5894 });
    expect(spread([]).relative).toBeNaN();
  });
});
