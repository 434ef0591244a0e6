import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * Returns a check of an `Authorization` header against the expected bearer token, in constant time:
 * both sides are hashed first, so neither the content nor the length of the token leaks through timing.
 */
export function createBearerVerifier(expectedToken: string): (authorization: string | undefined) => boolean {
  if (expectedToken.length === 0) throw new Error('the API token must not be empty');
  const expected = createHash('sha256').update(expectedToken).digest();
  return (authorization) => {
    const match = /^Bearer\s+(.+)$/i.exec(authorization ?? '');
    const given = createHash('sha256').update(match?.[1]?.trim() ?? '').digest();
    return timingSafeEqual(given, expected) && match !== null;
  };
}
