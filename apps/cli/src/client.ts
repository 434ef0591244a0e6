/** The API client the commands share, made from the config, and what it holds released on exit. */
import { closeApiClient, createApiClient, type ApiClient, type ApiTransport } from '@asyncscope/client';
import { EventSource } from 'eventsource';
import WebSocket from 'ws';
import type { Config } from './config';
import { Interrupted } from './errors';

export const TRANSPORTS: readonly ApiTransport[] = ['http', 'http-batch', 'websocket'];

/** A client on `transport` (Node 20 has neither a global WebSocket nor EventSource: bring both). */
export function makeClient(config: Config, transport: ApiTransport): ApiClient {
  return createApiClient({ url: config.trpcUrl, token: config.token, transport, WebSocket, EventSource });
}

/** Runs `body` with a client, and closes it (its socket, if any) however `body` ends. */
export async function withClient<T>(config: Config, transport: ApiTransport, body: (client: ApiClient) => Promise<T>): Promise<T> {
  const client = makeClient(config, transport);
  try {
    return await body(client);
  } finally {
    // An abort's calls.cancel is batched for one macrotask (the client's CancelBatcher): let it go out on
    // this socket, or it would open a new one after the close and keep the process alive.
    await new Promise((resolve) => setTimeout(resolve, 0));
    await closeApiClient(client);
  }
}

/**
 * Checks the server and the token before a long run, over plain HTTP: auth.ticket needs no database and
 * answers UNAUTHORIZED for a wrong token, where a WebSocket would only keep reconnecting. A Ctrl+C
 * (`interrupt`) meanwhile ends the command as interrupted, `before` saying what had not started yet.
 */
export async function preflight(config: Config, interrupt: AbortSignal, before: string): Promise<void> {
  try {
    await withClient(config, 'http', async (client) => {
      await client.auth.ticket.mutate(undefined, { signal: AbortSignal.any([interrupt, AbortSignal.timeout(5000)]) });
    });
  } catch (error) {
    if (interrupt.aborted) throw new Interrupted(`interrupted (Ctrl+C) ${before}`);
    throw error;
  }
}

/**
 * A signal that fires on the first Ctrl+C (SIGINT), so a command can stop its calls on the server and say
 * what it stopped; a second Ctrl+C exits at once. `dispose` removes the handler.
 */
export function interruptSignal(): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  const onSigint = (): void => {
    if (controller.signal.aborted) process.exit(130);
    controller.abort(new DOMException('interrupted (Ctrl+C)', 'AbortError'));
  };
  process.on('SIGINT', onSigint);
  return { signal: controller.signal, dispose: () => { process.off('SIGINT', onSigint); } };
}
