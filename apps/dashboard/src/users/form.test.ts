import { TRPCClientError } from '@trpc/client';
import { describe, expect, it } from 'vitest';
import { describeLoadError, serverFieldErrors, validateCreate, validateUpdate } from './form';

const serverError = (message: string, data: Record<string, unknown>) => Object.assign(new TRPCClientError<never>(message), { data });

describe('user form validation (the contract’s zod schemas)', () => {
  it('puts each problem on its field, with the server’s wording', () => {
    expect(validateCreate({ name: ' ', email: 'nope' })).toEqual({
      ok: false,
      errors: { name: 'name must not be empty', email: 'email must be a valid address, like ada@example.com' },
    });
  });

  it('normalises like the server does', () => {
    expect(validateCreate({ name: '  Ada ', email: ' Ada@Example.COM ' })).toEqual({ ok: true, data: { name: 'Ada', email: 'ada@example.com' } });
  });

  it('an edit sends only what changed, and must change something', () => {
    const original = { name: 'Ada', email: 'ada@example.com' };
    expect(validateUpdate(3, original, { ...original, name: 'Augusta' })).toEqual({ ok: true, data: { id: 3, name: 'Augusta' } });
    expect(validateUpdate(3, original, original)).toEqual({ ok: false, errors: { form: 'give a name or an email to change' } });
    expect(validateUpdate(3, original, { ...original, email: 'x' })).toMatchObject({ ok: false, errors: { email: expect.stringContaining('valid address') as string } });
  });
});

describe('serverFieldErrors', () => {
  it('BAD_REQUEST fieldErrors land on their fields', () => {
    const error = serverError('Invalid input: email: …', { code: 'BAD_REQUEST', fieldErrors: { email: ['email must be a valid address, like ada@example.com'] }, formErrors: [] });
    expect(serverFieldErrors(error)).toEqual({ email: 'email must be a valid address, like ada@example.com' });
  });

  it('CONFLICT on the email field; a reused idempotency key and other codes on the form', () => {
    expect(serverFieldErrors(serverError('A user with the email ada@example.com already exists.', { code: 'CONFLICT' }))).toEqual({
      email: 'A user with the email ada@example.com already exists.',
    });
    expect(serverFieldErrors(serverError('The idempotency key k was already used for a different request.', { code: 'CONFLICT' })).form).toMatch(/^CONFLICT/);
    expect(serverFieldErrors(serverError('No user with id 7.', { code: 'NOT_FOUND' }))).toEqual({ form: 'NOT_FOUND: No user with id 7.' });
    expect(serverFieldErrors(new TRPCClientError('Failed to fetch')).form).toMatch(/No answer from the server/);
  });
});

describe('describeLoadError', () => {
  it('says the server is unreachable instead of the browser’s bare "Failed to fetch"', () => {
    const text = describeLoadError(new TRPCClientError('Failed to fetch', { cause: new TypeError('Failed to fetch') }), 'users');
    expect(text).not.toContain('Failed to fetch');
    expect(text).toMatch(/server is unreachable/);
    expect(text).toMatch(/retries by itself/);
  });

  it('tells a database outage and a refused token apart from other errors', () => {
    expect(describeLoadError(serverError('The database is not reachable yet', { code: 'SERVICE_UNAVAILABLE' }), 'users')).toMatch(/database is not reachable/);
    expect(describeLoadError(serverError('bad token', { code: 'UNAUTHORIZED' }), 'users')).toMatch(/refused the token/);
    expect(describeLoadError(serverError('boom', { code: 'INTERNAL_SERVER_ERROR' }), 'users')).toBe('Could not load the users: INTERNAL_SERVER_ERROR: boom');
  });
});
