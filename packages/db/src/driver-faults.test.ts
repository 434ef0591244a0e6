/**
 * The postgres.js 3.4.9 behaviours our patch (patches/postgres@3.4.9.patch) changes when a connection
 * dies, each reproduced on a real PostgreSQL. Without the patch these crash the test process
 * (an uncaught TypeError from a setImmediate callback) or leave a query waiting forever.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { connect, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './testing';
import { startTcpProxy, type TcpProxy } from './tcp-proxy';

let t: TestDatabase;
let observer: postgres.Sql;
beforeAll(async () => {
  t = await createTestDatabase(inject('pgAdminUrl'), inject('pgTemplate'), { applicationName: 'driver-faults-pool', poolMax: 1 });
  observer = postgres(t.url, { max: 1, onnotice: () => undefined, connection: { application_name: 'driver-faults-observer' } });
});
afterAll(async () => {
  await observer.end();
  await t[Symbol.asyncDispose]();
});

/** Settles with the promise, or fails the test if it is still pending after `ms` (a wedge, not a slow answer). */
async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<never>((_, reject) => {
    timer = setTimeout(() => { reject(new Error(`${what}: still pending after ${ms} ms`)); }, ms);
  });
  try {
    return await Promise.race([promise, hung]);
  } finally {
    clearTimeout(timer);
  }
}

const kill = (pid: number) => observer`select pg_terminate_backend(${pid})`;

async function backendPid(sql: postgres.Sql | postgres.ReservedSql | postgres.TransactionSql): Promise<number> {
  const [row] = await sql<{ pid: number }[]>`select pg_backend_pid() as pid`;
  if (!row) throw new Error('no backend pid');
  return row.pid;
}

/** postgres.js takes a socket factory (`socket`) that its type definitions leave out. */
type ClientOptions = Partial<postgres.Options<Record<string, never>>> & { socket?: () => Socket };

function client(url: string, extra: ClientOptions = {}) {
  return postgres(url, {
    max: 1,
    connect_timeout: 3,
    onnotice: () => undefined,
    connection: { application_name: 'driver-faults' },
    ...(extra as Partial<postgres.Options<Record<string, never>>>),
  });
}

