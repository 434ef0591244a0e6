import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface KeptToken {
  token: string;
  /** Where it is kept, for the banner. */
  file: string;
}

/**
 * The generated API token, kept in `dataDir/api-token` (mode 0600, like the database credentials) so a
 * restart does not log the dashboard out. Generated on first use; a file that is not a usable token
 * (too short) is replaced.
 */
export async function keptApiToken(dataDir: string): Promise<KeptToken> {
  const file = join(dataDir, 'api-token');
  const existing = await readFile(file, 'utf8').then((text) => text.trim(), (error: unknown) => {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw error;
  });
  if (existing.length >= 16) return { token: existing, file };
  await mkdir(dataDir, { recursive: true });
  const token = randomBytes(24).toString('base64url');
  // mode applies only when the file is created; a replaced one keeps its (already private) mode.
  await writeFile(file, `${token}\n`, { mode: 0o600 });
  return { token, file };
}
