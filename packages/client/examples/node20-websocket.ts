// The README's Node 20 WebSocket snippet, verbatim (readme.test.ts checks): typechecked and linted here.
/* eslint-disable no-restricted-properties -- a program reads its own environment */
import { closeApiClient, createApiClient, isRetryableCallError } from '@asyncscope/client';
import WebSocket from 'ws';

const api = createApiClient({
  url: 'http://127.0.0.1:3000/trpc',
  token: process.env.TOKEN ?? '',
  transport: 'websocket',
  WebSocket,
  onConnectionState: (s) => { console.log(s.state, s.error?.message); },
});
const controller = new AbortController();
const slow = api.lab.sleep.query({ ms: 5000 }, { signal: controller.signal, context: { callId: 'demo-1', deadlineAt: Date.now() + 3000 } });
controller.abort(); // rejects at once; calls.cancel stops the statement on the server
await slow.catch((error: unknown) => { console.log('retryable?', isRetryableCallError(error)); });
await closeApiClient(api);