describe('postgres.js when a connection dies (our patch)', () => {
  // The patch is written against one release: a new version must be re-checked (are the upstream fixes in,
  // do our hunks still apply and still matter?) before this pin moves.
  it('runs the pinned, patched postgres.js', () => {
    let root = dirname(createRequire(import.meta.url).resolve('postgres'));
    const manifest = (dir: string) => JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version: string };
    while (!existsSync(join(root, 'package.json')) || manifest(root).name !== 'postgres') root = dirname(root);
    expect(manifest(root).version).toBe('3.4.9');
    // Every hunk of patches/postgres@3.4.9.patch carries an `asyncscope patch` comment: each patched file must
    // hold exactly as many as the patch adds to it (an install left over from an older patch fails here).
    const patch = readFileSync(fileURLToPath(new URL('../../../patches/postgres@3.4.9.patch', import.meta.url)), 'utf8');
    const files = patch.split(/^diff --git a\/(\S+) .*$/m).slice(1);
    expect(files.length).toBeGreaterThan(0);
    for (let i = 0; i < files.length; i += 2) {
      const file = files[i] ?? '';
      const added = (files[i + 1] ?? '').split('\n').filter((line) => line.startsWith('+') && line.includes('asyncscope patch')).length;
      const installed = readFileSync(join(root, file), 'utf8').split('asyncscope patch').length - 1;
      expect({ file, markers: installed }).toEqual({ file, markers: added });
    }
  });

  // porsager/postgres#1208: a reserved connection cannot be rotated away, so every later write hit the null socket.
  it('a reserved connection whose backend was killed rejects its queries with CONNECTION_CLOSED, and the process lives', async () => {
    const sql = client(t.url, { max: 2 });
    try {
      const reserved = await sql.reserve();
      await kill(await backendPid(reserved));
      await within(3000, 'first query after the kill', reserved`select 1`.then(() => 'answered', () => 'rejected'));
      await expect(within(3000, 'second query after the kill', reserved`select 1`)).rejects.toMatchObject({ code: 'CONNECTION_CLOSED' });
      await expect(within(3000, 'third query after the kill', reserved`select 1`)).rejects.toMatchObject({ code: 'CONNECTION_CLOSED' });
      // The rest of the pool is unaffected. (Releasing the dead reserved connection would hand it back to
      // the pool as it is: upstream behaviour we do not use — our transactions return theirs themselves.)
      expect((await within(3000, 'a pooled query', sql<{ one: number }[]>`select 1 as one`))[0]?.one).toBe(1);
    } finally {
      await sql.end({ timeout: 1 });
    }
  });

  it('a transaction whose backend is killed midway fails (no crash), and the pool serves the next call', async () => {
    const sql = client(t.url);
    try {
      const tx = sql.begin(async (tx) => {
        await kill(await backendPid(tx));
        await new Promise((r) => setTimeout(r, 50));
        await tx`select 1`;
        await tx`select 2`;
      });
      await expect(within(5000, 'the transaction', tx)).rejects.toBeInstanceOf(Error);
      expect((await within(5000, 'the next query', sql<{ one: number }[]>`select 1 as one`))[0]?.one).toBe(1);
    } finally {
      await sql.end({ timeout: 1 });
    }
  });

  // postgres.js reconnects the same connection object for the next caller. A dead transaction's handle
  // kept sending on it: its statements ran on the new session, outside any transaction (in autocommit),
  // interleaved with another caller's. And the dying session's FATAL (57P01) was kept, and failed the
  // next caller's first statement on the new session ("the next caller" below).
  it("a dead transaction's statements are refused, never run on the connection's next session", async () => {
    const sql = client(t.url);
    try {
      let reconnected!: () => void;
      const afterReconnect = new Promise<void>((resolve) => { reconnected = resolve; });
      let late: Promise<unknown> | undefined;
      const tx = sql.begin(async (tx) => {
        await kill(await backendPid(tx));
        await tx`select 1`.catch(() => undefined); // the driver has seen the connection die
        await afterReconnect;
        late = tx`select 'late' as late`;
        await late;
      });
      await expect(within(3000, 'the transaction', tx)).rejects.toBeInstanceOf(Error);
      // Someone else's call reopens the pool's (only) connection.
      expect((await within(3000, 'the next caller', sql<{ one: number }[]>`select 1 as one`))[0]?.one).toBe(1);
      reconnected();
      await within(3000, 'the late statement', (async () => { while (!late) await new Promise((r) => setTimeout(r, 5)); })());
      await expect(within(3000, 'the late statement', late as unknown as Promise<unknown>)).rejects.toMatchObject({ code: 'CONNECTION_CLOSED' });
      expect((await within(3000, 'the pool afterwards', sql<{ two: number }[]>`select 2 as two`))[0]?.two).toBe(2);
    } finally {
      await sql.end({ timeout: 1 });
    }
  });

  // The wedge after a Postgres restart: a socket that closed while a small write waited for setImmediate
  // left the write scheduler armed but cancelled, so the slot's next connection never sent its startup.
  it('a connection that closed with a write still buffered reconnects and answers (the write scheduler is reset)', async () => {
    const target = new URL(t.url);
    const sockets: Socket[] = [];
    const sql = client(t.url, {
      socket: () => {
        const socket = connect(Number(target.port || 5432), target.hostname);
        sockets.push(socket);
        return socket;
      },
    });
    try {
      await sql`select 1`;
      const pending = sql`select 2 as two`.execute();
      // The query is written on the next setImmediate. The peer's close must be seen before that, as when
      // it arrives in the same event-loop turn: emit it now (a destroy alone reports it only after the
      // immediate has run).
      await new Promise((r) => { process.nextTick(r); }); // postgres.js dispatches a query one microtask later
      const socket = sockets.at(-1);
      if (!socket) throw new Error('no socket was opened');
      socket.destroy();
      socket.emit('close', false);
      await expect(within(3000, 'the query on the closed socket', pending)).rejects.toMatchObject({ code: 'CONNECTION_CLOSED' });
      const [row] = await within(5000, 'the first query on the new connection', sql<{ three: number }[]>`select 3 as three`);
      expect(row?.three).toBe(3);
      expect(sockets).toHaveLength(2);
    } finally {
      await sql.end({ timeout: 1 });
    }
  });

  // A connection that closed with a statement in flight kept that statement as its current one, so
  // end() waited for an answer that could never come: shutdown took its whole timeout.
  it('a pool whose connection died mid-statement ends at once', async () => {
    const sql = client(t.url, { max: 2 });
    try {
      const pid = await backendPid(sql);
      const running = sql`select pg_sleep(5)`.execute();
      // It fails while kill() is still awaited: handled now, so that is not an unhandled rejection (it flaked CI).
      running.catch(() => undefined);
      await new Promise((r) => setTimeout(r, 100));
      await kill(pid);
      // 57P01 when Postgres's goodbye arrives first, CONNECTION_CLOSED when the socket's close does.
      await expect(within(3000, 'the statement', running)).rejects.toSatisfy((e: { code?: string }) => e.code === '57P01' || e.code === 'CONNECTION_CLOSED');
    } finally {
      const started = performance.now();
      await sql.end({ timeout: 5 });
      expect(performance.now() - started).toBeLessThan(2000); // the bug took the whole 5 s
    }
  });

  it('an end() that began before the connection died finishes when it dies', async () => {
    const sql = client(t.url, { max: 1 });
    const pid = await backendPid(sql);
    const running = sql`select pg_sleep(5)`.execute();
    running.catch(() => undefined);
    await new Promise((r) => setTimeout(r, 100));
    const started = performance.now();
    const ending = sql.end({ timeout: 10 }); // waits for the running statement, as a graceful stop does
    await kill(pid);
    await within(5000, 'end()', ending);
    expect(performance.now() - started).toBeLessThan(2000);
  });

  // A statement cancelled before it was sent (its caller gave up first: the call's signal had already
  // fired) was still handed to a connection, which did nothing with it and parked itself as "full":
  // one pool connection lost each time, until the pool had none.
  it('a statement cancelled before it was sent does not take a pool connection with it', async () => {
    const sql = client(t.url, { max: 1 });
    try {
      await sql`select 1`;
      for (let i = 0; i < 3; i++) {
        const gone = sql`select 2`;
        gone.cancel();
        await expect(within(3000, 'the cancelled statement', gone)).rejects.toMatchObject({ code: '57014' });
      }
      const [row] = await within(3000, 'the next statement', sql<{ three: number }[]>`select 3 as three`);
      expect(row?.three).toBe(3);
    } finally {
      await sql.end({ timeout: 1 });
    }
  });

  it('a transaction whose next statement is cancelled before it is sent rolls back and frees its connection', async () => {
    const sql = client(t.url, { max: 1 });
    try {
      const tx = sql.begin(async (tx) => {
        await tx`select 1`;
        const gone = tx`select 2`;
        gone.cancel();
        await gone;
      });
      await expect(within(3000, 'the transaction', tx)).rejects.toMatchObject({ code: '57014' });
      const [row] = await within(3000, 'the next statement', sql<{ n: number }[]>`
        select count(*)::int as n from pg_stat_activity where application_name = 'driver-faults' and state like 'idle in transaction%'`);
      expect(row?.n).toBe(0);
    } finally {
      await sql.end({ timeout: 1 });
    }
  });

  it('a connection whose first statement was cancelled while it connected joins the pool', async () => {
    const sql = client(t.url, { max: 1 });
    try {
      const first = sql`select 1`;
      const settled = first.then(() => 'answered', (e: unknown) => (e as { code?: string }).code);
      await new Promise((r) => { setImmediate(r); }); // dispatched: the pool is opening its connection for it
      first.cancel();
      expect(await within(3000, 'the first statement', settled)).toBe('57014');
      const [row] = await within(3000, 'the next statement', sql<{ two: number }[]>`select 2 as two`);
      expect(row?.two).toBe(2);
    } finally {
      await sql.end({ timeout: 1 });
    }
  });

  // A CancelRequest travels on a connection of its own. Held back by the proxy, it reaches Postgres after
  // its statement ended, while the connection already runs the next one: unpatched, that next statement
  // (someone else's) was cancelled. The connection now waits for the cancel to be delivered first.
  // (max_pipeline 0, as createDbClient runs: a statement pipelined behind the cancelled one could not be fenced.)
  it('a cancel that arrives after its statement ended does not cancel the next statement', async () => {
    const proxy: TcpProxy = await startTcpProxy(t.url);
    const viaProxy = client(proxy.url, { max_pipeline: 0 } as ClientOptions);
    try {
      await backendPid(viaProxy); // connected
      // The first statement must end before its cancel arrives (1.2 s of slack for a loaded machine), and
      // the next one must still run when it does.
      proxy.cancelDelayMs = 1200;
      const first = viaProxy`select pg_sleep(0.2), 'first' as name`;
      const firstDone = first.then(() => 'finished', (e: unknown) => (e as { code?: string }).code);
      await new Promise((r) => setTimeout(r, 50));
      first.cancel();
      // Sent at once, so it is the next statement on the only connection when the first one ends.
      const next = viaProxy<{ name: string }[]>`select pg_sleep(2), 'next' as name`;
      expect(await within(5000, 'the first statement', firstDone)).toBe('finished'); // it ended before its cancel came
      const [row] = await within(5000, 'the next statement', next);
      expect(row?.name).toBe('next');
      expect(proxy.cancelsForwarded).toBeGreaterThanOrEqual(1); // delivered; repeated (every 200 ms) if its statement still ran then
    } finally {
      await viaProxy.end({ timeout: 1 });
      await proxy.close();
    }
  });

  // Our own hunk (the cancel fence) waits for a CancelRequest before handing the connection on. If the
  // connection closed meanwhile, it must not hand a socket-less connection back to the pool.
  it('a connection that closes while a cancel for its last statement is in flight is not handed out again', async () => {
    const proxy: TcpProxy = await startTcpProxy(t.url);
    const viaProxy = client(proxy.url);
    try {
      const pid = await backendPid(viaProxy);
      proxy.cancelDelayMs = 1500; // the statement must end before its cancel arrives, on a loaded machine too
      const statement = viaProxy`select pg_sleep(0.3)`;
      const done = statement.then(() => 'finished', () => 'failed');
      await new Promise((r) => setTimeout(r, 100));
      statement.cancel(); // postgres.js returns nothing here; the proxy tells when the cancel went through
      expect(await within(3000, 'the statement', done)).toBe('finished'); // it ended before the cancel arrived
      await kill(pid);
      await within(3000, 'the delayed cancel', (async () => {
        while (proxy.cancelsForwarded === 0) await new Promise((r) => setTimeout(r, 10));
      })());
      await new Promise((r) => setTimeout(r, 100)); // Postgres closes the cancel connection; the fence resolves
      const [row] = await within(5000, 'the next query', viaProxy<{ one: number }[]>`select 1 as one`);
      expect(row?.one).toBe(1);
    } finally {
      await viaProxy.end({ timeout: 1 });
      await proxy.close();
    }
  });
});

