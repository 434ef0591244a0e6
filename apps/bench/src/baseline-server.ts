/**
 * The baseline: what the two read procedures cost with no framework at all — plain node:http and
 * postgres.js, answering the same URLs with the same JSON as apps/server:
 *   GET /trpc/users.byId?input={"id":N}               -> {"result":{"data":User}}
 *   GET /trpc/users.list?input={"limit":L,"offset":O}  -> {"result":{"data":{"items":User[],"total":T}}}
 *   GET /healthz                                        -> 200 once the database answers
 * with the same bearer-token check and the same input rules (strict objects, int ranges, list defaults).
 * And the list as a hand-written server would usually serve it, one page without counting the table:
 *   GET /trpc/users.listPlain?input={"limit":L,"offset":O} -> {"result":{"data":{"items":User[]}}}
 * Configured like apps/server: PORT, HOST, DATABASE_URL, API_TOKEN, DB_POOL_MAX; and BASELINE_POSTGRES_ENTRY,
 * the ESM entry of another copy of postgres.js to load (the driver as shipped) instead of the workspace's.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { pathToFileURL } from 'node:url';
import type postgresType from 'postgres';

const INT4_MAX = 2_147_483_647;

const env = process.env;
const databaseUrl = env.DATABASE_URL;
const apiToken = env.API_TOKEN;
const poolMax = Number(env.DB_POOL_MAX);
// The bench starts it with the same pool as the server under test; no default of its own to drift from the server's.
if (!databaseUrl || !apiToken || !Number.isInteger(poolMax) || poolMax < 1) {
  process.stderr.write('baseline: DATABASE_URL, API_TOKEN and DB_POOL_MAX are required\n');
  process.exit(1);
}

const driverEntry = env.BASELINE_POSTGRES_ENTRY;
const { default: postgres } = (driverEntry ? await import(pathToFileURL(driverEntry).href) : await import('postgres')) as { default: typeof postgresType };

const sql = postgres(databaseUrl, {
  max: poolMax,
  idle_timeout: 30,
  onnotice: () => undefined,
  connection: { application_name: 'asyncscope-bench-baseline' },
});

interface UserRow { id: number; name: string; email: string; created_at: Date; updated_at: Date }

const toUser = (row: UserRow) => ({
  id: row.id,
  name: row.name,
  email: row.email,
  createdAt: row.created_at.toISOString(),
  updatedAt: row.updated_at.toISOString(),
});

class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

const expectedToken = createHash('sha256').update(apiToken).digest();
function authorized(header: string | undefined): boolean {
  const match = /^Bearer\s+(.+)$/i.exec(header ?? '');
  const given = createHash('sha256').update(match?.[1]?.trim() ?? '').digest();
  return timingSafeEqual(given, expectedToken) && match !== null;
}

/** tRPC's GET convention: `input` is JSON in the query string; absent means undefined. */
function readInput(query: URLSearchParams): unknown {
  const raw = query.get('input');
  if (raw === null) return undefined;
  try {
    return JSON.parse(raw);
  } catch {
    throw new HttpError(400, 'The request is not valid JSON.');
  }
}

function strictObject(value: unknown, keys: readonly string[]): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new HttpError(400, 'Invalid input: expected an object');
  const extra = Object.keys(value).filter((k) => !keys.includes(k));
  if (extra.length > 0) throw new HttpError(400, `Invalid input: unrecognized key(s) ${extra.join(', ')}`);
  return value as Record<string, unknown>;
}

function int(value: unknown, name: string, min: number, max: number, fallback?: number): number {
  if (value === undefined && fallback !== undefined) return fallback;
  if (typeof value !== 'number') throw new HttpError(400, `Invalid input: ${name} must be a number`);
  if (!Number.isInteger(value)) throw new HttpError(400, `Invalid input: ${name} must be a whole number`);
  if (value < min || value > max) throw new HttpError(400, `Invalid input: ${name} must be between ${min} and ${max}`);
  return value;
}

type Handler = (input: unknown) => Promise<unknown>;

const procedures: Record<string, Handler> = {
  'users.byId': async (input) => {
    const id = int(strictObject(input, ['id']).id, 'id', 1, INT4_MAX);
    const [row] = await sql<UserRow[]>`select id, name, email, created_at, updated_at from users where id = ${id}`;
    if (!row) throw new HttpError(404, `No user with id ${id}.`);
    return toUser(row);
  },
  'users.list': async (input) => {
    const fields = strictObject(input ?? {}, ['limit', 'offset']);
    const limit = int(fields.limit, 'limit', 1, 100, 10);
    const offset = int(fields.offset, 'offset', 0, INT4_MAX, 0);
    const [rows, totals] = await Promise.all([
      sql<UserRow[]>`select id, name, email, created_at, updated_at from users order by id limit ${limit} offset ${offset}`,
      sql<{ total: number }[]>`select count(*)::int as total from users`,
    ]);
    return { items: rows.map(toUser), total: totals[0]?.total ?? 0 };
  },
  'users.listPlain': async (input) => {
    const fields = strictObject(input ?? {}, ['limit', 'offset']);
    const limit = int(fields.limit, 'limit', 1, 100, 10);
    const offset = int(fields.offset, 'offset', 0, INT4_MAX, 0);
    const rows = await sql<UserRow[]>`select id, name, email, created_at, updated_at from users order by id limit ${limit} offset ${offset}`;
    return { items: rows.map(toUser) };
  },
};

function send(res: ServerResponse, status: number, body: unknown): void {
  const payload = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) });
  res.end(payload);
}

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://localhost');
  if (url.pathname === '/healthz') {
    await sql`select 1`;
    send(res, 200, { status: 'ok' });
    return;
  }
  const procedure = url.pathname.startsWith('/trpc/') ? procedures[url.pathname.slice('/trpc/'.length)] : undefined;
  if (!procedure) throw new HttpError(404, `Nothing at ${url.pathname}.`);
  if (req.method !== 'GET') throw new HttpError(405, 'Queries are GET requests.');
  if (!authorized(req.headers.authorization)) throw new HttpError(401, 'Missing or wrong API token: send "Authorization: Bearer <token>".');
  send(res, 200, { result: { data: await procedure(readInput(url.searchParams)) } });
}

const server = createServer((req, res) => {
  handle(req, res).catch((error: unknown) => {
    const status = error instanceof HttpError ? error.status : 500;
    if (status === 500) process.stderr.write(`baseline: ${error instanceof Error ? error.message : String(error)}\n`);
    if (!res.headersSent) send(res, status, { error: { message: error instanceof Error ? error.message : String(error) } });
    else res.destroy();
  });
});

server.listen(Number(env.PORT ?? 0), env.HOST ?? '127.0.0.1', () => {
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  process.stdout.write(`baseline listening on http://${env.HOST ?? '127.0.0.1'}:${port}\n`);
});

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    server.close();
    server.closeIdleConnections();
    sql.end({ timeout: 5 }).then(
      () => process.exit(0),
      () => process.exit(1),
    );
  });
}
