// Runs in a worker thread (piscina), so this CPU-bound loop never blocks the server's event loop.
// Plain JavaScript: worker threads load it directly, in the server and under vitest alike.
import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';

/** Iterated SHA-256 of a seed: a stand-in for any CPU-heavy job (hashing, exports, image work). */
export default function digest({ seed, rounds }) {
  let value = Buffer.from(seed);
  for (let i = 0; i < rounds; i++) value = createHash('sha256').update(value).digest();
  return { digest: value.toString('hex'), rounds };
}
