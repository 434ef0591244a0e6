import { describe, expect, it } from 'vitest';
import { initialToken, takeTokenFromUrl, TOKEN_KEY, TokenStore } from './token';

function memoryStorage() {
  const map = new Map<string, string>();
  return { getItem: (k: string) => map.get(k) ?? null, setItem: (k: string, v: string) => { map.set(k, v); }, removeItem: (k: string) => { map.delete(k); }, map };
}

describe('token', () => {
  it('takes ?token= from the URL and removes it, keeping the rest', () => {
    expect(takeTokenFromUrl('http://h:3000/?token=abc123&x=1#lab')).toEqual({ token: 'abc123', cleanHref: 'http://h:3000/?x=1#lab' });
    expect(takeTokenFromUrl('http://h:3000/?token=')).toEqual({ token: null, cleanHref: 'http://h:3000/' });
    expect(takeTokenFromUrl('http://h:3000/')).toEqual({ token: null, cleanHref: 'http://h:3000/' });
  });

  it('takes #token= from the fragment (never sent to the server) and removes it', () => {
    expect(takeTokenFromUrl('http://h:3000/#token=abc123')).toEqual({ token: 'abc123', cleanHref: 'http://h:3000/' });
    expect(takeTokenFromUrl('http://h:3000/?x=1#token=abc123&tab=lab')).toEqual({ token: 'abc123', cleanHref: 'http://h:3000/?x=1#tab=lab' });
    expect(takeTokenFromUrl('http://h:3000/#token=')).toEqual({ token: null, cleanHref: 'http://h:3000/' });
  });

  it('keeps it in (session) storage; a URL token replaces the kept one', () => {
    const storage = memoryStorage();
    storage.setItem(TOKEN_KEY, 'old-token-from-this-tab');
    const store = new TokenStore(storage);
    expect(store.get()).toBe('old-token-from-this-tab');
    const replaced: string[] = [];
    initialToken(store, { href: 'http://h/?token=new-token-0123456789' }, (href) => replaced.push(href));
    expect(replaced).toEqual(['http://h/']);
    expect(store.get()).toBe('new-token-0123456789');
    expect(storage.map.get(TOKEN_KEY)).toBe('new-token-0123456789');
    initialToken(store, { href: 'http://h/' }, (href) => replaced.push(href));
    expect(replaced).toHaveLength(1); // nothing to clean
    let heard = 0;
    store.subscribe(() => heard++);
    store.clear();
    expect([store.get(), storage.map.has(TOKEN_KEY), heard]).toEqual([null, false, 1]);
  });
});
