export { createApiClient, transportOf, type ApiClient, type ApiClientOptions, type CallContext } from './links';
export { callWithPolicy, isRetryableCallError, type CallPolicy } from './policy';
