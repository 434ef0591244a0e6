/** The acknowledged-write check: every write the server said OK to must be in the database afterwards. */
import type { SteadyLoad } from './load';
import { withSql } from './pg';

export interface WriteCheck {
  acknowledged: number;
  /** Acknowledged users.create whose row is missing, or has another id than the one returned. */
  lostUsers: number;
  /** Acknowledged lab.slowWrite labels without exactly their 2 rows. */
  lostOrDuplicatedLabels: number;
  unacknowledged: number;
}

export async function checkWrites(url: string, loads: readonly SteadyLoad[]): Promise<WriteCheck> {
  const users = new Map<string, number>();
  const labels: string[] = [];
  let unacknowledged = 0;
  for (const load of loads) {
    for (const [key, id] of load.createdUsers) users.set(`${key}@chaos.test`, id);
    labels.push(...load.writtenLabels);
    unacknowledged += load.unacknowledgedWrites;
  }
  return withSql(url, async (sql) => {
    const emails = [...users.keys()];
    const rows = emails.length ? await sql<{ email: string; id: number }[]>`select email, id from users where email = any(${emails})` : [];
    const found = new Map(rows.map((r) => [r.email, r.id]));
    const lostUsers = emails.filter((e) => found.get(e) !== users.get(e)).length;
    const counts = labels.length
      ? await sql<{ label: string; n: number }[]>`select label, count(*)::int as n from lab_writes where label = any(${labels}) group by label`
      : [];
    const byLabel = new Map(counts.map((r) => [r.label, r.n]));
    const lostOrDuplicatedLabels = labels.filter((l) => byLabel.get(l) !== 2).length;
    return { acknowledged: users.size + labels.length, lostUsers, lostOrDuplicatedLabels, unacknowledged };
  });
}
