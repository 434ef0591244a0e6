import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { EnvError, readEnv, readTls } from './env';
import { makeTestCertificate } from './test-tls';

describe('readEnv: the limits that keep one client from shutting out the others, and the lab switch', () => {
  it('has defaults', () => {
    const env = readEnv({});
    expect(env).toMatchObject({ BODY_TIMEOUT_MS: 10_000, MAX_BATCH_SIZE: 50, MAX_QUEUE_PER_CLIENT: 250, LAB: 'on' });
  });

  it('reads them', () => {
    expect(readEnv({ LAB: 'off', BODY_TIMEOUT_MS: '2500', MAX_BATCH_SIZE: '10', MAX_QUEUE_PER_CLIENT: '0' })).toMatchObject({
      LAB: 'off',
      BODY_TIMEOUT_MS: 2500,
      MAX_BATCH_SIZE: 10,
      MAX_QUEUE_PER_CLIENT: 0,
    });
  });

  it('reads EXTRA_API_TOKENS as a list of tokens, each at least 16 characters', () => {
    expect(readEnv({}).EXTRA_API_TOKENS).toEqual([]);
    expect(readEnv({ EXTRA_API_TOKENS: 'aaaaaaaaaaaaaaaa, bbbbbbbbbbbbbbbb,' }).EXTRA_API_TOKENS).toEqual(['aaaaaaaaaaaaaaaa', 'bbbbbbbbbbbbbbbb']);
    expect(() => readEnv({ EXTRA_API_TOKENS: 'aaaaaaaaaaaaaaaa,short' })).toThrow(/EXTRA_API_TOKENS=\(hidden\): EXTRA_API_TOKENS must be comma-separated tokens of at least 16 characters/);
    // A secret is named, never echoed.
    expect(() => readEnv({ API_TOKEN: 'short-secret' })).toThrow(/API_TOKEN=\(hidden\)/);
    expect(() => readEnv({ API_TOKEN: 'short-secret' })).not.toThrow(/short-secret/);
  });

  it('reads EVENTS_URL and friends, and never echoes the URL (it may carry credentials)', () => {
    expect(readEnv({}).EVENTS_URL).toBeUndefined();
    expect(readEnv({})).toMatchObject({ EVENTS_STREAM: 'ASYNCSCOPE_HOPS', EVENTS_MAX_EVENTS: 100_000, EVENTS_MAX_AGE_S: 3600 });
    expect(readEnv({ EVENTS_URL: 'nats://u:p@127.0.0.1:4222', EVENTS_STREAM: 'HOPS_2', EVENTS_MAX_EVENTS: '5000', EVENTS_MAX_AGE_S: '60' })).toMatchObject({
      EVENTS_URL: 'nats://u:p@127.0.0.1:4222',
      EVENTS_STREAM: 'HOPS_2',
      EVENTS_MAX_EVENTS: 5000,
      EVENTS_MAX_AGE_S: 60,
    });
    expect(() => readEnv({ EVENTS_URL: 'redis://user:hunter2@host:6379' })).toThrow(/EVENTS_URL=\(hidden\): EVENTS_URL must be a nats:\/\/ URL/);
    expect(() => readEnv({ EVENTS_URL: 'redis://user:hunter2@host:6379' })).not.toThrow(/hunter2/);
    expect(() => readEnv({ EVENTS_STREAM: 'a.b' })).toThrow(/EVENTS_STREAM="a.b"/);
    expect(() => readEnv({ EVENTS_MAX_EVENTS: '10' })).toThrow(/EVENTS_MAX_EVENTS must be between 1000 and 100000000/);
  });

  it('names the instance by INSTANCE_ID, or host:pid by default', () => {
    expect(readEnv({}).INSTANCE_ID).toBe(`${hostname()}:${process.pid}`);
    expect(readEnv({ INSTANCE_ID: 'web-2.eu@rack:7' }).INSTANCE_ID).toBe('web-2.eu@rack:7');
    expect(() => readEnv({ INSTANCE_ID: 'has space' })).toThrow(/INSTANCE_ID="has space": INSTANCE_ID must be 1 to 128 letters/);
  });

  it('resolves relative DATA_DIR and DASHBOARD_DIR from the checkout (pnpm runs the server in apps/server)', () => {
    const root = fileURLToPath(new URL('../../..', import.meta.url));
    expect(readEnv({ DATA_DIR: 'mydata', DASHBOARD_DIR: 'web' })).toMatchObject({ DATA_DIR: join(root, 'mydata'), DASHBOARD_DIR: join(root, 'web') });
    expect(readEnv({ DATA_DIR: '/abs/data' }).DATA_DIR).toBe('/abs/data');
  });

  it.each([
    ['LAB', 'maybe', /LAB="maybe": LAB must be on or off/],
    ['BODY_TIMEOUT_MS', '5', /BODY_TIMEOUT_MS="5": BODY_TIMEOUT_MS must be between 100 and 600000/],
    ['MAX_BATCH_SIZE', '0', /MAX_BATCH_SIZE="0"/],
  ])('refuses %s=%s, naming it', (name, value, message) => {
    expect(() => readEnv({ [name]: value })).toThrow(EnvError);
    expect(() => readEnv({ [name]: value })).toThrow(message);
  });
});

