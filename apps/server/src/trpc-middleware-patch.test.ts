/**
 * patches/@trpc__server@11.22.1.patch (patches/README.md, @trpc/server row 2): tRPC's middleware chain
 * (`callRecursive`) copies its options and the merged context with object spread instead of babel's
 * `_objectSpread2`, which was 7–9 % of a `users.byId` call's server CPU. The copies must hold exactly what
 * they held before: own enumerable keys, symbols included, as plain data properties, later keys winning —
 * including a key named `__proto__`, which stays an own property and never becomes a prototype.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { initTRPC } from '@trpc/server';
import { expect, it } from 'vitest';

const TAG = Symbol('tag');

interface Ctx {
  user: string;
  [TAG]?: string;
}

const t = initTRPC.context<Ctx>().create();
const seen: { ctx: unknown; input: unknown; metaFromMiddleware: unknown }[] = [];

const withRole = t.middleware(({ ctx, next }) => next({ ctx: { role: 'admin', user: `${ctx.user}!` } }));
// A key named __proto__ made as an own property (as JSON.parse makes one): a copy must keep it own.
const protoKey = JSON.parse('{"__proto__": {"polluted": true}, "plain": 1}') as Record<string, unknown>;
const withOddKeys = t.middleware(({ next, meta }) => {
  seen.push({ ctx: undefined, input: undefined, metaFromMiddleware: meta });
  return next({ ctx: { [TAG]: 'symbol-kept', ...protoKey } });
});

const router = t.router({
  echo: t.procedure
    .meta({ name: 'echo' })
    .use(withRole)
    .use(withOddKeys)
    .input((value) => value as { n: number })
    .query(({ ctx, input }) => {
      seen.push({ ctx, input, metaFromMiddleware: undefined });
      return { n: input.n };
    }),
});

it('the middleware chain passes the merged context, input and meta as before', async () => {
  seen.length = 0;
  const caller = t.createCallerFactory(router)({ user: 'ada' });
  expect(await caller.echo({ n: 7 })).toEqual({ n: 7 });
  expect(seen[0]?.metaFromMiddleware).toEqual({ name: 'echo' });
  const ctx = seen[1]?.ctx as Record<string | symbol, unknown>;
  expect(seen[1]?.input).toEqual({ n: 7 });
  // Later middlewares' keys win; the caller's context is carried through.
  expect(ctx.user).toBe('ada!');
  expect(ctx.role).toBe('admin');
  expect(ctx[TAG]).toBe('symbol-kept');
  expect(ctx.plain).toBe(1);
  // `__proto__` arrived as an own data property and stayed one: the context's prototype is untouched.
  expect(Object.prototype.hasOwnProperty.call(ctx, '__proto__')).toBe(true);
  expect(Object.getPrototypeOf(ctx)).toBe(Object.prototype);
  expect((ctx as { polluted?: unknown }).polluted).toBeUndefined();
  expect(({} as { polluted?: unknown }).polluted).toBeUndefined();
  // Every key is a plain, writable, enumerable data property (what _objectSpread2's defineProperty made).
  for (const key of Reflect.ownKeys(ctx)) {
    const descriptor = Object.getOwnPropertyDescriptor(ctx, key);
    expect(descriptor && 'value' in descriptor && descriptor.writable && descriptor.enumerable && descriptor.configurable, String(key)).toBe(true);
  }
});

it('the installed @trpc/server has the middleware-chain patch in both builds (a new version: re-check it, patches/README.md)', () => {
  const require = createRequire(import.meta.url);
  const { version } = require('@trpc/server/package.json') as { version: string };
  expect(version, 'patches/@trpc__server@11.22.1.patch was written for 11.22.1: re-check it (patches/README.md) before moving the pin').toBe('11.22.1');
  const dist = dirname(require.resolve('@trpc/server'));
  const files = readdirSync(dist).filter((name) => /^initTRPC-.*\.(mjs|cjs)$/.test(name));
  expect(files.map((name) => name.slice(-3)).sort()).toEqual(['cjs', 'mjs']);
  for (const name of files) {
    const source = readFileSync(join(dist, name), 'utf8');
    const start = source.indexOf('async function callRecursive');
    const chain = source.slice(start, source.indexOf('} catch (cause)', start));
    expect(chain, name).toContain('asyncscope patch (patches/README.md, @trpc/server row 2)');
    expect(chain, name).not.toContain('_objectSpread2(');
  }
});
