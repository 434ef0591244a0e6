import { describe, expect, it } from 'vitest';
import { createBearerVerifier } from './auth';

describe('createBearerVerifier', () => {
  const verify = createBearerVerifier('s3cret-token');
  it('accepts the right token in any scheme case', () => {
    expect(verify('Bearer s3cret-token')).toBe(true);
    expect(verify('bearer s3cret-token')).toBe(true);
  });
  it('refuses missing, malformed, longer, shorter and wrong tokens', () => {
    for (const header of [undefined, '', 's3cret-token', 'Basic s3cret-token', 'Bearer s3cret-token2', 'Bearer s3cret', 'Bearer ']) {
      expect(verify(header)).toBe(false);
    }
  });
  it('refuses to be built with an empty token', () => {
    expect(() => createBearerVerifier('')).toThrow();
  });
});
