/**
 * The API token: taken from the address once — `#token=` (a fragment is never sent to a server, so it
 * cannot land in its logs), or `?token=` from links printed by older versions — then removed from the
 * address bar (history, screenshots), or typed in; kept in sessionStorage for this tab only.
 */
export const TOKEN_KEY = 'asyncscope.token';

/** Reads `token` from a URL's fragment (or, for old links, its query) and returns the URL without it. */
export function takeTokenFromUrl(href: string): { token: string | null; cleanHref: string } {
  const url = new URL(href);
  const fragment = new URLSearchParams(url.hash.slice(1));
  const fromFragment = fragment.get('token');
  const fromQuery = url.searchParams.get('token');
  if (fromFragment === null && fromQuery === null) return { token: null, cleanHref: href };
  if (fromQuery !== null) url.searchParams.delete('token');
  if (fromFragment !== null) {
    fragment.delete('token');
    const rest = fragment.toString();
    url.hash = rest === '' ? '' : `#${rest}`;
  }
  const token = (fromFragment ?? fromQuery ?? '').trim();
  return { token: token === '' ? null : token, cleanHref: url.toString() };
}

type KeyValueStorage = Pick<Storage, 'getItem' | 'setItem' | 'removeItem'>;

export class TokenStore {
  #token: string | null;
  readonly #listeners = new Set<() => void>();

  constructor(private readonly storage: KeyValueStorage | null) {
    this.#token = storage?.getItem(TOKEN_KEY) ?? null;
  }

  get = (): string | null => this.#token;

  set(token: string): void {
    this.#token = token.trim();
    this.storage?.setItem(TOKEN_KEY, this.#token);
    this.#emit();
  }

  clear(): void {
    this.#token = null;
    this.storage?.removeItem(TOKEN_KEY);
    this.#emit();
  }

  subscribe = (listener: () => void): (() => void) => {
    this.#listeners.add(listener);
    return () => { this.#listeners.delete(listener); };
  };

  #emit(): void {
    for (const listener of this.#listeners) listener();
  }
}

/** At start: a token in the URL wins (and is removed from it), else the one this tab kept. */
export function initialToken(store: TokenStore, location: { href: string }, replaceUrl: (href: string) => void): void {
  const { token, cleanHref } = takeTokenFromUrl(location.href);
  if (cleanHref !== location.href) replaceUrl(cleanHref);
  if (token) store.set(token);
}
