// Its own module so the links (http, ws, cancel by id) can share it without importing one another.
/** Per-call options, passed as tRPC's `context` (a type, not an interface, so it fits tRPC's record type). */
export type CallContext = {
  /**
   * Names the call on the server (its events, logs, `calls.cancel`): x-request-id per call over HTTP, its
   * place in x-call-ids in a batch, `params.callId` over the WebSocket. Given one if none.
   */
  callId?: string;
  /** Epoch ms by which the call must be done; the server gets the remaining budget (x-deadline-ms, or `params.deadlineMs`). */
  deadlineAt?: number;
  /**
   * 'single': one HTTP request for this call, so aborting it reaches the server (its signal fires).
   * 'batch': shares a request with other calls; an abort only drops the answer, the server keeps working.
   * Default: 'single' for calls given a signal, 'batch' for the rest. Only for the 'http' transport.
   */
  transport?: 'single' | 'batch';
};