describe('postgres.js behaviours our patch adds or fixes (no fault needed)', () => {
  // Report F (patches/README.md, row 14): V8 allocates a function literal assigned straight to a property in
  // the old generation. The Query's settle functions hold the Query in their context, so every Query and the
  // rows it settled with stayed reachable for the young-generation collector until a full collection (on
  // keyset pages of 1,000 rows: ~3.4 MB promoted per scavenge). V8's own test hook tells where an object
  // lives; a Query is made without connecting (postgres.js sends nothing until it is awaited).
  it("a Query's settle functions are young objects, like the Query, so they die with it", async () => {
    const script = `import postgres from 'postgres';
      const sql = postgres('postgres://nobody@127.0.0.1:1/none', { max: 1 });
      const out = [];
      for (let i = 0; i < 3; i++) {
        const q = sql.unsafe('select 1');
        out.push([%InYoungGeneration(q), %InYoungGeneration(q.resolve), %InYoungGeneration(q.reject)]);
      }
      console.log(JSON.stringify(out));`;
    const { stdout } = await promisify(execFile)(process.execPath, ['--allow-natives-syntax', '--input-type=module', '-e', script], {
      cwd: fileURLToPath(new URL('..', import.meta.url)),
      timeout: 20_000,
    });
    expect(JSON.parse(stdout)).toEqual([[true, true, true], [true, true, true], [true, true, true]]);
  });

  // porsager/postgres#1192, #1205, #1223: a new connection first fetches the array types; its promise was
  // dropped, so when that query failed (cancelled by statement_timeout here; a connection killed or a
  // database restarting while it starts up, in the restart test of health.test.ts) the rejection was
  // unhandled — a crash for a Node process.
  it('a types query that fails while a connection starts up is no unhandled rejection', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => { unhandled.push(reason); };
    process.on('unhandledRejection', onUnhandled);
    const sql = client(t.url, { connection: { application_name: 'driver-faults', statement_timeout: 100 } });
    let locked!: () => void;
    const lockHeld = new Promise<void>((resolve) => { locked = resolve; });
    // Holding pg_type makes the types query wait, so the statement timeout cancels it every time.
    const holder = observer.begin(async (tx) => {
      await tx`lock table pg_catalog.pg_type in access exclusive mode`;
      locked();
      await new Promise((r) => setTimeout(r, 500));
    });
    try {
      await lockHeld;
      // The caller's statement settles (answered, or failed by the same timeout): no hang, no crash.
      const first = await within(5000, 'the first statement', sql`select 1 as one`.then(() => 'answered', (e: unknown) => (e as { code?: string }).code));
      expect(['answered', '57014']).toContain(first);
      await holder;
      const [row] = await within(5000, 'the next statement', sql<{ one: number }[]>`select 1 as one`);
      expect(row?.one).toBe(1);
      await new Promise((r) => setTimeout(r, 50)); // unhandled rejections are reported after a turn
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
      await holder.catch(() => undefined);
      await sql.end({ timeout: 1 });
    }
  });

  // porsager/postgres#1210: onexecute, which reserves the connection for the transaction, was the last term
  // of an `&&` chain behind `sent.length < max_pipeline`; at 0 it never ran, and every begin() failed with
  // UNSAFE_TRANSACTION. max_pipeline 0 is what createDbClient runs with.
  it('runs transactions with max_pipeline: 0', async () => {
    const sql = client(t.url, { max: 2, max_pipeline: 0 } as ClientOptions);
    try {
      const rows = await within(3000, 'the transaction', sql.begin(async (tx) => {
        await tx`select 1`;
        return tx<{ ok: number }[]>`select 1 as ok`;
      }));
      expect(rows[0]?.ok).toBe(1);
      expect((await within(3000, 'the pool afterwards', sql<{ two: number }[]>`select 2 as two`))[0]?.two).toBe(2);
    } finally {
      await sql.end({ timeout: 1 });
    }
  });

  // Our hook (scope.ts reports and cancels by it): called once for each statement given to a connection,
  // with that connection's backend { pid, secret }.
  it('calls ondispatch with the backend of each statement given to a connection', async () => {
    type Dispatched = { pid: number; secret: number };
    const sql = client(t.url, { max: 2, max_pipeline: 0 } as ClientOptions);
    const observed = <T>(query: T, seen: Dispatched[]): T => {
      (query as { ondispatch?: (backend: Dispatched) => void }).ondispatch = (backend) => { seen.push({ ...backend }); };
      return query;
    };
    try {
      const runs = Array.from({ length: 6 }, () => {
        const seen: Dispatched[] = [];
        const answer = observed(sql<{ pid: number }[]>`select pg_backend_pid() as pid, pg_sleep(0.02)`, seen);
        return { seen, answer };
      });
      for (const run of runs) {
        const [row] = await within(3000, 'a statement', run.answer);
        expect(run.seen).toHaveLength(1);
        expect(run.seen[0]?.pid).toBe(row?.pid);
        expect(run.seen[0]?.secret).toEqual(expect.any(Number));
      }
      // Inside a transaction (its statements go to its reserved connection, another path in postgres.js).
      const inTx: Dispatched[] = [];
      const txPid = await within(3000, 'the transaction', sql.begin(async (tx) => {
        const [row] = await observed(tx<{ pid: number }[]>`select pg_backend_pid() as pid`, inTx);
        return row?.pid;
      }));
      expect(inTx.map((d) => d.pid)).toEqual([txPid]);
    } finally {
      await sql.end({ timeout: 1 });
    }
  });
});

