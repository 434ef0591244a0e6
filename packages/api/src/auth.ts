import { hash, timingSafeEqual } from 'node:crypto';

/** How an HTTP caller sends its token, as the 401 message says it. */
export const BEARER_TOKEN_HINT = 'send "Authorization: Bearer <token>"';

/** The 401 message, the same words for every transport; `hint` says how this one takes a token. */
export function unauthorizedMessage(hint: string = BEARER_TOKEN_HINT): string {
  return `Missing or wrong API token: ${hint}.`;
}

/** SHA-256 with the one-shot API: no Hash object per call (half the time of createHash().update().digest()). */
const sha256 = (text: string): Buffer => hash('sha256', text, 'buffer');

const BEARER = /^Bearer\s+(.+)$/i;

/** The digest of a header's bearer token, or of '' when it has none (so a missing token costs the same). */
function bearerDigest(authorization: string | undefined): { digest: Buffer; present: boolean } {
  const match = BEARER.exec(authorization ?? '');
  return { digest: sha256(match?.[1]?.trim() ?? ''), present: match !== null };
}

/** Who presented a credential: a stable digest of the token (the same on every instance), never the token. */
export function ownerOfToken(token: string): string {
  return hash('sha256', token, 'base64url').slice(0, 16);
}

export interface Credentials {
  /** The owner of an `Authorization: Bearer …` header's token, if it is one of ours. */
  ownerOfHeader(authorization: string | undefined): string | undefined;
  /** The owner of a bare token (WebSocket connectionParams), if it is one of ours. */
  ownerOfToken(token: unknown): string | undefined;
}

/**
 * The tokens this server accepts, each its own caller: call ids are unique per caller, and a caller may
 * cancel only its own calls. Compared in constant time: both sides are hashed first, so neither the content nor
 * the length of a token leaks through timing.
 */
export function createCredentials(tokens: readonly string[]): Credentials {
  if (tokens.length === 0 || tokens.some((t) => t.length === 0)) throw new Error('API tokens must not be empty');
  const known = tokens.map((token) => ({ digest: sha256(token), owner: ownerOfToken(token) }));
  const ownerOfHeader = (authorization: string | undefined): string | undefined => {
    // The given token is hashed once; every known digest is compared, so timing does not tell which matched.
    const given = bearerDigest(authorization);
    let owner: string | undefined;
    for (const k of known) if (timingSafeEqual(given.digest, k.digest)) owner = k.owner;
    return given.present ? owner : undefined;
  };
  return {
    ownerOfHeader,
    ownerOfToken: (token) => (typeof token === 'string' && token.length > 0 && token.length <= 4096 ? ownerOfHeader(`Bearer ${token}`) : undefined),
  };
}
