import type { AppRouter } from '@asyncscope/api';
import { TRPCClientError } from '@trpc/client';

/** The server's error as this client sees it: `data.code`, `data.httpStatus`, and `data.fieldErrors` for bad input. */
export type ApiError = TRPCClientError<AppRouter>;
/** A tRPC error code the server answers with ('BAD_REQUEST', 'NOT_FOUND', 'SERVICE_UNAVAILABLE'...). */
export type ApiErrorCode = NonNullable<ApiError['data']>['code'];

/**
 * Whether a call failed with an error from (or on the way to) the server, typed with the server's error shape.
 * `data` is undefined when nothing came back (a network failure, an abort). The name check also accepts an
 * error from another copy of @trpc/client (a program that installs its own), where instanceof would not.
 */
export function isApiError(error: unknown): error is ApiError {
  return error instanceof TRPCClientError || (error instanceof Error && error.name === 'TRPCClientError' && 'shape' in error);
}

/** The server's code for a failed call, or undefined when it is not an answer from the server. */
export function apiErrorCode(error: unknown): ApiErrorCode | undefined {
  return isApiError(error) ? error.data?.code : undefined;
}
