/**
 * Sends a WebSocket call at the end of the tick that made it, not a timer later.
 *
 * tRPC's wsClient (11.22.1, `batchSend`) waits `setTimeout(0)` before it writes the calls queued so far
 * as one frame. On Node a zero timer fires after at least 1 ms, so every call over the socket waited
 * that long before it left: `users.byId` one call after another took 1.8–2.1 ms per call against
 * 0.6–0.8 ms when sent at once (apps/bench, loopback). In a browser the timer is a task of its own per
 * call, queued behind whatever the page does next (a frame's rendering). The same floor was found and
 * removed in cloudflare/capnweb#219 / #220; tRPC has no issue for it (upstream `main` still sleeps).
 *
 * This bypasses wsClient's private members (`batchSend`, `requestManager`, `activeConnection`, `send`,
 * `inactivityTimeout`) on the one client we create, instead of patching tRPC's build: the published
 * @asyncscope/client installs tRPC from npm, where a pnpm patch would not apply. While the socket is open,
 * a call is registered and one microtask per tick writes every call queued by then, so the calls of one
 * tick still share a frame (a burst of 100 calls in flight went out 9.7 calls per frame, against 14.2
 * with the timer), and no timer or async function is made per call. While it is not open, tRPC's own path
 * (open, then send) runs as it is.
 *
 * Fenced by ws-flush.test.ts: the behaviour, and a check that fails on any other @trpc/client version.
 * If the internals are not there, `sendAtEndOfTick` changes nothing and says so by returning false.
 */
import { TRPCClientError } from '@trpc/client';

/** The @trpc/client version whose internals this was written against and checked on. */
export const TRPC_CLIENT_VERIFIED = '11.22.1';

interface QueuedRequest {
  message: { id: number | string | null };
  callbacks: { error: (error: unknown) => void };
}

/** The private members of tRPC's WsClient that this uses (11.22.1). */
interface WsClientInternals {
  batchSend: (message: unknown, callbacks: unknown) => () => void;
  send: (messages: unknown[]) => void;
  activeConnection: { isOpen: () => boolean };
  inactivityTimeout: { reset: () => void };
  requestManager: {
    register: (message: unknown, callbacks: unknown) => () => void;
    hasOutgoingRequests: () => boolean;
    flush: () => QueuedRequest[];
    delete: (id: number | string | null) => void;
  };
}

function hasInternals(client: object): client is WsClientInternals {
  const c = client as Partial<Record<keyof WsClientInternals, unknown>>;
  const manager = c.requestManager as Partial<Record<keyof WsClientInternals['requestManager'], unknown>> | undefined;
  const connection = c.activeConnection as { isOpen?: unknown } | undefined;
  const inactivity = c.inactivityTimeout as { reset?: unknown } | undefined;
  return (
    typeof c.batchSend === 'function' &&
    typeof c.send === 'function' &&
    typeof connection?.isOpen === 'function' &&
    typeof inactivity?.reset === 'function' &&
    typeof manager?.register === 'function' &&
    typeof manager.hasOutgoingRequests === 'function' &&
    typeof manager.flush === 'function' &&
    typeof manager.delete === 'function'
  );
}

/**
 * Makes `client` (a tRPC `createWSClient` result) write each tick's calls at the end of that tick.
 * Returns false, changing nothing, when the client does not have the internals this relies on.
 */
export function sendAtEndOfTick(client: object): boolean {
  if (!hasInternals(client)) return false;
  const batchSend = client.batchSend.bind(client);
  let scheduled = false;
  const flush = (): void => {
    scheduled = false;
    if (!client.requestManager.hasOutgoingRequests()) return;
    // In flight from here: if the socket is not open any more (only our own close() can do that within a
    // tick, and it fails the calls still queued), tRPC fails them when it closes or resends them when it
    // reconnects, as it does with every call in flight.
    const requests = client.requestManager.flush();
    if (!client.activeConnection.isOpen()) return;
    try {
      client.send(requests.map((request) => request.message));
    } catch (error) {
      // What tRPC does when its own send fails, for every call of the frame (it fails only the first).
      for (const request of requests) {
        client.requestManager.delete(request.message.id);
        request.callbacks.error(TRPCClientError.from(error instanceof Error ? error : new Error(String(error))));
      }
    }
  };
  const batchSendNow: typeof client.batchSend = (message, callbacks) => {
    // Not open (yet, or any more): tRPC's path, which opens the socket and sends once it is.
    if (!client.activeConnection.isOpen()) return batchSend(message, callbacks);
    client.inactivityTimeout.reset();
    const unregister = client.requestManager.register(message, callbacks);
    if (!scheduled) {
      scheduled = true;
      queueMicrotask(flush);
    }
    return unregister;
  };
  // Made as a local, then stored: a function literal assigned straight to a property is pretenured by V8.
  client.batchSend = batchSendNow;
  return true;
}
