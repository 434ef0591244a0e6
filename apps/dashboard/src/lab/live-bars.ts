import { useLayoutEffect, useMemo, useRef } from 'react';

/** The segments still growing, and a way to keep their right edge at "now" without rendering their rows. */
export interface LiveBars {
  /** Ref callback for a growing segment starting at `left` px (clamped to `maxPx`). */
  attach: (el: HTMLElement, left: number, minPx: number, maxPx: number) => () => void;
}

export function useLiveBars(nowPx: number): LiveBars {
  const entries = useRef(new Map<HTMLElement, { left: number; minPx: number; maxPx: number }>());
  const nowRef = useRef(nowPx);
  nowRef.current = nowPx;
  const width = (e: { left: number; minPx: number; maxPx: number }, now: number): string => `${Math.max(e.minPx, Math.min(e.maxPx - e.left, now - e.left)).toFixed(1)}px`;
  useLayoutEffect(() => {
    for (const [el, e] of entries.current) el.style.width = width(e, nowPx);
  }, [nowPx]);
  return useMemo<LiveBars>(
    () => ({
      attach: (el, left, minPx, maxPx) => {
        const entry = { left, minPx, maxPx };
        entries.current.set(el, entry);
        el.style.width = width(entry, nowRef.current);
        return () => { entries.current.delete(el); };
      },
    }),
    [],
  );
}
