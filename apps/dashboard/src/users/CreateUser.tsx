import type { User } from '@asyncscope/contract';
import { useRef, useState } from 'react';
import { Field } from '../ui/Field';
import { useCreateUser } from './api';
import { serverFieldErrors, validateCreate, type FieldErrors, type UserFormValues } from './form';

function newKey(): string {
  return `create:${crypto.randomUUID()}`;
}

export function CreateUser() {
  const [values, setValues] = useState<UserFormValues>({ name: '', email: '' });
  const [errors, setErrors] = useState<FieldErrors>({});
  const [created, setCreated] = useState<User | null>(null);
  // One idempotency key per intended user: a retry of the same submission is not a second user.
  const keyRef = useRef(newKey());
  const create = useCreateUser({
    onSuccess: (user) => {
      setCreated(user);
      setValues({ name: '', email: '' });
      keyRef.current = newKey();
    },
    onError: (error) => { setErrors(serverFieldErrors(error)); },
  });

  const change = (field: keyof UserFormValues, value: string): void => {
    setValues((v) => ({ ...v, [field]: value }));
    setErrors((e) => ({ ...e, [field]: undefined, form: undefined }));
    setCreated(null);
  };

  return (
    <form
      className="card"
      aria-labelledby="create-title"
      noValidate
      onSubmit={(e) => {
        e.preventDefault();
        const result = validateCreate(values);
        if (!result.ok) {
          setErrors(result.errors);
          return;
        }
        setErrors({});
        create.mutate({ ...result.data, idempotencyKey: keyRef.current });
      }}
    >
      <h2 id="create-title">Create a user</h2>
      <p className="muted small">Checked with the server’s own zod schema before sending; what the server refuses lands on the same field.</p>
      <Field label="Name" value={values.name} error={errors.name} onChange={(v) => { change('name', v); }} autoComplete="off" testId="create-name" />
      <Field label="Email" value={values.email} error={errors.email} onChange={(v) => { change('email', v); }} autoComplete="off" testId="create-email" />
      <div className="form-foot">
        <button type="submit" className="btn btn-primary" disabled={create.isPending} data-testid="create-submit">
          {create.isPending ? 'Creating…' : 'Create'}
        </button>
        <span role="status" aria-live="polite" className={errors.form ? 'field-error' : 'ok-text'} data-testid="create-status">
          {errors.form ?? (created ? `Created #${created.id} ${created.email}` : '')}
        </span>
      </div>
    </form>
  );
}
