/**
 * Plain node:http calls to the server's tRPC endpoint, so every outcome is seen as it is on the wire: the
 * HTTP status and the tRPC error code, a client-side timeout, a reset connection, our own abort.
 */
import { Agent, request } from 'node:http';

export interface Target {
  /** e.g. http://127.0.0.1:4123 */
  url: string;
  token: string;
  agent: Agent;
}

export function target(url: string, token: string): Target {
  // Unlimited sockets: the load generator, not a client-side pool, decides how many calls are open.
  return { url, token, agent: new Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 256 }) };
}

/**
 * How a call ended: 'OK', a tRPC code ('SERVICE_UNAVAILABLE', …), `HTTP <status>` when the body was not a
 * tRPC error, or a client-side outcome: 'CLIENT_TIMEOUT' (no answer in time), 'ABORTED' (we aborted),
 * `NETWORK:<errno>` (connection refused / reset).
 */
export interface CallResult {
  code: string;
  status: number;
  /** Epoch ms when the request was started and when it ended. */
  startedAt: number;
  endedAt: number;
  /** When the request had been handed to the socket in full (after connecting), if it was. */
  sentAt?: number;
  /** The server's own time for the answer, from its `server-timing` header (ms), if it sent one. */
  serverMs?: number;
  data?: unknown;
  message?: string;
}

export interface CallOptions {
  method: 'GET' | 'POST';
  path: string;
  body?: string;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Client-side limit; 0 = none. */
  timeoutMs?: number;
}

interface TrpcErrorBody {
  error?: { message?: string; data?: { code?: string } };
  result?: { data?: unknown };
}

export function classify(status: number, text: string): { code: string; data?: unknown; message?: string } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { code: status === 200 ? 'OK' : `HTTP ${status}`, message: text.slice(0, 200) };
  }
  if (Array.isArray(parsed)) return { code: status === 200 ? 'OK' : `HTTP ${status}`, data: parsed };
  const body = parsed as TrpcErrorBody;
  if (status === 200 && body.result) return { code: 'OK', data: body.result.data };
  const code = body.error?.data?.code;
  return { code: code ?? `HTTP ${status}`, message: body.error?.message ?? text.slice(0, 200) };
}

export function call(t: Target, options: CallOptions): Promise<CallResult> {
  const startedAt = Date.now();
  return new Promise<CallResult>((resolve) => {
    let done = false;
    let sentAt: number | undefined;
    const finish = (r: Omit<CallResult, 'startedAt' | 'endedAt'>) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      resolve({ ...r, startedAt, endedAt: Date.now(), ...(sentAt !== undefined ? { sentAt } : {}) });
    };
    const headers: Record<string, string> = { authorization: `Bearer ${t.token}`, ...options.headers };
    if (options.body !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(Buffer.byteLength(options.body));
    }
    const req = request(`${t.url}${options.path}`, { method: options.method, headers, agent: t.agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      const timing = /dur=([\d.]+)/.exec(String(res.headers['server-timing'] ?? ''));
      const serverMs = timing ? { serverMs: Number(timing[1]) } : {};
      res.on('end', () => { finish({ status: res.statusCode ?? 0, ...serverMs, ...classify(res.statusCode ?? 0, Buffer.concat(chunks).toString('utf8')) }); });
      res.on('error', (error) => { finish({ status: res.statusCode ?? 0, code: `NETWORK:${errno(error)}` }); });
    });
    req.once('finish', () => { sentAt = Date.now(); });
    req.on('error', (error) => {
      finish({ status: 0, code: options.signal?.aborted ? 'ABORTED' : `NETWORK:${errno(error)}` });
    });
    const onAbort = () => {
      finish({ status: 0, code: 'ABORTED' });
      req.destroy();
    };
    const timer = options.timeoutMs
      ? setTimeout(() => {
          finish({ status: 0, code: 'CLIENT_TIMEOUT' });
          req.destroy();
        }, options.timeoutMs)
      : undefined;
    if (options.signal?.aborted) onAbort();
    else options.signal?.addEventListener('abort', onAbort, { once: true });
    req.end(options.body);
  });
}

function errno(error: Error): string {
  return (error as NodeJS.ErrnoException).code ?? error.message;
}

const input = (value: unknown) => `?input=${encodeURIComponent(JSON.stringify(value))}`;

/** A tRPC query (GET ?input=). */
export function query(t: Target, procedure: string, value: unknown, options: Omit<CallOptions, 'method' | 'path' | 'body'> = {}): Promise<CallResult> {
  return call(t, { ...options, method: 'GET', path: `/trpc/${procedure}${input(value)}` });
}

/** A tRPC mutation (POST with a JSON body). */
export function mutate(t: Target, procedure: string, value: unknown, options: Omit<CallOptions, 'method' | 'path' | 'body'> = {}): Promise<CallResult> {
  return call(t, { ...options, method: 'POST', path: `/trpc/${procedure}`, body: JSON.stringify(value) });
}

/** GET /readyz: its status (0 when there was no answer). */
export async function readyz(t: Target, timeoutMs = 1500): Promise<number> {
  const r = await call(t, { method: 'GET', path: '/readyz', timeoutMs });
  return r.status;
}

