import { useEffect, useState } from 'react';

/** Re-renders every `everyMs` while `on`: a clock shown on screen ("for N s", a rate) that keeps moving when nothing else arrives. */
export function useTicking(on: boolean, everyMs: number): void {
  const [, setTick] = useState(0);
  useEffect(() => {
    if (!on) return;
    const timer = setInterval(() => { setTick((t) => t + 1); }, everyMs);
    return () => { clearInterval(timer); };
  }, [on, everyMs]);
}
