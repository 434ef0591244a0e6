/** asyncscope users list|get|create|update|delete: one call each, a table by default, JSON with --json. */
import type { User } from '@asyncscope/contract';
import type { Command } from 'commander';
import { withClient, interruptSignal } from '../client';
import { UsageError, type Config } from '../config';
import { parseDuration, parseInteger, table } from '../format';

export type Run = (cmd: Command, body: (config: Config) => Promise<void>) => Promise<void>;

function usersTable(users: readonly User[]): string {
  return table(['ID', 'NAME', 'EMAIL', 'CREATED'], users.map((u) => [u.id, u.name, u.email, u.createdAt.replace(/\.\d+Z$/, 'Z')]));
}

function print(config: Config, value: unknown, text: string): void {
  process.stdout.write(config.json ? `${JSON.stringify(value, null, 2)}\n` : `${text}\n`);
}

/** One call with a deadline, stopped on Ctrl+C (its HTTP request is dropped, so the server stops it). */
async function call<T>(timeoutMs: number, body: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const interrupt = interruptSignal();
  try {
    return await body(AbortSignal.any([interrupt.signal, AbortSignal.timeout(timeoutMs)]));
  } finally {
    interrupt.dispose();
  }
}

const id = (text: string) => parseInteger(text, 'id', 1, 2_147_483_647);
const timeoutOption = ['--timeout <duration>', 'give up on the call after this long', '10s'] as const;

export function usersCommand(program: Command, run: Run): Command {
  const users = program.command('users').description('list, read, create, update and delete users');

  users
    .command('list')
    .description('one page of users, by id')
    .option('--limit <n>', 'users per page (1-100)', '10')
    .option('--offset <n>', 'users to skip', '0')
    .option(...timeoutOption)
    .action(async (_opts: unknown, cmd: Command) => {
      await run(cmd, async (config) => {
        const o = cmd.opts<{ limit: string; offset: string; timeout: string }>();
        const input = { limit: parseInteger(o.limit, '--limit', 1, 100), offset: parseInteger(o.offset, '--offset', 0, 2_147_483_647) };
        const page = await withClient(config, 'http', (client) => call(parseDuration(o.timeout, '--timeout'), (signal) => client.users.list.query(input, { signal })));
        const shown = page.items.length === 0 ? 'no users' : `users ${input.offset + 1}-${input.offset + page.items.length}`;
        print(config, page, `${page.items.length > 0 ? `${usersTable(page.items)}\n` : ''}${shown} of ${page.total}`);
      });
    });

  users
    .command('get')
    .description('one user')
    .argument('<id>', 'the user id')
    .option(...timeoutOption)
    .action(async (idText: string, _opts: unknown, cmd: Command) => {
      await run(cmd, async (config) => {
        const o = cmd.opts<{ timeout: string }>();
        const user = await withClient(config, 'http', (client) => call(parseDuration(o.timeout, '--timeout'), (signal) => client.users.byId.query({ id: id(idText) }, { signal })));
        print(config, user, usersTable([user]));
      });
    });

  users
    .command('create')
    .description('create a user')
    .requiredOption('--name <name>', 'the name')
    .requiredOption('--email <email>', 'the email address (stored lower-cased, unique)')
    .option('--idempotency-key <key>', 'makes a retried create (same key) return the first one instead of writing twice')
    .option(...timeoutOption)
    .action(async (_opts: unknown, cmd: Command) => {
      await run(cmd, async (config) => {
        const o = cmd.opts<{ name: string; email: string; idempotencyKey?: string; timeout: string }>();
        const input = { name: o.name, email: o.email, ...(o.idempotencyKey ? { idempotencyKey: o.idempotencyKey } : {}) };
        const user = await withClient(config, 'http', (client) => call(parseDuration(o.timeout, '--timeout'), (signal) => client.users.create.mutate(input, { signal })));
        print(config, user, `created user ${user.id}\n${usersTable([user])}`);
      });
    });

  users
    .command('update')
    .description('change a user\'s name or email')
    .argument('<id>', 'the user id')
    .option('--name <name>', 'the new name')
    .option('--email <email>', 'the new email address')
    .option('--idempotency-key <key>', 'makes a retried update (same key) apply once')
    .option(...timeoutOption)
    .action(async (idText: string, _opts: unknown, cmd: Command) => {
      await run(cmd, async (config) => {
        const o = cmd.opts<{ name?: string; email?: string; idempotencyKey?: string; timeout: string }>();
        if (o.name === undefined && o.email === undefined) throw new UsageError('give --name or --email to change');
        const input = { id: id(idText), ...(o.name !== undefined ? { name: o.name } : {}), ...(o.email !== undefined ? { email: o.email } : {}), ...(o.idempotencyKey ? { idempotencyKey: o.idempotencyKey } : {}) };
        const user = await withClient(config, 'http', (client) => call(parseDuration(o.timeout, '--timeout'), (signal) => client.users.update.mutate(input, { signal })));
        print(config, user, `updated user ${user.id}\n${usersTable([user])}`);
      });
    });

  users
    .command('delete')
    .description('delete a user')
    .argument('<id>', 'the user id')
    .option('--idempotency-key <key>', 'makes a retried delete (same key) answer as the first did')
    .option(...timeoutOption)
    .action(async (idText: string, _opts: unknown, cmd: Command) => {
      await run(cmd, async (config) => {
        const o = cmd.opts<{ idempotencyKey?: string; timeout: string }>();
        const input = { id: id(idText), ...(o.idempotencyKey ? { idempotencyKey: o.idempotencyKey } : {}) };
        const user = await withClient(config, 'http', (client) => call(parseDuration(o.timeout, '--timeout'), (signal) => client.users.delete.mutate(input, { signal })));
        print(config, user, `deleted user ${user.id}\n${usersTable([user])}`);
      });
    });
  return users;
}
