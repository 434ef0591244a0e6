import { describe, expect, it } from 'vitest';
import { decodeToken, encodeToken, sanitizeToken } from './util.ts';

describe('instance id encoding', () => {
  it('is collision-free and reversible, and yields only what subjects and KV keys accept', () => {
    const ids = ['a:1', 'a_1', 'a.1', 'a-1', 'a1', 'a 1', 'a*1', 'a>1', 'a/1', '', '_', '__', 'é:1', 'host.example.com:4242', '_3a', 'a_3a1'];
    const tokens = ids.map(encodeToken);
    expect(new Set(tokens).size).toBe(ids.length);
    for (const [k, id] of ids.entries()) {
      expect(tokens[k]).toMatch(/^[A-Za-z0-9_-]+$/);
      expect(decodeToken(tokens[k] ?? '')).toBe(id);
    }
    expect(encodeToken('host-1:42')).toBe('host-1_3a42');
    expect(encodeToken('a_1')).toBe('a_5f1');
    expect(sanitizeToken('a:1')).toBe(encodeToken('a:1'));
    expect(() => decodeToken('a.1')).toThrow();
    expect(() => decodeToken('a_zz')).toThrow();
  });
});