// Row 13 of patches/README.md (porsager/postgres#1119, #1181): the index of a statement's next row was reset
// only when a statement completed. One that failed after sending rows left it set, and the next statement on
// the connection resolved, as a success, with that many holes before its rows (our users.stream read `row is
// not iterable` after a cancelled read-ahead: calls.test, "a stream that comes back under its call id").
describe('postgres.js after a statement that failed part-way through its rows (our patch)', () => {
  /** Rows 1 and 2, then division by zero at row 3: PostgreSQL sends two DataRows before the error. */
  const FAILS_AT_ROW_3 = 'select i, 10 / (3 - i) as q from generate_series(1, 5) i';
  const THREE_ROWS = 'select x from generate_series(1, 3) x';
  const codeOf = (e: unknown) => (e as { code?: string }).code ?? String(e);

  it('the next statement gets its own rows, no holes before them (objects and .values())', async () => {
    const sql = client(t.url);
    try {
      expect(await sql.unsafe(FAILS_AT_ROW_3).then(() => 'answered', codeOf)).toBe('22012');
      const objects = await within(3000, 'the next statement', sql.unsafe<{ x: number }[]>(THREE_ROWS));
      expect(objects.length).toBe(3);
      expect([...objects]).toEqual([{ x: 1 }, { x: 2 }, { x: 3 }]);
      expect(await sql.unsafe(FAILS_AT_ROW_3, [], { prepare: true }).then(() => 'answered', codeOf)).toBe('22012');
      const values = await within(3000, 'the next prepared statement', sql.unsafe(THREE_ROWS, [], { prepare: true }).values());
      expect(values.length).toBe(3);
      expect([...values]).toEqual([[1], [2], [3]]);
    } finally {
      await sql.end({ timeout: 1 });
    }
  });

  it('a statement pipelined behind one that fails part-way gets its own rows', async () => {
    const sql = client(t.url, { max_pipeline: 100, pipeline_marked_only: true } as ClientOptions);
    const marked = { prepare: true, pipeline: true } as postgres.UnsafeQueryOptions;
    try {
      await sql.unsafe(THREE_ROWS, [], marked); // prepared: a statement being described has nothing pipelined behind it
      await sql.unsafe('select pg_sleep(0.2)', [], marked);
      const busy = sql.unsafe('select pg_sleep(0.2)', [], marked).then(() => 'answered', codeOf);
      const failing = sql.unsafe(FAILS_AT_ROW_3, [], marked).then(() => 'answered', codeOf);
      const behind = sql.unsafe(THREE_ROWS, [], marked).values();
      expect(await within(3000, 'the failing statement', failing)).toBe('22012');
      const rows = await within(3000, 'the statement behind it', behind);
      expect([...rows]).toEqual([[1], [2], [3]]);
      expect(await busy).toBe('answered');
    } finally {
      await sql.end({ timeout: 1 });
    }
  });

  it('the statement after one cancelled part-way through its rows gets its own rows', async () => {
    const sql = client(t.url, { max_pipeline: 100, pipeline_marked_only: true } as ClientOptions);
    try {
      await sql.unsafe(THREE_ROWS, [], { prepare: true });
      // Rows 1 and 2 are made before row 3 sleeps; the cancel ends it there: PostgreSQL sends them, then 57014.
      const slow = sql.unsafe("select i, case when i = 3 then pg_sleep(30)::text end as s from generate_series(1, 5) i, (select 'row13-cancel') tag");
      const answer = slow.then(() => 'answered', codeOf);
      const sleeping = async () =>
        (await observer<{ n: number }[]>`select count(*)::int as n from pg_stat_activity where query like '%row13-cancel%' and state = 'active' and pid <> pg_backend_pid()`)[0]?.n ?? 0;
      const started = Date.now();
      while ((await sleeping()) === 0) {
        if (Date.now() - started > 5000) throw new Error('the statement never started');
        await new Promise((r) => setTimeout(r, 20));
      }
      slow.cancel();
      expect(await within(5000, 'the cancelled statement', answer)).toBe('57014');
      const values = await within(3000, 'the next statement', sql.unsafe(THREE_ROWS, [], { prepare: true }).values());
      expect([...values]).toEqual([[1], [2], [3]]);
    } finally {
      await sql.end({ timeout: 1 });
    }
  });
});

