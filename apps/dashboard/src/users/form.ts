/**
 * Form validation with the server's own schemas (@asyncscope/contract), and the server's errors mapped
 * onto the same fields: what the browser refuses and what the server refuses read the same.
 */
import { createUserInput, updateUserInput } from '@asyncscope/contract';
import { apiErrorCode, isApiError } from '@asyncscope/client';
import type { z } from 'zod';

export type UserField = 'name' | 'email';
export type FieldErrors = Partial<Record<UserField | 'form', string>>;

export interface UserFormValues {
  name: string;
  email: string;
}

function firstIssues(error: z.ZodError): FieldErrors {
  const errors: FieldErrors = {};
  for (const issue of error.issues) {
    const field = issue.path[0];
    const key: UserField | 'form' = field === 'name' || field === 'email' ? field : 'form';
    errors[key] ??= issue.message;
  }
  return errors;
}

export function validateCreate(values: UserFormValues): { ok: true; data: z.output<typeof createUserInput> } | { ok: false; errors: FieldErrors } {
  const result = createUserInput.safeParse(values);
  return result.success ? { ok: true, data: result.data } : { ok: false, errors: firstIssues(result.error) };
}

/** An edit sends only what changed; nothing changed is the schema's own error ("give a name or an email to change"). */
export function validateUpdate(id: number, original: UserFormValues, values: UserFormValues):
  | { ok: true; data: z.output<typeof updateUserInput> }
  | { ok: false; errors: FieldErrors } {
  const input: { id: number; name?: string; email?: string } = { id };
  if (values.name !== original.name) input.name = values.name;
  if (values.email !== original.email) input.email = values.email;
  const result = updateUserInput.safeParse(input);
  return result.success ? { ok: true, data: result.data } : { ok: false, errors: firstIssues(result.error) };
}

/**
 * The server's refusal, on the field it concerns: BAD_REQUEST carries zod's fieldErrors, CONFLICT is
 * about the email (unique in any letter case), NOT_FOUND and the rest go to the form.
 */
export function serverFieldErrors(error: unknown): FieldErrors {
  if (!isApiError(error)) return { form: error instanceof Error ? error.message : String(error) };
  const data = error.data;
  const code = data?.code;
  if (code === 'BAD_REQUEST' && data?.fieldErrors) {
    const errors: FieldErrors = {};
    for (const [field, messages] of Object.entries<string[] | undefined>(data.fieldErrors)) {
      const message = messages?.[0];
      if (!message) continue;
      if (field === 'name' || field === 'email') errors[field] = message;
      else errors.form ??= message;
    }
    const formError = data.formErrors?.[0];
    if (formError) errors.form ??= formError;
    if (Object.keys(errors).length > 0) return errors;
  }
  if (code === 'CONFLICT' && /email/i.test(error.message) && !/idempotency key/i.test(error.message)) return { email: error.message };
  if (code === undefined) return { form: `No answer from the server: ${error.message}` };
  return { form: `${code}: ${error.message}` };
}

/**
 * Why a list could not be loaded, in words a person can act on. A network failure has no tRPC code and
 * only the browser's own text ("Failed to fetch"), which says nothing about what happened or what comes next.
 */
export function describeLoadError(error: unknown, what: string): string {
  const code = apiErrorCode(error);
  if (code === undefined) return `The server is unreachable (stopped or restarting?), so the ${what} cannot be loaded — this retries by itself and the ${what} come back when the server does.`;
  if (code === 'SERVICE_UNAVAILABLE') return `The server is up but its database is not reachable, so the ${what} cannot be loaded — the server keeps retrying, and so does this page.`;
  if (code === 'UNAUTHORIZED') return `The server refused the token, so the ${what} cannot be loaded.`;
  return `Could not load the ${what}: ${code}: ${error instanceof Error ? error.message : String(error)}`;
}
