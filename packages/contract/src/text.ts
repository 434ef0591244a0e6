import { z } from 'zod';

/** A NUL, or a surrogate half without its other half (JSON can carry both: "\u0000", "\ud800"). */
// eslint-disable-next-line no-control-regex -- matching NUL is the point
const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Whether Postgres can store this text as it is: it refuses NUL in `text` (a 500 if it gets that far), and
 * an unpaired surrogate has no UTF-8 form (the driver would silently store U+FFFD instead).
 */
export function isStorableText(value: string): boolean {
  return !UNSTORABLE.test(value);
}

/**
 * The start of every text field of the API: a string Postgres can store, refused on its field otherwise.
 * Chain the field's own rules after it (`.trim().min(1)…`).
 */
export function storableText(name: string) {
  return z
    .string({ error: `${name} must be a string` })
    .refine(isStorableText, { error: `${name} must not contain NUL characters or unpaired surrogates`, abort: true });
}
