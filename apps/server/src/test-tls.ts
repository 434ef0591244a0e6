/**
 * A throwaway certificate for 127.0.0.1 / localhost, made when a test runs (no key is ever committed):
 * selfsigned (pure JS, no openssl CLI needed on a fresh CI box).
 */
import { createHash, createPublicKey } from 'node:crypto';
import { generate } from 'selfsigned';

export interface TestCertificate {
  /** PEM */
  cert: string;
  /** PEM private key */
  key: string;
  /** base64 SHA-256 of the certificate's public key (SPKI): what Chromium's --ignore-certificate-errors-spki-list takes. */
  spkiHash: string;
}

export async function makeTestCertificate(): Promise<TestCertificate> {
  const pems = await generate([{ name: 'commonName', value: 'localhost' }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate: new Date(Date.now() - 60_000),
    notAfterDate: new Date(Date.now() + 2 * 86_400_000),
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }] },
    ],
  });
  const spki = createPublicKey(pems.cert).export({ type: 'spki', format: 'der' });
  return { cert: pems.cert, key: pems.private, spkiHash: createHash('sha256').update(spki).digest('base64') };
}
