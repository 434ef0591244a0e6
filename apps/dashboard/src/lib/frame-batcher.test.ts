import { describe, expect, it } from 'vitest';
import { FrameBatcher, pacedAnimationFrames } from './frame-batcher';

/** Frames and timers by hand, on a clock the test moves. */
function manual() {
  let now = 0;
  const frames: (() => void)[] = [];
  const timers: { at: number; fn: () => void }[] = [];
  return {
    now: () => now,
    frame: (cb: () => void) => { frames.push(cb); },
    wait: (fn: () => void, ms: number) => { timers.push({ at: now + ms, fn }); },
    /** Moves the clock, firing due timers, then runs the frames asked for. */
    advance(ms: number) {
      now += ms;
      for (const t of timers.filter((x) => x.at <= now)) {
        timers.splice(timers.indexOf(t), 1);
        t.fn();
      }
      for (const f of frames.splice(0)) f();
    },
  };
}

describe('pacedAnimationFrames', () => {
  it('publishes at a frame, at most once per interval, however many changes arrive', () => {
    const m = manual();
    const batcher = new FrameBatcher(() => undefined, pacedAnimationFrames(50, m.frame, m.now, m.wait));
    let published = 0;
    batcher.subscribe(() => { published++; });
    batcher.schedule();
    m.advance(16);
    expect(published).toBe(1); // the first change: at the next frame
    // Changes every 2 ms for 200 ms: published every 50 ms, not every frame (16 ms) nor every change.
    for (let t = 0; t < 200; t += 2) {
      batcher.schedule();
      m.advance(2);
    }
    m.advance(100);
    expect(published).toBeGreaterThanOrEqual(4);
    expect(published).toBeLessThanOrEqual(6);
  });

  it('a person’s input is not paced (publishNow)', () => {
    const m = manual();
    const batcher = new FrameBatcher(() => undefined, pacedAnimationFrames(50, m.frame, m.now, m.wait));
    let published = 0;
    batcher.subscribe(() => { published++; });
    batcher.schedule();
    m.advance(16);
    batcher.publishNow();
    batcher.publishNow();
    expect(published).toBe(3);
  });
});
