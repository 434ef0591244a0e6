import type { User } from '@asyncscope/contract';
import { keepPreviousData, useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useEffect, useId, useRef, useState, useSyncExternalStore } from 'react';
import { fmtMs } from '../lab/hops';
import { useServices } from '../services';
import { usePageSocketDown } from '../transport/use-page-socket';
import { useTRPC } from '../trpc';
import { describeLoadError, serverFieldErrors, validateCreate, validateUpdate, type FieldErrors, type UserFormValues } from './form';
import { streamRate } from './stream-store';

export function UsersPanel() {
  return (
    <div className="users">
      <div className="users-left">
        <CreateUser />
        <StreamAll />
      </div>
      <UserList />
    </div>
  );
}

function newKey(): string {
  return `create:${crypto.randomUUID()}`;
}

function CreateUser() {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const [values, setValues] = useState<UserFormValues>({ name: '', email: '' });
  const [errors, setErrors] = useState<FieldErrors>({});
  const [created, setCreated] = useState<User | null>(null);
  // One idempotency key per intended user: a retry of the same submission is not a second user.
  const keyRef = useRef(newKey());
  const create = useMutation(
    trpc.users.create.mutationOptions({
      onSuccess: (user) => {
        setCreated(user);
        setValues({ name: '', email: '' });
        keyRef.current = newKey();
        void queryClient.invalidateQueries({ queryKey: trpc.users.list.queryKey() });
      },
      onError: (error) => { setErrors(serverFieldErrors(error)); },
    }),
  );

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
      <TextField label="Name" value={values.name} error={errors.name} onChange={(v) => { change('name', v); }} autoComplete="off" testId="create-name" />
      <TextField label="Email" value={values.email} error={errors.email} onChange={(v) => { change('email', v); }} autoComplete="off" testId="create-email" />
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

function TextField(props: { label: string; value: string; error: string | undefined; onChange: (v: string) => void; autoComplete?: string; testId: string; compact?: boolean }) {
  const id = useId();
  return (
    <div className={`field ${props.compact ? 'field-compact' : ''} ${props.error ? 'field-invalid' : ''}`}>
      <label htmlFor={id} className={props.compact ? 'sr-only' : undefined}>{props.label}</label>
      <input
        id={id}
        value={props.value}
        onChange={(e) => { props.onChange(e.target.value); }}
        aria-invalid={props.error !== undefined}
        aria-describedby={props.error ? `${id}-err` : undefined}
        autoComplete={props.autoComplete}
        data-testid={props.testId}
      />
      {props.error ? (
        <span id={`${id}-err`} className="field-error" data-testid={`${props.testId}-error`}>
          {props.error}
        </span>
      ) : (
        !props.compact && <span className="field-error" aria-hidden="true">{'\u00a0'}</span> // keeps the form from jumping
      )}
    </div>
  );
}

const PAGE_SIZES = [10, 25, 50];

function UserList() {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const { api } = useServices();
  const [limit, setLimit] = useState(10);
  const [offset, setOffset] = useState(0);
  const [seeding, setSeeding] = useState<string | null>(null);
  // Refreshed every few seconds: other tabs and programs change the table too.
  const list = useQuery(trpc.users.list.queryOptions({ limit, offset }, { placeholderData: keepPreviousData, refetchInterval: 5000 }));
  // While the page's socket reconnects, a refetch waits for it rather than failing: say why nothing changes.
  const offline = usePageSocketDown();
  const total = list.data?.total ?? 0;
  const pages = Math.max(1, Math.ceil(total / limit));
  const page = Math.floor(offset / limit) + 1;

  // A delete can leave us past the last page.
  useEffect(() => {
    if (list.data && offset > 0 && offset >= total) setOffset(Math.max(0, (pages - 1) * limit));
  }, [list.data, offset, total, pages, limit]);

  async function seed(): Promise<void> {
    setSeeding('Adding 50 users…');
    const stamp = Date.now().toString(36);
    let failed = 0;
    for (let i = 0; i < 50; i += 10) {
      const batch = Array.from({ length: 10 }, (_, j) => i + j + 1);
      const results = await Promise.allSettled(
        batch.map((n) => api.users.create.mutate({ name: `Demo user ${stamp}-${n}`, email: `demo-${stamp}-${n}@example.com`, idempotencyKey: `seed:${stamp}:${n}` })),
      );
      failed += results.filter((r) => r.status === 'rejected').length;
    }
    setSeeding(failed > 0 ? `${failed} of 50 failed` : null);
    void queryClient.invalidateQueries({ queryKey: trpc.users.list.queryKey() });
  }

  return (
    <div className="card users-list" aria-labelledby="list-title">
      <div className="list-head">
        <h2 id="list-title">Users</h2>
        <span className="muted num" data-testid="users-total">{list.data ? `${total.toLocaleString('en-US')} in total` : ''}</span>
        <div className="spacer" />
        <button type="button" className="btn btn-ghost" onClick={() => { void seed(); }} disabled={seeding !== null && seeding.startsWith('Adding')}>
          {seeding ?? 'Add 50 demo users'}
        </button>
      </div>
      {(list.isError || offline) && (
        <p className="field-error" role="alert" data-testid="users-error">
          {describeLoadError(list.isError ? list.error : new Error('The page’s WebSocket is reconnecting.'), 'users')}
        </p>
      )}
      {/* Below its natural width the table scrolls sideways instead of squeezing its columns over each other. */}
      <div className="table-scroll">
      <table className="user-table">
        <thead>
          <tr>
            <th className="num">id</th>
            <th>name</th>
            <th>email</th>
            <th>created</th>
            <th>
              <span className="sr-only">actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {(list.data?.items ?? []).map((user) => (
            <UserRow key={user.id} user={user} />
          ))}
          {list.data && list.data.items.length === 0 && (
            <tr>
              <td colSpan={5} className="muted">
                No users yet.
              </td>
            </tr>
          )}
        </tbody>
      </table>
      </div>
      <nav className="pager" aria-label="Pages">
        <button type="button" className="btn" disabled={offset === 0} onClick={() => { setOffset(0); }}>
          « First
        </button>
        <button type="button" className="btn" disabled={offset === 0} onClick={() => { setOffset(Math.max(0, offset - limit)); }}>
          ‹ Previous
        </button>
        <span className="num" data-testid="page">
          page {page.toLocaleString('en-US')} of {pages.toLocaleString('en-US')}
        </span>
        <button type="button" className="btn" disabled={page >= pages} onClick={() => { setOffset(offset + limit); }}>
          Next ›
        </button>
        <button type="button" className="btn" disabled={page >= pages} onClick={() => { setOffset((pages - 1) * limit); }}>
          Last »
        </button>
        <label className="page-size">
          per page{' '}
          <select
            value={limit}
            onChange={(e) => {
              setLimit(Number(e.target.value));
              setOffset(0);
            }}
          >
            {PAGE_SIZES.map((n) => (
              <option key={n} value={n}>
                {n}
              </option>
            ))}
          </select>
        </label>
      </nav>
    </div>
  );
}

function UserRow({ user }: { user: User }) {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
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
  const invalidate = () => queryClient.invalidateQueries({ queryKey: trpc.users.list.queryKey() });
  const update = useMutation(
    trpc.users.update.mutationOptions({
      onSuccess: () => {
        setEditing(false);
        void invalidate();
      },
      onError: (error) => { setErrors(serverFieldErrors(error)); },
    }),
  );
  const remove = useMutation(
    trpc.users.delete.mutationOptions({
      onSuccess: () => { void invalidate(); },
      onError: (error) => {
        setConfirming(false);
        setErrors(serverFieldErrors(error));
      },
    }),
  );
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
            <TextField label={`Name of user ${user.id}`} compact value={values.name} error={errors.name} onChange={(v) => { setValues((x) => ({ ...x, name: v })); setErrors({}); }} testId={`edit-name-${user.id}`} />
            <TextField label={`Email of user ${user.id}`} compact value={values.email} error={errors.email} onChange={(v) => { setValues((x) => ({ ...x, email: v })); setErrors({}); }} testId={`edit-email-${user.id}`} />
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

const STREAM_PAGE_SIZES = [10, 100, 500, 1000];

function StreamAll() {
  const { userStream } = useServices();
  const s = useSyncExternalStore(userStream.subscribe, userStream.getSnapshot);
  const [pageSize, setPageSize] = useState(100);
  const id = useId();
  const running = s.status === 'connecting' || s.status === 'streaming';
  const pct = s.total ? Math.min(100, (s.received / s.total) * 100) : 0;
  const now = Date.now();

  // Keep the rate ticking while the stream runs even between pages.
  const [, setTick] = useState(0);
  useEffect(() => {
    if (!running) return;
    const t = setInterval(() => { setTick((n) => n + 1); }, 250);
    return () => { clearInterval(t); };
  }, [running]);

  const statusText: Record<typeof s.status, string> = {
    idle: 'Not started',
    connecting: 'Connecting…',
    streaming: s.reconnecting ? 'Reconnecting (resumes after the last id)…' : 'Streaming',
    done: 'Done: every user received',
    cancelled: 'Cancelled: unsubscribed, the stream is closed',
    error: `Failed: ${s.error ?? ''}`,
  };

  return (
    <section className="card" aria-labelledby="stream-title">
      <h2 id="stream-title">Stream all users</h2>
      <p className="muted small">One users.stream subscription (SSE), page by page by id. Cancel unsubscribes: the server’s signal fires, the page query in flight is cancelled and the generator ends.</p>
      <div className="stream-controls">
        <label htmlFor={id}>page size</label>
        <select id={id} value={pageSize} onChange={(e) => { setPageSize(Number(e.target.value)); }} disabled={running} data-testid="stream-page-size">
          {STREAM_PAGE_SIZES.map((n) => (
            <option key={n} value={n}>
              {n}
            </option>
          ))}
        </select>
        <button type="button" className="btn btn-primary" disabled={running} onClick={() => { userStream.start(pageSize); }} data-testid="stream-start">
          Stream all
        </button>
        <button type="button" className="btn btn-danger" disabled={!running} onClick={() => { userStream.cancel(); }} data-testid="stream-cancel">
          Cancel stream
        </button>
      </div>
      <div
        className={`progress progress-${s.status}`}
        role="progressbar"
        aria-label="Users received"
        aria-valuemin={0}
        aria-valuemax={s.total ?? 0}
        aria-valuenow={s.received}
        data-testid="stream-progress"
      >
        <span style={{ width: `${pct}%` }} />
      </div>
      <div className="stream-facts">
        <span className="num" data-testid="stream-received">
          {s.received.toLocaleString('en-US')} / {s.total === null ? '–' : s.total.toLocaleString('en-US')} users
        </span>
        <span className="num">{s.pages.toLocaleString('en-US')} pages</span>
        <span className="num">{Math.round(streamRate(s, now)).toLocaleString('en-US')} users/s</span>
        {s.startedAt !== null && <span className="num">{fmtMs((s.endedAt ?? now) - s.startedAt)}</span>}
      </div>
      <p className={`stream-status status-${s.status}`} role="status" aria-live="polite" data-testid="stream-status">
        {statusText[s.status]}
      </p>
      <p className="stream-server small" data-testid="stream-server">
        Server:{' '}
        {s.server === null
          ? s.status === 'idle'
            ? '—'
            : 'waiting for the stream’s events…'
          : s.server.code === undefined
            ? 'generator running'
            : `generator ended: ${s.server.code}${s.server.ms !== undefined ? ` after ${fmtMs(s.server.ms)}` : ''}`}
      </p>
    </section>
  );
}
