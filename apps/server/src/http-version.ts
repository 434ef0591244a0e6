/**
 * The request handlers are written against node:http's IncomingMessage / ServerResponse. Over TLS the same
 * handlers get HTTP/2 streams through Node's compatibility API (Http2ServerRequest / Http2ServerResponse),
 * which has the same shape except for the two things below.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

/** An HTTP/2 request: connection-specific headers (`connection: close`) mean nothing there — one connection carries every stream. */
export function isHttp2(req: IncomingMessage): boolean {
  return req.httpVersionMajor === 2;
}

/**
 * Whether nobody can be answered any more. An HTTP/2 compat response has no `destroyed` of its own: its
 * stream has (destroyed once reset by the client, RST_STREAM, or its session gone).
 */
export function responseGone(res: ServerResponse): boolean {
  return res.destroyed || (res as ServerResponse & { stream?: { destroyed: boolean } }).stream?.destroyed === true;
}

/** The `connection: close` header for an answer that leaves a request body unread: none on HTTP/2. */
export function closeAfter(req: IncomingMessage): Record<string, string> {
  return isHttp2(req) ? {} : { connection: 'close' };
}
