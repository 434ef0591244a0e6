/**
 * The logger's credential censoring (`createLogger` in log-redaction.ts): what pino's `redact` option did, done by a
 * `log` formatter and a wrapped `child`. These tests read the JSON lines the logger writes; the last one fences the
 * pino behaviour the wrapper exists for.
 */
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { CENSOR, CENSORED_FIELDS, censorCredentials, createLogger } from './log-redaction';

const PINO_VERSION = '10.4.0';
const SECRET = 'tok_0123456789abcdef';

function capture(): { sink: Writable; lines: () => Record<string, unknown>[]; text: () => string } {
  const chunks: string[] = [];
  const sink = new Writable({ write(chunk: Buffer, _encoding, done) { chunks.push(chunk.toString('utf8')); done(); } });
  const text = () => chunks.join('');
  return { sink, text, lines: () => text().split('\n').filter(Boolean).map((line) => JSON.parse(line) as Record<string, unknown>) };
}

describe('the logger censors credentials', () => {
  it('at the top level and one level down, for every censored field, and leaves the caller’s objects alone', () => {
    const { sink, lines, text } = capture();
    const log = createLogger({ level: 'info' }, sink);
    for (const field of CENSORED_FIELDS) {
      const nested = { [field]: SECRET, keep: 1 };
      const fields = { [field]: SECRET, nested, path: '/trpc/users.byId' };
      log.info(fields, 'call');
      expect(fields[field]).toBe(SECRET); // copy on write: the caller's object is unchanged
      expect(nested[field]).toBe(SECRET);
    }
    expect(text()).not.toContain(SECRET);
    for (const [i, field] of [...CENSORED_FIELDS].entries()) {
      expect(lines()[i]).toMatchObject({ [field]: CENSOR, nested: { [field]: CENSOR, keep: 1 }, path: '/trpc/users.byId', msg: 'call' });
    }
  });

  it('copies nothing when there is nothing to censor (nearly every line)', () => {
    const fields = { requestId: 7, method: 'GET', path: '/trpc/users.byId', status: 200, ms: 1, aborted: false, nested: { a: 1 } };
    expect(censorCredentials(fields)).toBe(fields);
    expect(censorCredentials({ token: undefined })).toEqual({ token: undefined }); // absent stays absent, not "[redacted]"
  });

  it('in a child’s bindings and a grandchild’s, which pino formats without the log formatter', () => {
    const { sink, lines, text } = capture();
    const log = createLogger({ level: 'info' }, sink);
    const child = log.child({ requestId: 1, authorization: `Bearer ${SECRET}` });
    child.info('from the child');
    child.child({ input: { email: 'ada@example.com' } }).info({ ticket: SECRET }, 'from the grandchild');
    expect(text()).not.toContain(SECRET);
    expect(text()).not.toContain('ada@example.com');
    expect(lines()).toMatchObject([
      { requestId: 1, authorization: CENSOR, msg: 'from the child' },
      { requestId: 1, authorization: CENSOR, input: CENSOR, ticket: CENSOR, msg: 'from the grandchild' },
    ]);
  });

  it('errors still go through their serializer: no values, the censored fields of their holder censored', () => {
    const { sink, lines, text } = capture();
    const log = createLogger({ level: 'info' }, sink);
    const error = Object.assign(new Error('invalid input syntax for type integer: "ada@example.com"'), { code: '22P02', parameters: [SECRET] });
    log.error({ err: error, input: { id: 'ada@example.com' } }, 'procedure failed');
    expect(text()).not.toContain(SECRET);
    expect(text()).not.toContain('ada@example.com');
    expect(lines()[0]).toMatchObject({ err: { type: 'Error', code: '22P02', message: 'invalid input syntax for type integer: "[redacted]"' }, input: CENSOR });
  });

  it(`relies on pino ${PINO_VERSION}: children get no bindings formatter, the log formatter sees each call's fields`, () => {
    const require = createRequire(import.meta.url);
    const pkg = JSON.parse(readFileSync(require.resolve('pino/package.json'), 'utf8')) as { version: string };
    // On another version, re-check both facts below and createLogger's reliance on them, then move the pin.
    expect(pkg.version).toBe(PINO_VERSION);
    const bindingsSeen: unknown[] = [];
    const logSeen: unknown[] = [];
    const { sink } = capture();
    const raw = pino({ formatters: { bindings: (b) => { bindingsSeen.push(b); return b; }, log: (f) => { logSeen.push(f); return f; } } }, sink);
    raw.child({ token: SECRET }).info({ a: 1 }, 'x');
    // The root's bindings (pid, hostname) went through the formatter; the child's did not: hence the wrapped `child`.
    expect(bindingsSeen).toHaveLength(1);
    expect(bindingsSeen[0]).not.toHaveProperty('token');
    expect(logSeen).toEqual([{ a: 1 }]);
  });
});
