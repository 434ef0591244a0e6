import { useEffect, useState } from 'react';
import { useLifetimeSignal } from '../lib/lifetime';
import { usePageSocketDown } from '../transport/use-page-socket';
import { useSeedUsers, useUserList } from './api';
import { describeLoadError } from './form';
import { UserRow } from './UserRow';

const PAGE_SIZES = [10, 25, 50];

export function UserList() {
  const seedUsers = useSeedUsers();
  const lifetime = useLifetimeSignal();
  const [limit, setLimit] = useState(10);
  const [offset, setOffset] = useState(0);
  const [seeding, setSeeding] = useState<string | null>(null);
  const list = useUserList(limit, offset);
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
    const signal = lifetime();
    setSeeding('Adding 50 users…');
    try {
      const failed = await seedUsers(signal);
      setSeeding(failed > 0 ? `${failed} of 50 failed` : null);
    } catch (error) {
      // Aborted: the list went away, and nobody is left to tell.
      if (!signal.aborted) setSeeding(`Could not add users: ${error instanceof Error ? error.message : String(error)}`);
    }
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
