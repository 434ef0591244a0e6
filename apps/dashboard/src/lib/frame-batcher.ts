/**
 * Many state changes per frame, one notification per frame. Stores keep their state outside React and
 * call `schedule()` when it changes; listeners (useSyncExternalStore) hear about it once, at the next
 * animation frame. With 1,000 calls settling, that is one render per frame instead of thousands.
 */
export type FrameScheduler = (callback: () => void) => void;

/** requestAnimationFrame where there is one; a 16 ms timer elsewhere (tests, node). */
export const animationFrame: FrameScheduler = (callback) => {
  if (typeof requestAnimationFrame === 'function') requestAnimationFrame(() => { callback(); });
  else setTimeout(callback, 16);
};

/**
 * Animation frames, at most one every `minIntervalMs`: a callback asked for sooner waits (on a timer) for the
 * first frame after that. For views fed by a stream of events (a lab run settles hundreds of calls a second):
 * rendering them 60 times a second took most of the page's main thread — 13 ms of script, layout and paint
 * per frame in Chromium at 1440 px — so the calls' own answers waited behind the frames, and frames were late.
 * The browser still draws every frame (scrolling stays smooth); the view's content changes at this pace.
 */
export function pacedAnimationFrames(
  minIntervalMs: number,
  frame: FrameScheduler = animationFrame,
  now: () => number = () => performance.now(),
  wait: (callback: () => void, ms: number) => void = (callback, ms) => { setTimeout(callback, ms); },
): FrameScheduler {
  let last = Number.NEGATIVE_INFINITY;
  /** Callbacks waiting for the next paced frame: whoever asks before it comes joins it. */
  let due: (() => void)[] | null = null;
  const run = (): void => {
    last = now();
    const callbacks = due ?? [];
    due = null;
    for (const callback of callbacks) callback();
  };
  return (callback) => {
    if (due) {
      due.push(callback);
      return;
    }
    due = [callback];
    const delay = last + minIntervalMs - now();
    // Within a millisecond of due: the next frame is soon enough.
    if (delay <= 1) frame(run);
    else wait(() => { frame(run); }, delay);
  };
}

/**
 * How often views fed by event streams change at most (a person's own input is published at once). Every
 * frame (60 Hz) cost a 10,000-call run half the page's main thread and its frames (p95 33 ms); 20 times a
 * second reads as live, and leaves the main thread to the calls.
 */
export const VIEW_INTERVAL_MS = 50;

/**
 * The page's one paced clock for those views: the lab's store and the header's feed state change in the
 * same frame. Each on a clock of its own, their frames interleaved (at concurrency 4, 31 frames a second
 * with work in them, each re-rendering style, layout and paint), and the calls' answers waited behind them.
 */
export const viewFrames: FrameScheduler = pacedAnimationFrames(VIEW_INTERVAL_MS);

export class FrameBatcher {
  #pending = false;
  readonly #listeners = new Set<() => void>();

  constructor(
    private readonly flush: () => void,
    private readonly scheduler: FrameScheduler = animationFrame,
  ) {}

  subscribe = (listener: () => void): (() => void) => {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  };

  /** Asks for a flush and a notification at the next frame; repeated calls within a frame coalesce. */
  schedule(): void {
    if (this.#pending) return;
    this.#pending = true;
    this.scheduler(() => {
      this.#pending = false;
      this.flush();
      for (const listener of this.#listeners) listener();
    });
  }

  /**
   * Flushes and notifies now. For a person's own input (a checkbox, a click): a controlled input that
   * waited for the next frame would snap back for a frame, and a fast second click would act on stale state.
   */
  publishNow(): void {
    this.flush();
    for (const listener of this.#listeners) listener();
  }

  get pending(): boolean {
    return this.#pending;
  }
}