// Row 12 of patches/README.md: pipelining only the statements marked `pipeline: true` (the API's short
// reads), with cancels that stay exact: a CancelRequest goes only to a statement alone on its connection;
// one with another before or behind it is abandoned (its caller is answered at once, its result dropped).
describe('postgres.js pipelining of marked statements only (our patch)', () => {
  type Backend = { pid: number; secret: number };
  const pipelined = { max_pipeline: 100, pipeline_marked_only: true } as ClientOptions;

  /** A statement with params (the extended protocol, as the API's prepared reads), marked for pipelining or not. */
  function statement(sql: postgres.Sql, text: string, params: (string | number)[], marked: boolean) {
    const options: postgres.UnsafeQueryOptions & { pipeline?: true } = { prepare: true, ...(marked ? { pipeline: true } : {}) };
    return sql.unsafe<{ name: string }[]>(text, params, options);
  }

  const SLEEP = 'select pg_sleep($1), $2::text as name';
  const ECHO = 'select $1::text as name';
  /**
   * Connected, with both statements prepared: postgres.js describes a statement before its first run and
   * pipelines nothing behind that (the API's reads are prepared once per connection, then pipelined).
   */
  async function ready(sql: postgres.Sql): Promise<void> {
    await statement(sql, SLEEP, [0, 'warm'], true);
    await statement(sql, ECHO, ['warm'], true);
  }

  /**
   * Records when each statement is given to a connection (our ondispatch hook, row 10) and when the driver
   * settles it (its resolve / reject, wrapped as scope.ts does: a promise's callbacks run a turn later, after
   * the connection may have sent the next statement). Only the first settle counts: an abandoned
   * statement's answer, which the driver drops, comes later.
   */
  function recorder() {
    const order: string[] = [];
    return {
      order,
      watch: (query: Promise<unknown>, name: string): Promise<string> => {
        const q = query as unknown as { ondispatch?: (backend: Backend) => void; resolve: (x: unknown) => void; reject: (e: unknown) => void };
        const { resolve, reject } = q;
        let settled = false;
        const settle = (what: string): void => {
          if (!settled) order.push(`${what} ${name}`);
          settled = true;
        };
        q.ondispatch = () => { order.push(`sent ${name}`); };
        q.resolve = (x) => { settle('done'); resolve(x); };
        q.reject = (e) => { settle('failed'); reject(e); };
        return query.then(() => 'answered', (e: unknown) => (e as { code?: string }).code ?? String(e));
      },
    };
  }

  it('sends a marked statement behind a busy one, and an unmarked one only to a free connection, in order', async () => {
    const sql = client(t.url, pipelined);
    try {
      await ready(sql);
      const { order, watch } = recorder();
      const a = watch(statement(sql, SLEEP, [0.3, 'a'], true), 'a');
      const b = watch(statement(sql, ECHO, ['b'], true), 'b');
      const c = watch(statement(sql, ECHO, ['c'], false), 'c');
      // Marked, but sent after c is waiting: it must not overtake c.
      const d = watch(statement(sql, ECHO, ['d'], true), 'd');
      expect(await within(5000, 'the statements', Promise.all([a, b, c, d]))).toEqual(['answered', 'answered', 'answered', 'answered']);
      expect(order).toEqual(['sent a', 'sent b', 'done a', 'done b', 'sent c', 'done c', 'sent d', 'done d']);
    } finally {
      await sql.end({ timeout: 1 });
    }
  });

  it('a connection that frees up takes the marked statements at the head of the queue together, and stops at the first unmarked one', async () => {
    const sql = client(t.url, pipelined);
    try {
      await ready(sql);
      const { order, watch } = recorder();
      const a = watch(statement(sql, SLEEP, [0.2, 'a'], false), 'a'); // unmarked: the connection takes nothing behind it
      const x1 = watch(statement(sql, ECHO, ['x1'], true), 'x1');
      const x2 = watch(statement(sql, ECHO, ['x2'], true), 'x2');
      const y = watch(statement(sql, ECHO, ['y'], false), 'y');
      expect(await within(5000, 'the statements', Promise.all([a, x1, x2, y]))).toEqual(['answered', 'answered', 'answered', 'answered']);
      expect(order).toEqual(['sent a', 'done a', 'sent x1', 'sent x2', 'done x1', 'done x2', 'sent y', 'done y']);
    } finally {
      await sql.end({ timeout: 1 });
    }
  });

  it('runs marked statements of a transaction one at a time', async () => {
    const sql = client(t.url, { ...pipelined, max: 1 });
    try {
      await ready(sql);
      const { order, watch } = recorder();
      const answers = await within(5000, 'the transaction', sql.begin(async (tx) => {
        const x = watch(statement(tx as unknown as postgres.Sql, SLEEP, [0.1, 'x'], true), 'x');
        const y = watch(statement(tx as unknown as postgres.Sql, ECHO, ['y'], true), 'y');
        return Promise.all([x, y]);
      }));
      expect(answers).toEqual(['answered', 'answered']);
      expect(order).toEqual(['sent x', 'done x', 'sent y', 'done y']);
    } finally {
      await sql.end({ timeout: 1 });
    }
  });

  // Unpatched (every statement pipelined, max_pipeline 100), cancelling a statement queued behind another on
  // its connection answers its caller only when it has run, and sends a CancelRequest when it starts, whatever
  // was pipelined behind it meanwhile: the cancel may land on that.
  it('a cancelled statement waiting behind another on its connection is answered at once, and gets its CancelRequest only once it runs alone', async () => {
    const proxy: TcpProxy = await startTcpProxy(t.url);
    const sql = client(proxy.url, pipelined);
    try {
      await ready(sql);
      const { order, watch } = recorder();
      const aQuery = statement(sql, SLEEP, [0.4, 'a'], true);
      const a = watch(aQuery, 'a');
      const bQuery = statement(sql, SLEEP, [0.4, 'b'], true);
      const b = watch(bQuery, 'b');
      await new Promise((r) => setTimeout(r, 50));
      expect(order).toEqual(['sent a', 'sent b']);
      bQuery.cancel();
      expect(await within(3000, 'the cancelled statement', b)).toBe('57014');
      expect(order).toEqual(['sent a', 'sent b', 'failed b']); // before a ended: answered at once
      expect(proxy.cancelsForwarded).toBe(0); // and no CancelRequest yet: it would land on a
      expect(await within(3000, 'the statement ahead', a)).toBe('answered');
      // b now runs alone: its CancelRequest is sent (it could hit nothing else), and its answer is dropped;
      // the connection goes on once the cancel is through. One that reached Postgres before it had read b's
      // Execute is dropped there, and b still running 200 ms later gets another (a loaded machine: 2).
      const [row] = await within(3000, 'the next statement', statement(sql, ECHO, ['next'], true));
      expect(row?.name).toBe('next');
      expect(proxy.cancelsForwarded).toBeGreaterThanOrEqual(1);
    } finally {
      await sql.end({ timeout: 1 });
      await proxy.close();
    }
  });

  // Unpatched, the running statement gets a CancelRequest; held back by the proxy it arrives after the
  // statement ended, and cancels the one pipelined behind it (someone else's).
  it('a cancelled statement running with another pipelined behind it is abandoned: the one behind is untouched', async () => {
    const proxy: TcpProxy = await startTcpProxy(t.url);
    const sql = client(proxy.url, pipelined);
    try {
      await ready(sql);
      proxy.cancelDelayMs = 1200;
      const { order, watch } = recorder();
      const aQuery = statement(sql, SLEEP, [0.2, 'a'], true);
      const a = watch(aQuery, 'a');
      const b = watch(statement(sql, SLEEP, [2, 'b'], true), 'b');
      await new Promise((r) => setTimeout(r, 50));
      aQuery.cancel();
      expect(await within(3000, 'the cancelled statement', a)).toBe('57014');
      expect(order).toEqual(['sent a', 'sent b', 'failed a']);
      expect(await within(5000, 'the statement behind', b)).toBe('answered');
      expect(proxy.cancelsForwarded).toBe(0);
    } finally {
      await sql.end({ timeout: 1 });
      await proxy.close();
    }
  });

  // Row 7's fence covers a connection that takes its next statement after the cancel; with pipelining the
  // next statement could be sent behind the cancelled one while its CancelRequest travels.
  it('a cancelled statement running alone gets its CancelRequest, and nothing is pipelined behind it until the cancel is delivered', async () => {
    const proxy: TcpProxy = await startTcpProxy(t.url);
    const sql = client(proxy.url, pipelined);
    try {
      await ready(sql);
      proxy.cancelDelayMs = 1200; // the statement ends before its cancel arrives
      const { order, watch } = recorder();
      const aQuery = statement(sql, SLEEP, [0.2, 'a'], true);
      const a = watch(aQuery, 'a');
      await new Promise((r) => setTimeout(r, 50));
      aQuery.cancel();
      const b = watch(statement(sql, SLEEP, [2, 'b'], true), 'b');
      expect(await within(3000, 'the cancelled statement', a)).toBe('answered'); // it ended before its cancel came
      expect(await within(6000, 'the next statement', b)).toBe('answered');
      expect(order).toEqual(['sent a', 'done a', 'sent b', 'done b']);
      expect(proxy.cancelsForwarded).toBeGreaterThanOrEqual(1); // delivered; repeated (every 200 ms) if its statement still ran then
    } finally {
      await sql.end({ timeout: 1 });
      await proxy.close();
    }
  });

  // An abandoned statement still runs in Postgres. Unpatched by these two hunks, its connection kept taking reads
  // behind it, and it ran to its end even once nothing was behind it: a slow read cancelled behind a fast one
  // held its connection, and every read sent there, for as long as it ran (up to statement_timeout).
  it('takes nothing behind an abandoned statement, and cancels it in Postgres once it runs alone', async () => {
    const proxy: TcpProxy = await startTcpProxy(t.url);
    const sql = client(proxy.url, { ...pipelined, max: 1 });
    try {
      await ready(sql);
      const { order, watch } = recorder();
      const a = watch(statement(sql, SLEEP, [0.3, 'a'], true), 'a');
      const bQuery = statement(sql, SLEEP, [30, 'b'], true);
      const b = watch(bQuery, 'b');
      await new Promise((r) => setTimeout(r, 50));
      bQuery.cancel();
      expect(await within(3000, 'the abandoned statement', b)).toBe('57014');
      // Sent while a still runs: unpatched it is pipelined behind b, and b, never alone, runs its 30 s.
      const c = watch(statement(sql, ECHO, ['c'], true), 'c');
      expect(await within(5000, 'the statement after the abandoned one', c)).toBe('answered');
      expect(await a).toBe('answered');
      expect(order).toEqual(['sent a', 'sent b', 'failed b', 'done a', 'sent c', 'done c']);
      expect(proxy.cancelsForwarded).toBeGreaterThanOrEqual(1); // delivered; repeated (every 200 ms) if its statement still ran then
      // Postgres stopped b: nothing of it is still running.
      const running = await t.sql<{ n: number }[]>`select count(*)::int as n from pg_stat_activity where datname = current_database() and query like 'select pg_sleep($1), $2::text%' and state = 'active'`;
      expect(running[0]?.n).toBe(0);
    } finally {
      await sql.end({ timeout: 1 });
      await proxy.close();
    }
  });

  // Postgres drops a cancel that arrives between statements, and a statement may catch one (here: an exception
  // handler, as the scope test of repeated cancels does). Sent once, the abandoned statement would run its 5 s.
  it('repeats the CancelRequest of an abandoned statement running alone until it stops', async () => {
    await t.sql.unsafe(`create or replace function swallow_one_cancel(s float) returns text language plpgsql as $$
      begin
        begin perform pg_sleep(s); exception when query_canceled then null; end;
        perform pg_sleep(s);
        return 'slept';
      end $$`);
    const proxy: TcpProxy = await startTcpProxy(t.url);
    const sql = client(proxy.url, { ...pipelined, max: 1 });
    const SWALLOW = 'select swallow_one_cancel($1) as name';
    try {
      await ready(sql);
      await statement(sql, SWALLOW, [0], true);
      // The first cancel goes out the moment b runs alone: arriving before b is inside its exception block, it
      // would stop b at once. Held back 300 ms, every cancel lands while b sleeps, so the first is swallowed.
      proxy.cancelDelayMs = 300;
      const { order, watch } = recorder();
      const a = watch(statement(sql, SLEEP, [0.3, 'a'], true), 'a');
      const bQuery = sql.unsafe<{ name: string }[]>(SWALLOW, [5], { prepare: true, pipeline: true } as postgres.UnsafeQueryOptions);
      const b = watch(bQuery, 'b');
      await new Promise((r) => setTimeout(r, 50));
      bQuery.cancel();
      expect(await within(3000, 'the abandoned statement', b)).toBe('57014');
      const c = watch(statement(sql, ECHO, ['c'], true), 'c');
      expect(await within(3500, 'the statement after the abandoned one', c)).toBe('answered');
      expect(await a).toBe('answered');
      expect(order).toEqual(['sent a', 'sent b', 'failed b', 'done a', 'sent c', 'done c']);
      expect(proxy.cancelsForwarded).toBeGreaterThanOrEqual(2);
    } finally {
      await sql.end({ timeout: 1 });
      await proxy.close();
    }
  });

  it('an abandoned statement that ends before its CancelRequest arrives: the next statement waits for the cancel and is untouched', async () => {
    const proxy: TcpProxy = await startTcpProxy(t.url);
    const sql = client(proxy.url, { ...pipelined, max: 1 });
    try {
      await ready(sql);
      proxy.cancelDelayMs = 1000; // b ends (at ~0.5 s) long before its cancel arrives
      const { order, watch } = recorder();
      const a = watch(statement(sql, SLEEP, [0.2, 'a'], true), 'a');
      const bQuery = statement(sql, SLEEP, [0.3, 'b'], true);
      const b = watch(bQuery, 'b');
      await new Promise((r) => setTimeout(r, 50));
      bQuery.cancel();
      expect(await within(3000, 'the abandoned statement', b)).toBe('57014');
      const c = watch(statement(sql, SLEEP, [0.5, 'c'], true), 'c');
      expect(await within(6000, 'the next statement', c)).toBe('answered');
      expect(await a).toBe('answered');
      expect(order).toEqual(['sent a', 'sent b', 'failed b', 'done a', 'sent c', 'done c']);
      expect(proxy.cancelsForwarded).toBeGreaterThanOrEqual(1); // repeated at 200 ms while b still ran: each held back, each waited for
    } finally {
      await sql.end({ timeout: 1 });
      await proxy.close();
    }
  });

  it('a cancelled statement running alone is cancelled inside Postgres (57014 from the server)', async () => {
    const sql = client(t.url, pipelined);
    try {
      await ready(sql);
      const query = statement(sql, SLEEP, [5, 'a'], true);
      const done = query.then(() => 'answered', (e: unknown) => e as postgres.PostgresError);
      await new Promise((r) => setTimeout(r, 100));
      query.cancel();
      const error = await within(3000, 'the cancelled statement', done);
      expect(error).toBeInstanceOf(postgres.PostgresError); // Postgres's own error, not one made up by the driver
      expect((error as postgres.PostgresError).code).toBe('57014');
    } finally {
      await sql.end({ timeout: 1 });
    }
  });
});
