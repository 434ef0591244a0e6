import { createHash, timingSafeEqual } from 'node:crypto';

/** How an HTTP caller sends its token, as the 401 message says it. */
export const BEARER_TOKEN_HINT = 'send "Authorization: Bearer <token>"';

/** The 401 message, the same words for every transport; `hint` says how this one takes a token. */
export function unauthorizedMessage(hint: string = BEARER_TOKEN_HINT): string {
  return `Missing or wrong API token: ${hint}.`;
}

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

/** Who presented a credential: a stable digest of the token (the same on every instance), never the token. */
export function ownerOfToken(token: string): string {
  return createHash('sha256').update(token).digest('base64url').slice(0, 16);
}

export interface Credentials {
  /** The owner of an `Authorization: Bearer …` header's token, if it is one of ours. */
  ownerOfHeader(authorization: string | undefined): string | undefined;
  /** The owner of a bare token (WebSocket connectionParams), if it is one of ours. */
  ownerOfToken(token: unknown): string | undefined;
}

/**
 * The tokens this server accepts, each its own caller: call ids are unique per caller, and a caller may
 * cancel only its own calls. Compared in constant time, like createBearerVerifier.
 */
export function createCredentials(tokens: readonly string[]): Credentials {
  if (tokens.length === 0 || tokens.some((t) => t.length === 0)) throw new Error('API tokens must not be empty');
  const verifiers = tokens.map((token) => ({ verify: createBearerVerifier(token), owner: ownerOfToken(token) }));
  const ownerOfHeader = (authorization: string | undefined): string | undefined => {
    let owner: string | undefined;
    // Every one is checked, so timing does not tell which token matched.
    for (const v of verifiers) if (v.verify(authorization)) owner = v.owner;
    return owner;
  };
  return {
    ownerOfHeader,
    ownerOfToken: (token) => (typeof token === 'string' && token.length > 0 && token.length <= 4096 ? ownerOfHeader(`Bearer ${token}`) : undefined),
  };
}
