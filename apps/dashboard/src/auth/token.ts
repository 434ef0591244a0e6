/**
 * The API token: taken from `?token=` once (then removed from the address bar, so it is not left in the
 * history or a screenshot), or typed in; kept in sessionStorage for this tab only.
 */
export const TOKEN_KEY = 'asyncscope.token';

/** Reads `token` from a URL and returns the URL without it. */
export function takeTokenFromUrl(href: string): { token: string | null; cleanHref: string } {
  const url = new URL(href);
  const token = url.searchParams.get('token');
  if (token === null) return { token: null, cleanHref: href };
  url.searchParams.delete('token');
  return { token: token.trim() === '' ? null : token.trim(), cleanHref: url.toString() };
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
