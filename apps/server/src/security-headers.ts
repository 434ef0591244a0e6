/** Response headers for the dashboard (a browser app) and the API. */
import type { ServerResponse } from 'node:http';

/**
 * The built dashboard loads only its own scripts and styles (Vite emits no inline script), talks only to
 * its own origin (API calls, event streams), and may not be framed (clickjacking).
 */
export const DASHBOARD_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

export const DASHBOARD_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': DASHBOARD_CSP,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  // The dashboard's address may carry its token in the fragment; no Referer ever leaves it.
  'referrer-policy': 'no-referrer',
};

export function setDashboardHeaders(res: ServerResponse): void {
  for (const [name, value] of Object.entries(DASHBOARD_HEADERS)) res.setHeader(name, value);
}
