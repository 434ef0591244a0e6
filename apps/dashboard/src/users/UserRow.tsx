import type { User } from '@asyncscope/contract';
import { useEffect, useId, useRef, useState } from 'react';
import { Field } from '../ui/Field';
import { useDeleteUser, useUpdateUser } from './api';
import { serverFieldErrors, validateUpdate, type FieldErrors, type UserFormValues } from './form';

export function UserRow({ user }: { user: User }) {
  const [editing, setEditing] = useState(false);
  const [confirming, setConfirming] = useState(false);
  const [values, setValues] = useState<UserFormValues>({ name: user.name, email: user.email });
  const [errors, setErrors] = useState<FieldErrors>({});
  const questionId = useId();
  const deleteRef = useRef<HTMLButtonElement>(null);
  const editRef = useRef<HTMLButtonElement>(null);
  // After "Keep" (or Escape) or "Cancel edit" the focus goes back where it came from, not to <body>.
  const [refocus, setRefocus] = useState<'delete' | 'edit' | null>(null);
  useEffect(() => {
    if (refocus === null) return;
    (refocus === 'delete' ? deleteRef : editRef).current?.focus();
    setRefocus(null);
  }, [refocus]);
  const update = useUpdateUser({
    onSuccess: () => { setEditing(false); },
    onError: (error) => { setErrors(serverFieldErrors(error)); },
  });
  const remove = useDeleteUser({
    onError: (error) => {
      setConfirming(false);
      setErrors(serverFieldErrors(error));
    },
  });
  const keep = (): void => {
    setConfirming(false);
    setRefocus('delete');
  };
  const cancelEdit = (): void => {
    setEditing(false);
    setErrors({});
    setValues({ name: user.name, email: user.email });
    setRefocus('edit');
  };

  if (editing) {
    return (
      <tr className="editing" onKeyDown={(e) => { if (e.key === 'Escape') cancelEdit(); }}>
        <td className="num">{user.id}</td>
        {/* Name and email share the row's width (one column each would leave the name ~100 px). */}
        <td colSpan={3}>
          <div className="edit-fields">
            <Field label={`Name of user ${user.id}`} compact value={values.name} error={errors.name} onChange={(v) => { setValues((x) => ({ ...x, name: v })); setErrors({}); }} testId={`edit-name-${user.id}`} />
            <Field label={`Email of user ${user.id}`} compact value={values.email} error={errors.email} onChange={(v) => { setValues((x) => ({ ...x, email: v })); setErrors({}); }} testId={`edit-email-${user.id}`} />
          </div>
          {errors.form && <span className="field-error small">{errors.form}</span>}
        </td>
        <td className="actions">
          <button
            type="button"
            className="btn btn-primary"
            disabled={update.isPending}
            onClick={() => {
              const result = validateUpdate(user.id, { name: user.name, email: user.email }, values);
              if (!result.ok) setErrors(result.errors);
              else update.mutate(result.data);
            }}
          >
            Save
          </button>
          <button type="button" className="btn" onClick={cancelEdit}>
            Cancel edit
          </button>
        </td>
      </tr>
    );
  }
  if (confirming) {
    // The question and both answers take the whole row, so neither is ever cut off; the focus starts on
    // the safe answer and Escape means Keep: a stray Enter or click-through cannot delete anyone.
    return (
      <tr className="confirming">
        <td className="num">{user.id}</td>
        <td colSpan={4}>
          <div className="confirm" role="group" aria-labelledby={questionId} onKeyDown={(e) => { if (e.key === 'Escape') { e.preventDefault(); keep(); } }}>
            <span className="confirm-question">
              <strong id={questionId}>Delete {user.name}?</strong> <span className="muted small">{user.email} · this cannot be undone</span>
            </span>
            <button type="button" className="btn" onClick={keep} disabled={remove.isPending} autoFocus>
              Keep
            </button>
            <button type="button" className="btn btn-danger-solid" disabled={remove.isPending} onClick={() => { remove.mutate({ id: user.id }); }}>
              {remove.isPending ? 'Deleting…' : 'Delete'}
            </button>
          </div>
        </td>
      </tr>
    );
  }
  return (
    <tr>
      <td className="num">{user.id}</td>
      <td title={user.name}>{user.name}</td>
      <td className="mono" title={user.email}>{user.email}</td>
      <td className="muted small" title={new Date(user.createdAt).toLocaleString('en-GB')}>{new Date(user.createdAt).toLocaleDateString('en-GB')}</td>
      <td className="actions">
        {errors.form && <span className="field-error small">{errors.form} </span>}
        <button ref={editRef} type="button" className="btn" onClick={() => { setEditing(true); setValues({ name: user.name, email: user.email }); }} aria-label={`Edit ${user.name}`}>
          Edit
        </button>
        <button ref={deleteRef} type="button" className="btn" onClick={() => { setConfirming(true); }} aria-label={`Delete ${user.name}`}>
          Delete
        </button>
      </td>
    </tr>
  );
}
