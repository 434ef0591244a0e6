import { describe, expect, it } from 'vitest';
import { Lifetime } from './lifetime';

describe('Lifetime (a component’s mount as an AbortSignal)', () => {
  it('aborts what was started under it when it ends, and a new mount gets a fresh signal', () => {
    const lifetime = new Lifetime();
    const first = lifetime.signal();
    lifetime.begin();
    expect(lifetime.signal()).toBe(first);
    lifetime.end();
    expect(first.aborted).toBe(true);
    expect((first.reason as Error).name).toBe('AbortError');
    // StrictMode: mounted, unmounted, mounted again; handlers read the signal when they run.
    lifetime.begin();
    const second = lifetime.signal();
    expect(second).not.toBe(first);
    expect(second.aborted).toBe(false);
    lifetime.end();
    expect(second.aborted).toBe(true);
  });
});
