/** For tests: a users.byId stand-in for the lab's runner. */
import type { CallContext } from '@asyncscope/client';
import { TRPCClientError } from '@trpc/client';
import type { FetchUser } from './runner';

export const withCode = (code: string) => Object.assign(new TRPCClientError<never>(`${code} (test)`), { data: { code } });

export interface Script {
  ms?: number;
  fail?: string;
}

/** A users.byId stand-in: answers after `ms`, or fails with a tRPC code; honours the signal like fetch does. */
export function fakeFetch(script: (callId: string) => Script, seen: CallContext[] = []): FetchUser {
  return (id, { signal, context }) => {
    seen.push(context);
    const { ms = 20, fail } = script(context.callId ?? '');
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        signal.removeEventListener('abort', onAbort);
        if (fail) reject(withCode(fail));
        else resolve({ id });
      }, ms);
      const onAbort = (): void => {
        clearTimeout(timer);
        reject(new TRPCClientError('The operation was aborted', { cause: new DOMException('aborted', 'AbortError') }));
      };
      signal.addEventListener('abort', onAbort, { once: true });
    });
  };
}