describe('TLS_CERT and TLS_KEY: HTTPS with HTTP/2', () => {
  it('are both set or neither', () => {
    expect(readEnv({}).TLS_CERT).toBeUndefined();
    expect(() => readEnv({ TLS_CERT: '/etc/cert.pem' })).toThrow(/TLS_CERT is set but TLS_KEY is not: set both/);
    expect(() => readEnv({ TLS_KEY: '/etc/key.pem' })).toThrow(EnvError);
    expect(() => readEnv({ TLS_KEY: '/etc/key.pem' })).toThrow(/TLS_KEY is set but TLS_CERT is not/);
    expect(readEnv({ TLS_CERT: '/etc/cert.pem', TLS_KEY: 'key.pem' })).toMatchObject({ TLS_CERT: '/etc/cert.pem', TLS_KEY: join(fileURLToPath(new URL('../../..', import.meta.url)), 'key.pem') });
    expect(readTls(readEnv({}))).toBeUndefined();
  });

  it('reads the files at start, naming the one that cannot be read or a key that does not fit', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'asyncscope-tls-env-'));
    try {
      const [a, b] = await Promise.all([makeTestCertificate(), makeTestCertificate()]);
      await writeFile(join(dir, 'cert.pem'), a.cert);
      await writeFile(join(dir, 'key.pem'), a.key);
      await writeFile(join(dir, 'other-key.pem'), b.key);
      const tls = readTls(readEnv({ TLS_CERT: join(dir, 'cert.pem'), TLS_KEY: join(dir, 'key.pem') }));
      expect(tls?.cert.toString()).toBe(a.cert);
      expect(tls?.key.toString()).toBe(a.key);
      const missing = () => readTls(readEnv({ TLS_CERT: join(dir, 'nope.pem'), TLS_KEY: join(dir, 'key.pem') }));
      expect(missing).toThrow(EnvError);
      expect(missing).toThrow(/TLS_CERT=".*nope\.pem": cannot read it \(ENOENT/);
      expect(() => readTls(readEnv({ TLS_CERT: join(dir, 'cert.pem'), TLS_KEY: join(dir, 'other-key.pem') }))).toThrow(/not a usable PEM certificate and its private key/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('readEnv: WebSocket limits', () => {
  it('has defaults and reads them', () => {
    expect(readEnv({})).toMatchObject({ WS_MAX_CALLS_PER_SOCKET: 1000, WS_MAX_SOCKETS_PER_TOKEN: 64 });
    expect(readEnv({ WS_MAX_CALLS_PER_SOCKET: '50', WS_MAX_SOCKETS_PER_TOKEN: '2' })).toMatchObject({ WS_MAX_CALLS_PER_SOCKET: 50, WS_MAX_SOCKETS_PER_TOKEN: 2 });
  });
  it.each([
    ['WS_MAX_CALLS_PER_SOCKET', '0', /WS_MAX_CALLS_PER_SOCKET="0": WS_MAX_CALLS_PER_SOCKET must be between 1 and 100000/],
    ['WS_MAX_SOCKETS_PER_TOKEN', 'many', /WS_MAX_SOCKETS_PER_TOKEN="many": WS_MAX_SOCKETS_PER_TOKEN must be a whole number/],
  ])('refuses %s=%s, naming it', (name, value, message) => {
    expect(() => readEnv({ [name]: value })).toThrow(message);
  });
});

describe('readEnv: DB_POOL_MIN', () => {
  it('is DB_POOL_MAX unless set, may be 0, and is never more than DB_POOL_MAX', () => {
    expect(readEnv({}).DB_POOL_MIN).toBe(20);
    expect(readEnv({ DB_POOL_MAX: '8' }).DB_POOL_MIN).toBe(8);
    expect(readEnv({ DB_POOL_MIN: '0' }).DB_POOL_MIN).toBe(0);
    expect(readEnv({ DB_POOL_MAX: '8', DB_POOL_MIN: '3' }).DB_POOL_MIN).toBe(3);
    expect(() => readEnv({ DB_POOL_MAX: '8', DB_POOL_MIN: '9' })).toThrow(/DB_POOL_MIN=9 is more than DB_POOL_MAX=8/);
    expect(() => readEnv({ DB_POOL_MIN: '-1' })).toThrow(/DB_POOL_MIN="-1": DB_POOL_MIN must be between 0 and 500/);
  });
});

describe('readEnv: FAST_PATH', () => {
  it('is on by default, off rules the fast path out, nothing else is taken', () => {
    expect(readEnv({}).FAST_PATH).toBe('on');
    expect(readEnv({ FAST_PATH: 'off' }).FAST_PATH).toBe('off');
    expect(() => readEnv({ FAST_PATH: 'no' })).toThrow(/FAST_PATH="no": FAST_PATH must be on or off/);
  });
});

describe("the README's configuration table", () => {
  it('shows the defaults the env schema has', async () => {
    const readme = await readFile(fileURLToPath(new URL('../../../README.md', import.meta.url)), 'utf8');
    const defaults = readEnv({}) as Record<string, unknown>;
    // Rows like | `DB_POOL_MAX` | `20` | …; a default in words or a path (`<checkout>/.data`) is not compared.
    const rows = [...readme.matchAll(/^\| `([A-Z_]+)` \| `([^`]*)` \|/gm)].map(([, name, shown]) => ({ name: name ?? '', shown: shown ?? '' }));
    const compared = rows.filter(({ shown }) => !shown.includes('/'));
    expect(compared.length).toBeGreaterThan(15);
    for (const { name, shown } of compared) expect({ name, default: String(defaults[name]) }).toEqual({ name, default: shown });
  });

  it('has a row for every setting the env schema reads', async () => {
    const readme = await readFile(fileURLToPath(new URL('../../../README.md', import.meta.url)), 'utf8');
    // A row's first cell names one setting or several (| `TLS_CERT`, `TLS_KEY` | …).
    const documented = new Set([...readme.matchAll(/^\| ((?:`[A-Z_0-9]+`(?:, )?)+) \|/gm)].flatMap(([, cell]) => [...(cell ?? '').matchAll(/`([A-Z_0-9]+)`/g)].map(([, name]) => name)));
    const missing = Object.keys(readEnv({})).filter((name) => !documented.has(name));
    expect(missing).toEqual([]);
  });
});
