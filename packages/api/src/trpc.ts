import { initTRPC, TRPCError } from '@trpc/server';
import { z, ZodError } from 'zod';
import type { Context } from './context';

/** Messages for errors tRPC raises with no message of its own but the code. */
const FALLBACK_MESSAGES: Partial<Record<string, string>> = {
  PAYLOAD_TOO_LARGE: 'The request body is larger than the server accepts.',
  PARSE_ERROR: 'The request body is not valid JSON.',
  UNAUTHORIZED: 'Missing or wrong API token: send "Authorization: Bearer <token>".',
};

function describeZodError(error: ZodError): string {
  return error.issues
    .map((issue) => (issue.path.length > 0 ? `${issue.path.join('.')}: ${issue.message}` : issue.message))
    .join('; ');
}

/**
 * Raised when input fails its schema. tRPC wraps it in a BAD_REQUEST TRPCError whose message is this
 * error's: a sentence a person can read (a ZodError's own message is a JSON dump of its issues).
 */
export class InputValidationError extends Error {
  override readonly name = 'InputValidationError';
  constructor(readonly zodError: ZodError) {
    super(`Invalid input: ${describeZodError(zodError)}`);
  }
}

/**
 * Adapts a zod schema for `.input()`: same inferred input/output types for clients, readable messages
 * for every caller (HTTP and createCaller alike).
 */
export function validInput<S extends z.ZodType>(schema: S) {
  return {
    _input: undefined as unknown as z.input<S>,
    _output: undefined as unknown as z.output<S>,
    parse(value: unknown): z.output<S> {
      const result = schema.safeParse(value);
      if (result.success) return result.data;
      throw new InputValidationError(result.error);
    },
  };
}

const t = initTRPC.context<Context>().create({
  // Never put stack traces in responses, whatever NODE_ENV says.
  isDev: false,
  errorFormatter({ shape, error }) {
    const zodError = error.cause instanceof InputValidationError ? error.cause.zodError : null;
    let message = shape.message;
    if (error.cause instanceof SyntaxError) message = `The request is not valid JSON: ${error.cause.message}.`;
    else if (error.code === 'INTERNAL_SERVER_ERROR') message = 'Internal server error; the server log has the details under the x-request-id of this response.';
    else if (message === error.code) message = FALLBACK_MESSAGES[error.code] ?? message;
    const flat = zodError ? z.flattenError(zodError) : null;
    return {
      ...shape,
      message,
      data: {
        ...shape.data,
        fieldErrors: flat?.fieldErrors ?? null,
        formErrors: flat?.formErrors ?? null,
      },
    };
  },
});

export const createTRPCRouter = t.router;
export const createCallerFactory = t.createCallerFactory;
export const publicProcedure = t.procedure;

/** Every API procedure: the bearer token is checked before the input is even parsed. */
export const protectedProcedure = t.procedure.use(({ ctx, next }) => {
  if (!ctx.authorized) throw new TRPCError({ code: 'UNAUTHORIZED', message: FALLBACK_MESSAGES.UNAUTHORIZED ?? 'UNAUTHORIZED' });
  if (!ctx.isDatabaseReady()) {
    throw new TRPCError({ code: 'SERVICE_UNAVAILABLE', message: 'The database is not reachable yet; the server keeps retrying. Try again shortly.' });
  }
  return next();
});
