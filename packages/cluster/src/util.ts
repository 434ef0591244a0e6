/** Small async helpers of the link: every wait ends on abort, and leaves no listener behind. */

/** Resolves after `ms`, or at once when `signal` aborts (never rejects). */
export function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/** "Something changed": `wait` resolves on the next `notify`, or when any of its signals aborts. */
export class Notifier {
  readonly #waiters = new Set<() => void>();

  notify(): void {
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const wake of waiters) wake();
  }

  wait(...signals: AbortSignal[]): Promise<void> {
    if (signals.some((s) => s.aborted)) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = (): void => {
        this.#waiters.delete(wake);
        for (const s of signals) s.removeEventListener('abort', wake);
        resolve();
      };
      this.#waiters.add(wake);
      for (const s of signals) s.addEventListener('abort', wake, { once: true });
    });
  }
}

/**
 * A subject token / KV key from an instance id, reversibly: letters, digits and `-` stay, every other UTF-8 byte
 * (`_` included) becomes `_` + two hex digits (`host:1` → `host_3a1`, `a_1` → `a_5f1`). Injective, so two
 * instances never share a cancel subject or a presence key; the empty id is `_` (no encoding yields it).
 */
export function encodeToken(id: string): string {
  if (id === '') return '_';
  let out = '';
  for (const ch of id) {
    if (/^[A-Za-z0-9-]$/.test(ch)) out += ch;
    else for (const byte of Buffer.from(ch, 'utf8')) out += `_${byte.toString(16).padStart(2, '0')}`;
  }
  return out;
}

/** The instance id `encodeToken` made `token` from (throws on a token it cannot have made). */
export function decodeToken(token: string): string {
  if (token === '_') return '';
  if (!/^(?:[A-Za-z0-9-]|_[0-9a-f]{2})+$/.test(token)) throw new Error(`not an encoded instance id: ${token}`);
  const bytes: number[] = [];
  for (let i = 0; i < token.length; ) {
    if (token[i] === '_') {
      bytes.push(parseInt(token.slice(i + 1, i + 3), 16));
      i += 3;
    } else {
      bytes.push(token.charCodeAt(i));
      i++;
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

/** The former name of `encodeToken` (kept for callers): now reversible, so ids that differ never collide. */
export const sanitizeToken = encodeToken;

/** Removes `user:pass@` from any URL inside a message (errors may quote the server address). */
export function redactUrl(message: string): string {
  return message.replace(/([a-z][a-z0-9+.-]*:\/\/)[^@/\s]+@/gi, '$1***@');
}
