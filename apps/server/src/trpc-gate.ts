/**
 * What every request under /trpc/ passes before tRPC sees it: the method, then the credentials — so an
 * unauthenticated client learns nothing about which procedures exist (401 for all, known or not) — and
 * the response headers every API answer carries.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { TRPCError, type AnyTRPCProcedure, type AnyTRPCRouter } from '@trpc/server';
import { BEARER_TOKEN_HINT, unauthorizedMessage } from '@asyncscope/api';
import { closeAfter, isHttp2 } from './http-version';
import { trpcErrorResponses, writeJson, type TRPCErrorResponses } from './trpc-error-response';

export interface TrpcGateOptions {
  router: AnyTRPCRouter;
  /** '/trpc/' */
  basePath: string;
  /** Checks an Authorization header: the owner of its token, or undefined. */
  identify: (authorization: string | undefined) => string | undefined;
  /** Spends a stream ticket (auth.ticket): the owner it was issued to, if it was valid. */
  redeemTicket: (ticket: string) => string | undefined;
}

export const API_METHODS = 'GET, POST';
const UNAUTHORIZED = unauthorizedMessage(`${BEARER_TOKEN_HINT} (event streams: a ticket from auth.ticket)`);

/** Requests the gate let through, and the owner of the token or ticket they presented. */
const authorized = new WeakMap<IncomingMessage, string>();

/** Whether the gate let this request through on a valid token or ticket (createContext reads it). */
export function isAuthorized(req: IncomingMessage): boolean {
  return authorized.has(req);
}

/** The owner of the credential a request was let through on ('' if it was not). */
export function ownerOf(req: IncomingMessage): string {
  return authorized.get(req) ?? '';
}

/** Answers with a tRPC error shape (through the router's errorFormatter), as JSON. */
function sendTRPCError(errors: TRPCErrorResponses, res: ServerResponse, error: TRPCError, headers: Record<string, string> = {}): void {
  const { status, body } = errors.answer(error);
  // Answered before its body was read: close the connection rather than wait for (or parse) the rest.
  const { headers: sent } = res.req;
  const hasBody = (sent['content-length'] ?? '0') !== '0' || sent['transfer-encoding'] !== undefined;
  const unread = hasBody && !res.req.readableEnded ? closeAfter(res.req) : {};
  writeJson(res, status, body, { ...headers, ...unread, 'cache-control': 'no-store' });
}

/**
 * tRPC's adapter answers some errors (415, 405, batch errors) with a JSON body but `text/plain` — a web
 * Response made from a string — and its last-resort 500 with no content-type: make both application/json.
 */
export function jsonErrorsOnly(res: ServerResponse): void {
  res.setHeader('content-type', 'application/json');
  const setHeader = res.setHeader.bind(res);
  // Its event streams also set `Connection: keep-alive`, which HTTP/2 forbids (Node drops it with a warning).
  const h2 = isHttp2(res.req);
  const jsonSetHeader = (name: string, value: number | string | readonly string[]) => {
    const lower = name.toLowerCase();
    if (h2 && lower === 'connection') return res;
    return setHeader(name, lower === 'content-type' && typeof value === 'string' && value.startsWith('text/plain') ? 'application/json' : value);
  };
  // Made as a local, then stored: assigned straight to the property, V8 would allocate it in the old
  // generation, and it holds the response (eslint.config.js).
  res.setHeader = jsonSetHeader;
}

/** The ticket in `?connectionParams={"ticket":…}`, if there is one. */
function ticketOf(url: string): string | undefined {
  const q = url.indexOf('?');
  if (q === -1) return undefined;
  const raw = new URLSearchParams(url.slice(q + 1)).get('connectionParams');
  if (raw === null || raw.length > 1024) return undefined;
  try {
    const params: unknown = JSON.parse(raw);
    const ticket = typeof params === 'object' && params !== null ? (params as Record<string, unknown>).ticket : undefined;
    return typeof ticket === 'string' ? ticket : undefined;
  } catch {
    return undefined;
  }
}

/** Returns a check that answers the request itself (405, 401) and returns false, or returns true to pass it on. */
export function createTrpcGate(options: TrpcGateOptions): (req: IncomingMessage, res: ServerResponse) => boolean {
  const { router, basePath, identify, redeemTicket } = options;
  const procedures = router._def.procedures as Record<string, AnyTRPCProcedure | undefined>;
  const errors = trpcErrorResponses(router);
  return (req, res) => {
    // Answers must not be kept by browsers or proxies: they hold users' data.
    res.setHeader('cache-control', 'no-store');
    const { method } = req;
    if (method !== 'GET' && method !== 'POST') {
      const error = new TRPCError({ code: 'METHOD_NOT_SUPPORTED', message: `The API answers GET (queries, subscriptions) and POST (mutations), not ${method ?? 'this method'}.` });
      sendTRPCError(errors, res, error, { allow: API_METHODS });
      return false;
    }
    const owner = identify(req.headers.authorization);
    if (owner !== undefined) {
      // Every procedure takes JSON. Refused here rather than by tRPC, whose 415 message has an unclosed quote
      // and names no fix (curl -d sends application/x-www-form-urlencoded, a string body in fetch text/plain).
      if (method === 'POST' && !isJsonContentType(req.headers['content-type'])) {
        const sent = req.headers['content-type'];
        const message = `A POST needs "Content-Type: application/json"; this one had ${sent === undefined ? 'none' : JSON.stringify(sent)}.`;
        sendTRPCError(errors, res, new TRPCError({ code: 'UNSUPPORTED_MEDIA_TYPE', message }));
        return false;
      }
      authorized.set(req, owner);
      return true;
    }
    // Credentials in a URL end up in logs and histories: only a single-use ticket, only for an event stream.
    const url = req.url ?? '';
    const q = url.indexOf('?');
    const path = decodeURIComponentSafe(url.slice(basePath.length, q === -1 ? undefined : q));
    const ticket = method === 'GET' && procedures[path]?._def.type === 'subscription' ? ticketOf(url) : undefined;
    const ticketOwner = ticket === undefined ? undefined : redeemTicket(ticket);
    if (ticketOwner !== undefined) {
      authorized.set(req, ticketOwner);
      return true;
    }
    sendTRPCError(errors, res, new TRPCError({ code: 'UNAUTHORIZED', message: UNAUTHORIZED }));
    return false;
  };
}

/** application/json, compared as tRPC does (case-insensitive, parameters such as charset ignored). */
function isJsonContentType(contentType: string | undefined): boolean {
  return contentType !== undefined && contentType.toLowerCase().split(';', 1)[0]?.trim() === 'application/json';
}

function decodeURIComponentSafe(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
