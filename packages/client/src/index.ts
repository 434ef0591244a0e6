export { ClientClosedError, closeApiClient, createApiClient, transportOf, type ApiClient, type ApiClientOptions, type ApiTransport, type CallContext } from './links';
export { callWithPolicy, isRetryableCallError, type CallPolicy } from './policy';
export { ConnectionLostError, reconnectDelayMs, webSocketUrl, type ConnectionState, type WebSocketConstructor } from './ws';
export { CancelBatcher, cancelByIdLink } from './cancel-by-id';
