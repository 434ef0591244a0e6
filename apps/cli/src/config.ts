/** Where the CLI reads its configuration: flags first, then the environment, then the defaults. */
export const DEFAULT_URL = 'http://127.0.0.1:3000';

export interface GlobalOptions {
  url?: string;
  token?: string;
  json?: boolean;
  verbose?: boolean;
}

export interface Config {
  /** The server's base URL as given (shown to the user without credentials). */
  baseUrl: string;
  /** The tRPC endpoint: `${baseUrl}/trpc`. */
  trpcUrl: string;
  token: string;
  json: boolean;
  verbose: boolean;
}

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** The environment variables the CLI reads, and only those (never printed: the token is among them). */
export function readEnvironment(): { url: string | undefined; token: string | undefined } {
  // The one place the CLI reads its environment, as apps/server/src/env.ts is for the server.
  // eslint-disable-next-line no-restricted-properties
  const env = process.env;
  return { url: env.ASYNCSCOPE_URL || undefined, token: env.ASYNCSCOPE_TOKEN || undefined };
}

export function resolveConfig(options: GlobalOptions): Config {
  const env = readEnvironment();
  const raw = options.url ?? env.url ?? DEFAULT_URL;
  if (!URL.canParse(raw) || !/^https?:$/.test(new URL(raw).protocol)) throw new UsageError(`--url must be an http(s) URL, like ${DEFAULT_URL} (got ${JSON.stringify(shownUrl(raw))})`);
  const token = options.token ?? env.token;
  if (!token) throw new UsageError('no API token: set ASYNCSCOPE_TOKEN (or pass --token)');
  const base = new URL(raw);
  // Accept the endpoint itself too (…/trpc), as the client's own examples spell it.
  const path = base.pathname.replace(/\/+$/, '').replace(/\/trpc$/, '');
  base.pathname = path || '/';
  const baseUrl = base.toString().replace(/\/$/, '');
  return { baseUrl, trpcUrl: `${baseUrl}/trpc`, token, json: options.json ?? false, verbose: options.verbose ?? false };
}

/** A URL fit to print: no user name or password in it. */
export function shownUrl(url: string): string {
  if (!URL.canParse(url)) return url.replace(/\/\/[^@/]*@/, '//');
  const u = new URL(url);
  u.username = '';
  u.password = '';
  return u.toString().replace(/\/$/, '');
}
