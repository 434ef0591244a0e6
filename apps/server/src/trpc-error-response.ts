/**
 * tRPC's error answer, made here for every part of the server that answers in tRPC's place: the gate
 * (trpc-gate.ts), the body reader (request-body.ts), the fast path (fast-trpc.ts) and the WebSocket
 * transport's own refusals (ws-transport.ts). One shape for all, the one tRPC's adapters write (11.22.1
 * resolveResponse / the ws adapter): the router's errorFormatter (getErrorShape), then its transformer
 * (transformTRPCResponse), as `{ error }` over HTTP with getHTTPStatusCode's status, `{ id, error }` over a
 * WebSocket.
 */
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import {
  getErrorShape,
  transformTRPCResponse,
  type AnyTRPCRootTypes,
  type AnyTRPCRouter,
  type TRPCError,
  type TRPCErrorShape,
  type TRPCProcedureType,
  type TRPCRootConfig,
} from '@trpc/server';
import { getHTTPStatusCode } from '@trpc/server/http';

/** Where an error happened, as the errorFormatter is told; all unknown (the default) before routing. */
interface ErrorSite {
  type?: TRPCProcedureType | 'unknown';
  path?: string | undefined;
  input?: unknown;
  ctx?: unknown;
}

/** An HTTP error answer: its status and its JSON body. */
interface ErrorAnswer {
  status: number;
  body: string;
}

export interface TRPCErrorResponses {
  /** The router's config (`_def._config`): transformer and errorFormatter. */
  readonly config: TRPCRootConfig<AnyTRPCRootTypes>;
  /** `{ error }`, as tRPC's HTTP adapter answers it. */
  answer(error: TRPCError, site?: ErrorSite): ErrorAnswer;
  /** `{ id, error }`, a WebSocket frame as tRPC's ws adapter sends it. */
  frame(id: string | number | null, error: TRPCError): string;
}

const UNKNOWN: ErrorSite = {};

/** tRPC's error answers for `router`. */
export function trpcErrorResponses(router: AnyTRPCRouter): TRPCErrorResponses {
  const config = router._def._config as TRPCRootConfig<AnyTRPCRootTypes>;
  const shapeOf = (error: TRPCError, site: ErrorSite): TRPCErrorShape =>
    getErrorShape({ config, error, type: site.type ?? 'unknown', path: site.path, input: site.input, ctx: site.ctx }) as TRPCErrorShape;
  return {
    config,
    answer(error, site = UNKNOWN) {
      const response = { error: shapeOf(error, site) };
      return { status: getHTTPStatusCode(response), body: JSON.stringify(transformTRPCResponse(config, response)) };
    },
    frame(id, error) {
      return JSON.stringify(transformTRPCResponse(config, { id, error: shapeOf(error, UNKNOWN) }));
    },
  };
}

/** tRPC's `vary` on every answer of its HTTP adapter. */
export const TRPC_VARY = 'trpc-accept, accept';

/** Writes a JSON answer whole (a content-length, no chunks), with `headers` besides. */
export function writeJson(res: ServerResponse, status: number, body: string, headers?: OutgoingHttpHeaders): void {
  res.writeHead(status, { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
