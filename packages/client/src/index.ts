export { ClientClosedError, closeApiClient, createApiClient, MISSING_EVENT_SOURCE, transportOf, type ApiClient, type ApiClientOptions, type ApiTransport, type CallContext } from './links';
export { callWithPolicy, isRetryableCallError, type CallPolicy } from './policy';
export { ConnectionLostError, reconnectDelayMs, webSocketUrl, type ConnectionState, type WebSocketConstructor } from './ws';
export { CancelBatcher, cancelByIdLink } from './cancel-by-id';
export { apiErrorCode, isApiError, type ApiError, type ApiErrorCode } from './errors';
export { fetchMany, type FetchCall, type FetchManyOptions, type FetchOutcome, type FetchProgress } from './fetch-many';
export { TimeoutError, isAbortError } from '@asyncscope/concurrency';
export type { AppRouter, RouterInputs, RouterOutputs } from '@asyncscope/api';
