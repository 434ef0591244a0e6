import { AbortError } from '@asyncscope/concurrency';
import { useEffect, useState } from 'react';

/**
 * A component's lifetime as an AbortSignal, for the work its handlers start (a launch, a seeding): aborted
 * when the component unmounts, so the calls still in flight are dropped rather than left to answer a view
 * that is gone. Read at call time (`signal()`): StrictMode mounts a component twice, and the first mount's
 * signal is aborted by then.
 */
export class Lifetime {
  #controller = new AbortController();

  /** The current mount's signal. */
  readonly signal = (): AbortSignal => this.#controller.signal;

  /** Mounted (again): a lifetime that ended starts a new one. */
  begin(): void {
    if (this.#controller.signal.aborted) this.#controller = new AbortController();
  }

  /** Unmounted: everything started under this lifetime is aborted. */
  end(): void {
    this.#controller.abort(new AbortError('The view was closed'));
  }
}

/** The calling component's Lifetime: `signal()` for what its handlers start. */
export function useLifetimeSignal(): () => AbortSignal {
  const [lifetime] = useState(() => new Lifetime());
  useEffect(() => {
    lifetime.begin();
    return () => { lifetime.end(); };
  }, [lifetime]);
  return lifetime.signal;
}
