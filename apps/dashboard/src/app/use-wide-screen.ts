import { useSyncExternalStore } from 'react';

/** Wide enough for the lab's table and the server panel side by side. */
export const WIDE_QUERY = '(min-width: 1280px)';

function subscribe(listener: () => void): () => void {
  const query = window.matchMedia(WIDE_QUERY);
  query.addEventListener('change', listener);
  return () => { query.removeEventListener('change', listener); };
}

export function useWideScreen(): boolean {
  return useSyncExternalStore(subscribe, () => window.matchMedia(WIDE_QUERY).matches);
}
