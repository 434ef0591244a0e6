import { describe, expect, it } from 'vitest';
import { createCredentials, ownerOfToken } from './auth';

describe('createCredentials', () => {
  const credentials = createCredentials(['token-of-ada', 'token-of-bob']);
  it('names the owner of each known token, by header and bare', () => {
    expect(credentials.ownerOfHeader('Bearer token-of-ada')).toBe(ownerOfToken('token-of-ada'));
    expect(credentials.ownerOfHeader('bearer   token-of-bob')).toBe(ownerOfToken('token-of-bob'));
    expect(credentials.ownerOfToken('token-of-bob')).toBe(ownerOfToken('token-of-bob'));
    expect(ownerOfToken('token-of-ada')).not.toBe(ownerOfToken('token-of-bob'));
  });
  it('names nobody for a wrong, missing or malformed credential', () => {
    for (const header of [undefined, '', 'token-of-ada', 'Basic token-of-ada', 'Bearer token-of-ad', 'Bearer token-of-ada2', 'Bearer ']) {
      expect(credentials.ownerOfHeader(header)).toBeUndefined();
    }
    for (const token of [undefined, '', 42, 'token-of-ad', 'x'.repeat(5000)]) expect(credentials.ownerOfToken(token)).toBeUndefined();
  });
  it('an owner is the same digest on every instance (the cluster relies on it): the first 16 base64url characters of SHA-256', () => {
    expect(ownerOfToken('abc')).toBe('ungWv48Bz-pBQUDe');
  });
  it('refuses to be built with no token or an empty one', () => {
    expect(() => createCredentials([])).toThrow();
    expect(() => createCredentials(['a', ''])).toThrow();
  });
});
